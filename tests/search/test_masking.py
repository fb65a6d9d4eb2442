"""A consumer's details are seen only by those who bought the lead, and by operators.

Written as an attacker would try it (OWASP API1 object-level and API3 property-level
authorisation): read the lead by id, read it through search, read it after someone else
bought it, read a quarantined one, and locate the house through radius queries.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.runtime import Runtime
from tests.conftest import Account, Api, bearer
from tests.search.factories import add_leads, buy, lead_row, miles_between

SEARCH = "/api/v1/leads/search"
SECRETS = ("7025550143", "555-0143", "maria.delgado", "Delgado", "4500", "162-05-110-012")


async def user_id(api: Api, account: Account) -> uuid.UUID:
    me = await api.client.get("/api/v1/users/me", headers=account.auth)
    return uuid.UUID(me.json()["id"])


def leaks(body: Any) -> list[str]:
    text = json.dumps(body)
    return [secret for secret in SECRETS if secret in text]


async def test_agents_see_a_masked_lead_in_search_and_on_its_page(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    lead = lead_row(
        clock.now(),
        description="Call Maria Delgado on 702-555-0143 or maria.delgado@example.com; 4500 is "
        "the house with the palm tree",
    )
    await add_leads(runtime, lead)

    found = (await api.client.get(SEARCH, headers=agent.auth)).json()["items"][0]
    page = (await api.client.get(f"/api/v1/leads/{lead.id}", headers=agent.auth)).json()

    for view in (found, page):
        assert view["revealed"] is False
        assert view["contact"] == {
            "name": "M. D.",
            "first_name": None,
            "last_name": None,
            "phone": None,
            "email": None,
        }
        assert view["address"]["street"] == "W SAHARA AVE"
        assert view["address"]["line1"] is None
        assert view["location"] == {
            "latitude": round(lead.latitude, 2),
            "longitude": round(lead.longitude, 2),
            "approximate": True,
        }
        assert view["property"]["parcel_number"] is None
        assert view["consent"] is None
        assert view["has_consent"] is True
        assert "palm tree" in view["description"]
        assert leaks(view) == []


async def test_the_buyer_and_operators_see_everything(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    buyer = await api.signup("buyer@realty.example.com")
    admin = await api.admin()
    lead = lead_row(clock.now())
    await add_leads(runtime, lead)
    await buy(runtime, lead, await user_id(api, buyer), clock.now())

    for account in (buyer, admin):
        found = (await api.client.get(SEARCH, headers=account.auth)).json()["items"][0]
        page = (await api.client.get(f"/api/v1/leads/{lead.id}", headers=account.auth)).json()
        for view in (found, page):
            assert view["revealed"] is True
            assert view["contact"]["phone"] == "+17025550143"
            assert view["contact"]["email"] == "maria.delgado@example.com"
            assert view["contact"]["name"] == "Maria Delgado"
            assert view["address"]["street"] == "4500 W SAHARA AVE"
            assert view["address"]["line2"] == "APT 210"
            assert view["location"]["latitude"] == lead.latitude
            assert view["property"]["parcel_number"] == "162-05-110-012"
            assert view["consent"]["url"] == "https://homes.example.com/sell"


async def test_a_lead_off_sale_is_invisible_to_everyone_but_its_buyer_and_operators(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    buyer = await api.signup("buyer@realty.example.com")
    rival = await api.signup("rival@realty.example.com")
    admin = await api.admin()
    sold = lead_row(clock.now(), status=LeadStatus.SOLD, sales_count=1)
    quarantined = lead_row(clock.now(), status=LeadStatus.QUARANTINED)
    await add_leads(runtime, sold, quarantined)
    await buy(runtime, sold, await user_id(api, buyer), clock.now())

    def page(lead_id: uuid.UUID, account: Account) -> Any:
        return api.client.get(f"/api/v1/leads/{lead_id}", headers=account.auth)

    assert (await page(sold.id, buyer)).json()["contact"]["phone"] == "+17025550143"
    assert (await page(sold.id, rival)).status_code == 404
    assert (await page(quarantined.id, rival)).status_code == 404
    assert (await page(quarantined.id, buyer)).status_code == 404
    assert (await page(quarantined.id, admin)).json()["revealed"] is True
    assert (await page(uuid.uuid4(), rival)).json()["code"] == "lead_not_found"
    # Not listed either, even to the buyer: search is the shop window.
    assert (await api.client.get(SEARCH, headers=buyer.auth)).json()["items"] == []


async def test_radius_queries_cannot_locate_the_house(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Search runs on the public point, so shrinking circles around the true location find
    nothing, and circles around the public point learn only what the map already shows."""
    agent = await api.signup("agent@realty.example.com")
    lead = lead_row(clock.now(), latitude=36.10449, longitude=-115.17351)
    await add_leads(runtime, lead)

    def around(lat: float, lon: float, miles: float) -> Any:
        params = {"lat": lat, "lon": lon, "radius_mi": miles, "sort": "distance"}
        return api.client.get(SEARCH, params=params, headers=agent.auth)

    at_house = (await around(lead.latitude, lead.longitude, 0.1)).json()["items"]
    at_public = (await around(36.10, -115.17, 0.01)).json()["items"]
    wide = (await around(lead.latitude, lead.longitude, 5)).json()["items"]

    assert at_house == []
    assert [i["id"] for i in at_public] == [str(lead.id)]
    assert at_public[0]["distance_mi"] == 0.0
    # Measured to the public point, in tenths of a mile.
    assert wide[0]["distance_mi"] == round(
        miles_between((lead.latitude, lead.longitude), (36.10, -115.17)), 1
    )


async def test_api_keys_need_the_leads_scope(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    agent = await api.signup("agent@realty.example.com")
    keys = {}
    for scopes in (["account:read"], ["leads:read"]):
        created = await api.client.post(
            "/api/v1/api-keys", headers=agent.auth, json={"name": scopes[0], "scopes": scopes}
        )
        keys[scopes[0]] = created.json()["key"]
    await add_leads(runtime, lead_row(clock.now()))

    denied = await api.client.get(SEARCH, headers=bearer(keys["account:read"]))
    allowed = await api.client.get(SEARCH, headers=bearer(keys["leads:read"]))

    assert denied.status_code == 403
    assert denied.json()["code"] == "insufficient_scope"
    assert allowed.status_code == 200
    assert leaks(allowed.json()) == []


async def test_words_cannot_probe_what_the_card_hides(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Text search indexes the redacted description only, so a guessed phone, name or house
    number finds nothing, while what the card shows is still searchable."""
    agent = await api.signup("agent@realty.example.com")
    lead = lead_row(
        clock.now(),
        description="Call Maria on 702-555-0143 or 555-0143, maria.delgado@example.com; 4500 "
        "is the house with the palm tree",
    )
    await add_leads(runtime, lead)

    async def finds(q: str) -> bool:
        response = await api.client.get(SEARCH, params={"q": q}, headers=agent.auth)
        return bool(response.json()["items"])

    for secret in ("4500", "0143", "5550143", "maria", "delgado", "example", "702"):
        assert not await finds(secret), secret
    assert await finds("palm tree")
    assert await finds("sahara")  # the street name is on the card

    # A surname spelt with an inner capital, as the owner's card stores it.
    mcdonald = lead_row(
        clock.now(),
        first_name="Sean",
        last_name="McDonald",
        description="Owner Sean McDonald wants a quick sale, casita out back",
    )
    await add_leads(runtime, mcdonald)
    page = (await api.client.get(f"/api/v1/leads/{mcdonald.id}", headers=agent.auth)).json()
    assert page["description"] == "Owner [hidden] [hidden] wants a quick sale, casita out back"
    assert not await finds("mcdonald")
    assert await finds("casita")


async def test_redaction_leaves_ordinary_words_that_match_hidden_fields(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """Blanking "will" or "2" would itself reveal a first name Will or unit 2."""
    agent = await api.signup("agent@realty.example.com")
    lead = lead_row(
        clock.now(),
        first_name="Will",
        last_name="Price",
        street_number="12",
        unit_number="2",
        baths=2.0,
        description="Seller will consider offers. 3 beds, 2 baths. Ask Will about 12 Sahara, "
        "apt 2, or call 555-0143.",
    )
    await add_leads(runtime, lead)

    card = (await api.client.get(f"/api/v1/leads/{lead.id}", headers=agent.auth)).json()

    assert card["description"] == (
        "Seller will consider offers. 3 beds, 2 baths. Ask [hidden] about [hidden] Sahara, "
        "[hidden], or call [hidden]."
    )


async def test_an_admins_key_without_admin_scope_sees_leads_masked(
    api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    """An operator's key made for an integration (`leads:read` only) is not an operator."""
    admin = await api.admin()
    created = await api.client.post(
        "/api/v1/api-keys", headers=admin.auth, json={"name": "crm", "scopes": ["leads:read"]}
    )
    key = bearer(created.json()["key"])
    lead = lead_row(clock.now())
    off_sale = lead_row(clock.now(), status=LeadStatus.QUARANTINED)
    await add_leads(runtime, lead, off_sale)

    found = (await api.client.get(SEARCH, headers=key)).json()["items"]
    page = await api.client.get(f"/api/v1/leads/{off_sale.id}", headers=key)
    full = await api.client.get(f"/api/v1/leads/{off_sale.id}", headers=admin.auth)

    assert [i["revealed"] for i in found] == [False]
    assert leaks(found) == []
    assert page.status_code == 404
    assert full.json()["revealed"] is True

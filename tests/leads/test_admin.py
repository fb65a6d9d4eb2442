"""Operators' work on leads against what buyers hold: a lead in a cart or bought is never
split or merged away under them, two merges of one pair cannot deadlock, and every decision
is in the audit log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from aiqleads.audit.models import AuditEvent
from aiqleads.ingest.service import run_source
from aiqleads.ingest.sources import SourceConfig
from aiqleads.kit.clock import FrozenClock
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Lead
from aiqleads.pricing.service import recompute
from aiqleads.runtime import Runtime
from tests.commerce import ITEMS, buyers, funded, lead_status
from tests.conftest import Api
from tests.ingest.factories import fake_lead, lookalike, seller
from tests.search.factories import add_leads, lead_row

MLS = SourceConfig(slug="demo-mls", name="MLS", type="demo", trust=0.9)
FORM = SourceConfig(slug="demo-webform", name="Form", type="demo", trust=0.5)
SHARED = SourceConfig(
    slug="demo-shared",
    name="Shared feed",
    type="demo",
    trust=0.5,
    options={"exclusivity": "shared", "max_sales": 3},
)
ADMIN_LEADS = "/api/v1/admin/leads"


async def all_leads(runtime: Runtime) -> list[Lead]:
    async with runtime.transaction(write=False) as session:
        return list(await session.scalars(sa.select(Lead).order_by(Lead.created_at, Lead.id)))


async def hold(api: Api, auth: dict[str, str], lead_id: uuid.UUID | str) -> httpx.Response:
    return await api.client.post(ITEMS, json={"lead_id": str(lead_id)}, headers=auth)


async def buy(api: Api, auth: dict[str, str], lead_id: uuid.UUID | str) -> None:
    assert (await hold(api, auth, lead_id)).status_code == 201
    bought = await api.client.post(
        "/api/v1/checkout", headers={**auth, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert bought.status_code == 201, bought.text


async def test_a_lead_bought_or_in_a_cart_is_not_split(api: Api, runtime: Runtime) -> None:
    """Splitting a record off a sold exclusive lead put the same person back on sale, and
    the rebuild changed the phone the buyer had paid for."""
    admin = await api.admin()
    await run_source(runtime, MLS, trigger="test", records=[seller("M1")])
    await run_source(runtime, FORM, trigger="test", records=[seller("F1", phone="(702) 555-0177")])
    [lead] = await all_leads(runtime)
    assert (lead.source_count, lead.phone) == (2, "+17025550143")
    await recompute(runtime)
    alice, bob = await buyers(runtime, 2)
    await funded(runtime, alice, 1_000_000)
    detail = (await api.client.get(f"{ADMIN_LEADS}/{lead.id}", headers=admin.auth)).json()
    record = next(r for r in detail["records"] if r["source"] == "demo-mls")
    url = f"{ADMIN_LEADS}/{lead.id}/unmerge"

    assert (await hold(api, bob, lead.id)).status_code == 201  # in Bob's cart
    held = await api.client.post(url, json={"record_id": record["id"]}, headers=admin.auth)
    assert (held.status_code, held.json()["code"]) == (409, "lead_not_splittable")
    assert (await api.client.delete(f"{ITEMS}/{lead.id}", headers=bob)).status_code == 204
    await buy(api, alice, lead.id)
    sold = await api.client.post(url, json={"record_id": record["id"]}, headers=admin.auth)
    assert (sold.status_code, sold.json()["code"]) == (409, "lead_not_splittable")

    assert len(await all_leads(runtime)) == 1
    [purchase] = (await api.client.get("/api/v1/purchases", headers=alice)).json()["items"]
    assert purchase["lead"]["contact"]["phone"] == "+17025550143"


async def test_a_shared_lead_with_a_sale_or_a_hold_is_not_merged_away(
    api: Api, runtime: Runtime
) -> None:
    """A shared lead stays on sale while it has sales left: merging it away withdrew it
    under a buyer's hold (their checkout failed) and put a person already sold into an
    exclusive lead."""
    admin = await api.admin()
    await run_source(runtime, MLS, trigger="test", records=[seller("L1")])
    await run_source(runtime, SHARED, trigger="test", records=[lookalike("S1")])
    leads = {lead.source: lead for lead in await all_leads(runtime)}
    exclusive, shared = leads["demo-mls"], leads["demo-shared"]
    await recompute(runtime)
    alice, bob = await buyers(runtime, 2)
    for auth in (alice, bob):
        await funded(runtime, auth, 1_000_000)
    url = f"{ADMIN_LEADS}/{exclusive.id}/merge"

    assert (await hold(api, bob, shared.id)).status_code == 201
    held = await api.client.post(url, json={"other_lead_id": str(shared.id)}, headers=admin.auth)
    assert (held.status_code, held.json()["code"]) == (409, "lead_not_mergeable")
    assert (await api.client.delete(f"{ITEMS}/{shared.id}", headers=bob)).status_code == 204
    await buy(api, alice, shared.id)
    assert await lead_status(runtime, shared.id) is LeadStatus.AVAILABLE  # sales left
    sold = await api.client.post(url, json={"other_lead_id": str(shared.id)}, headers=admin.auth)
    assert (sold.status_code, sold.json()["code"]) == (409, "lead_not_mergeable")


async def test_review_merge_unmerge_and_dismiss_are_audited(api: Api, runtime: Runtime) -> None:
    admin = await api.admin()
    form = SourceConfig(
        slug="demo-webform", name="Form", type="demo", options={"consent_required": True}
    )
    await run_source(runtime, form, trigger="test", records=[fake_lead()])
    [item] = (await api.client.get("/api/v1/admin/review-queue", headers=admin.auth)).json()[
        "items"
    ]
    reviewed = await api.client.post(
        f"{ADMIN_LEADS}/{item['id']}/review",
        json={"decision": "reject", "reason": "test entry"},
        headers=admin.auth,
    )
    assert reviewed.status_code == 200
    await run_source(runtime, MLS, trigger="test", records=[seller("L1"), lookalike()])
    async with runtime.transaction(write=False) as session:
        first, second = list(
            await session.scalars(
                sa.select(Lead).where(Lead.source == "demo-mls").order_by(Lead.first_name)
            )
        )
    pair = {"other_lead_id": str(second.id)}
    dismissed = await api.client.post(
        f"{ADMIN_LEADS}/{first.id}/dismiss-duplicate", json=pair, headers=admin.auth
    )
    assert dismissed.status_code == 200
    merged = await api.client.post(f"{ADMIN_LEADS}/{first.id}/merge", json=pair, headers=admin.auth)
    assert merged.status_code == 200
    record = next(r for r in merged.json()["records"] if r["source_key"] == "L2")
    split = await api.client.post(
        f"{ADMIN_LEADS}/{first.id}/unmerge", json={"record_id": record["id"]}, headers=admin.auth
    )
    assert split.status_code == 200

    me = (await api.client.get("/api/v1/users/me", headers=admin.auth)).json()
    async with runtime.transaction(write=False) as session:
        events = list(
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.subject_type == "lead"))
        )
    assert sorted((e.action, e.subject_id) for e in events) == sorted(
        [
            ("leads.review", item["id"]),
            ("leads.dismiss_duplicate", str(first.id)),
            ("leads.merge", str(first.id)),
            ("leads.unmerge", str(first.id)),
        ]
    )
    assert {str(e.actor_id) for e in events} == {me["id"]}
    by_action = {e.action: e.detail for e in events}
    assert by_action["leads.review"] == {"decision": "reject", "reason": "test entry"}
    assert by_action["leads.merge"] == {"merged": str(second.id)}
    assert by_action["leads.unmerge"]["split_into"] == split.json()["id"]


@pytest.fixture
async def lenient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_merging_a_pair_both_ways_at_once_is_one_merge_and_one_409(
    api: Api, runtime: Runtime, clock: FrozenClock, lenient: httpx.AsyncClient
) -> None:
    """Each request locked its own lead first; on PostgreSQL the two deadlocked (a 500)."""
    admin = await api.admin()
    seen = []
    for _ in range(8):
        a, b = await add_leads(runtime, lead_row(clock.now()), lead_row(clock.now()))

        async def merge(x: Lead, y: Lead) -> int:
            answer = await lenient.post(
                f"{ADMIN_LEADS}/{x.id}/merge",
                json={"other_lead_id": str(y.id)},
                headers=admin.auth,
            )
            return answer.status_code

        seen.append(sorted(await asyncio.gather(merge(a, b), merge(b, a))))
    assert all(pair == [200, 409] for pair in seen), seen


async def test_a_merge_while_ingestion_updates_the_other_lead_stays_merged(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge that committed while a batch was updating the other lead was undone by the
    batch's write (PostgreSQL): the merged-away lead went back on sale beside its survivor.
    Now the merge waits for the batch, and then merges what the batch left."""
    from aiqleads.ingest.pipeline import LeadPipeline

    admin = await api.admin()
    await run_source(runtime, MLS, trigger="test", records=[seller("L1"), lookalike("L2")])
    async with runtime.transaction(write=False) as session:
        survivor = await session.scalar(sa.select(Lead).where(Lead.source_key == "L1"))
        other = await session.scalar(sa.select(Lead).where(Lead.source_key == "L2"))
    assert survivor is not None
    assert other is not None
    real_score = LeadPipeline._score
    merging: list[asyncio.Task[httpx.Response]] = []

    async def score_while_an_operator_merges(self: LeadPipeline, *args: object) -> None:
        if not merging:
            merging.append(
                asyncio.create_task(
                    api.client.post(
                        f"{ADMIN_LEADS}/{survivor.id}/merge",
                        json={"other_lead_id": str(other.id)},
                        headers=admin.auth,
                    )
                )
            )
            await asyncio.sleep(0.3)  # the merge reaches the database while this batch runs
        await real_score(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LeadPipeline, "_score", score_while_an_operator_merges)
    newer = lookalike("L2")
    newer = type(newer)(newer.source_key, {**newer.payload, "beds": "5"})
    await run_source(runtime, MLS, trigger="test", records=[newer])
    merged = await merging[0]
    assert merged.status_code == 200, merged.text
    async with runtime.transaction(write=False) as session:
        gone = await session.get(Lead, other.id)
    assert gone is not None
    assert (gone.status, gone.merged_into_id) == (LeadStatus.WITHDRAWN, survivor.id)


async def test_a_lead_approved_in_review_is_not_refunded_as_fake_for_the_score_it_cleared(
    api: Api, runtime: Runtime
) -> None:
    """An operator called the owner and approved the lead (its price was a typo): a buyer's
    `fake` claim was refunded on the spot on the very score the operator had cleared."""
    admin = await api.admin()
    await run_source(runtime, MLS, trigger="test", records=[seller("P1", list_price="$1")])
    [item] = (await api.client.get("/api/v1/admin/review-queue", headers=admin.auth)).json()[
        "items"
    ]
    assert [r["code"] for r in item["fraud_reasons"]] == ["price_absurd"]
    approved = await api.client.post(
        f"{ADMIN_LEADS}/{item['id']}/review",
        json={"decision": "approve", "reason": "called the owner: genuine, price is a typo"},
        headers=admin.auth,
    )
    assert approved.status_code == 200
    await recompute(runtime)
    (alice,) = await buyers(runtime, 1)
    await funded(runtime, alice, 1_000_000)
    await buy(api, alice, item["id"])
    [purchase] = (await api.client.get("/api/v1/purchases", headers=alice)).json()["items"]
    filed = await api.client.post(
        "/api/v1/disputes",
        json={"purchase_id": purchase["id"], "reason": "fake"},
        headers={**alice, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["status"] == "open"  # an operator decides
    fraud = next(f for f in filed.json()["evidence"] if f["check"] == "fraud")
    assert fraud["supports_claim"] is False
    assert "approved it as genuine" in fraud["detail"]

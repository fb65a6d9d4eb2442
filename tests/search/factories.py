"""Leads on sale, written straight to the database, for marketplace tests."""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiqleads.cart.models import Hold, HoldStatus
from aiqleads.checkout.models import Order, Purchase, PurchaseStatus
from aiqleads.kit.dialect import EARTH_RADIUS_M, search_text
from aiqleads.leads.lifecycle import LeadStatus
from aiqleads.leads.models import Exclusivity, Lead
from aiqleads.quality.geocode import public_point
from aiqleads.quality.masking import redact, shown_numbers
from aiqleads.runtime import Runtime

_keys = itertools.count(1)
# The Strip: a point every Las Vegas test measures from.
CENTER = (36.1000, -115.1700)


def lead_row(now: datetime, **overrides: Any) -> Lead:
    """An available Las Vegas seller lead; any field can be overridden."""
    n = next(_keys)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "status": LeadStatus.AVAILABLE,
        "status_changed_at": now,
        "kind": "seller",
        "exclusivity": Exclusivity.EXCLUSIVE,
        "max_sales": 1,
        "sales_count": 0,
        "first_name": "Maria",
        "last_name": "Delgado",
        "phone": "+17025550143",
        "email": "maria.delgado@example.com",
        "street_number": "4500",
        "street_pre_direction": "W",
        "street_name": "SAHARA",
        "street_suffix": "AVE",
        "unit_type": "APT",
        "unit_number": "210",
        "address_line1": "4500 W SAHARA AVE",
        "address_line2": "APT 210",
        "city": "LAS VEGAS",
        "state": "NV",
        "postal_code": "89102",
        "address": "4500 W SAHARA AVE APT 210, LAS VEGAS, NV 89102",
        "latitude": CENTER[0] + 0.0031,
        "longitude": CENTER[1] - 0.0042,
        "geocode_precision": "source",
        "market": "las-vegas",
        "property_type": "single_family",
        "beds": 3,
        "baths": 2.0,
        "living_area_sqft": 1850,
        "lot_size_sqft": 6000,
        "year_built": 1998,
        "list_price_cents": 42_500_000,
        "days_on_market": 12,
        "parcel_number": "162-05-110-012",
        "description": "Single story home with a sparkling pool",
        "consent_captured_at": now - timedelta(days=1),
        "consent_text": "I agree to be contacted about selling my home.",
        "consent_url": "https://homes.example.com/sell",
        "consent_ip": "73.12.44.10",
        "quality_score": 70,
        "fraud_score": 0.05,
        "source": "demo-webform",
        "source_key": f"K{n}",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    # What the golden record derives (quality.dedup.survive), computed the same way.
    values["public_latitude"], values["public_longitude"] = public_point(
        values["latitude"], values["longitude"]
    )
    values["public_description"] = redact(
        values["description"],
        first_name=values["first_name"],
        last_name=values["last_name"],
        street_number=values["street_number"],
        street_name=values["street_name"],
        unit_number=values["unit_number"],
        shown=shown_numbers(values),
    )
    values["search_text"] = search_text(
        values["street_name"], values["city"], values["public_description"]
    )
    return Lead(**values)


async def add_leads(runtime: Runtime, *leads: Lead) -> list[Lead]:
    async with runtime.transaction() as session:
        session.add_all(leads)
    return list(leads)


async def buy(runtime: Runtime, lead: Lead, buyer_id: uuid.UUID, now: datetime) -> None:
    """Record a purchase of `lead` as checkout would (its hold, order and purchase rows),
    without the money: for tests about who sees what."""
    exclusive = lead.exclusivity is Exclusivity.EXCLUSIVE
    async with runtime.transaction() as session:
        hold = Hold(
            id=uuid.uuid4(),
            lead_id=lead.id,
            buyer_id=buyer_id,
            exclusive=exclusive,
            status=HoldStatus.PURCHASED,
            price_cents=12_500,
            config_version=0,
            created_at=now,
            expires_at=now,
            ended_at=now,
        )
        order = Order(
            id=uuid.uuid4(), buyer_id=buyer_id, total_cents=12_500, item_count=1, created_at=now
        )
        session.add_all([hold, order])
        await session.flush()
        session.add(
            Purchase(
                lead_id=lead.id,
                buyer_id=buyer_id,
                order_id=order.id,
                hold_id=hold.id,
                exclusive=exclusive,
                status=PurchaseStatus.PAID,
                price_cents=12_500,
                created_at=now,
            )
        )


def miles_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle miles on the sphere search uses."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h)) / 1_609.344

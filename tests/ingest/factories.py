"""Raw records as sources send them, for ingestion tests."""

from __future__ import annotations

from typing import Any

from aiqleads.ingest.connectors.base import RawRecord

CONSENT = {
    "captured_at": "2026-03-01T18:00:00Z",
    "text": "I agree that AIQLeads partner agents may call or text me about selling my home.",
    "url": "https://homes.example.com/sell",
    "ip": "73.12.44.10",
    "user_agent": "Mozilla/5.0",
}


def seller(key: str, **overrides: Any) -> RawRecord:
    """A clean Las Vegas seller lead in our own field names (demo/web-form shape)."""
    payload: dict[str, Any] = {
        "kind": "seller",
        "first_name": "Robert",
        "last_name": "Johnson",
        "phone": "(702) 555-0143",
        "email": "Robert.Johnson@gmail.com",
        "street": "4500 W Sahara Ave",
        "unit": "Apt 210",
        "city": "Las Vegas",
        "state": "NV",
        "postal_code": "89102",
        "property_type": "Single Family",
        "beds": "3",
        "baths": "2",
        "living_area_sqft": "1,850",
        "list_price": "$425K",
        "consent": dict(CONSENT),
    }
    payload.update(overrides)
    return RawRecord(source_key=key, payload={k: v for k, v in payload.items() if v is not None})


def lookalike(key: str = "L2") -> RawRecord:
    """Someone else on the phone number of `seller`: similar first name, other surname."""
    return seller(
        key,
        first_name="Rob",
        last_name="Jensen",
        email="rj@outlook.com",
        street="77 Pine St",
        unit=None,
    )


def fake_lead(key: str = "X1") -> RawRecord:
    """A test entry with every fraud signal a form can carry."""
    return seller(
        key,
        first_name="Test",
        last_name="Test",
        phone="1-800-555-0199",
        email="asdf@mailinator.com",
        list_price="$1",
        consent=None,
    )

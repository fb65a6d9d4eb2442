"""What a lead may show, and be searched by, before anyone has bought it.

The public description is the seller's text with contact details blanked, computed once when
the golden record is built, and it is the only description text search sees. Searching the raw
text would let anyone confirm a guessed phone number or house number by whether a query finds
the lead. Redaction follows context, so ordinary words are not blanked: a blanked "will" or "2"
would itself give the hidden first name or unit away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "[hidden]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# North American numbers with or without area code and country code, in any punctuation,
# and any other run of seven or more digits (an account, a parcel, a phone spelt oddly).
_PHONE = re.compile(r"(?<![\w])(?:\+?1[\s.-]?)?(?:\(?\d{3}\)?[\s.-]?)?\d{3}[\s.-]?\d{4}(?![\w])")
_DIGIT_RUN = re.compile(r"\d(?:[\s.()-]?\d){6,}")
_UNIT_WORDS = r"(?:apt|apartment|unit|suite|ste|#)"


def shown_numbers(fields: Mapping[str, Any]) -> list[object]:
    """The numbers a masked card shows: a house number equal to one of them stays in the text."""
    baths = fields.get("baths")
    price = fields.get("list_price_cents")
    return [
        fields.get("beds"),
        int(baths) if isinstance(baths, float) and baths.is_integer() else baths,
        fields.get("living_area_sqft"),
        fields.get("lot_size_sqft"),
        fields.get("year_built"),
        fields.get("days_on_market"),
        price // 100 if isinstance(price, int) else None,
    ]


def redact(
    text: str | None,
    *,
    first_name: str | None,
    last_name: str | None,
    street_number: str | None,
    street_name: str | None,
    unit_number: str | None,
    shown: Iterable[object] = (),
) -> str | None:
    """`text` with e-mail addresses, phone numbers, long digit runs, the consumer's names (as
    names: capitalised), the house number and the unit (after its designator) replaced by
    "[hidden]". The house number is blanked wherever it stands alone, except where it equals a
    fact the card shows anyway (`shown`: beds, area, year built ...), since blanking "built in
    1998" would tell that the house number is 1998."""
    if not text:
        return text
    text = _EMAIL.sub(HIDDEN, text)
    text = _PHONE.sub(HIDDEN, text)
    text = _DIGIT_RUN.sub(HIDDEN, text)
    for name in (first_name, last_name):
        if name and len(name.strip()) >= 2:
            forms = {name.strip().title(), name.strip().upper()}
            pattern = "|".join(re.escape(f) for f in sorted(forms))
            text = re.sub(rf"(?<!\w)(?:{pattern})(?!\w)", HIDDEN, text)
    if street_number and street_name:
        first_word = street_name.split()[0]
        before_street = (
            rf"(?<!\w){re.escape(street_number)}(?=\s+(?:[NSEW]{{1,2}}\.?\s+)?"
            rf"{re.escape(first_word)}(?!\w))"
        )
        text = re.sub(before_street, HIDDEN, text, flags=re.IGNORECASE)
        if street_number not in {str(v) for v in shown if v is not None}:
            text = re.sub(rf"(?<![\w.,$]){re.escape(street_number)}(?![\w]|[.,]\d)", HIDDEN, text)
    if unit_number:
        text = re.sub(
            rf"(?<!\w){_UNIT_WORDS}\.?\s*#?\s*{re.escape(unit_number)}(?!\w)",
            HIDDEN,
            text,
            flags=re.IGNORECASE,
        )
    return text

"""What a lead may show, and be searched by, before anyone has bought it.

The public description is the seller's text with contact details blanked, computed once when
the golden record is built, and it is the only description text search sees. Searching the raw
text would let anyone confirm a guessed phone number or house number by whether a query finds
the lead. Redaction follows context, so ordinary words are not blanked: a blanked "will" or "2"
would itself give the hidden first name or unit away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

HIDDEN = "[hidden]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# North American numbers with or without area code and country code, in any punctuation,
# and any other run of seven or more digits (an account, a parcel, a phone spelt oddly).
_PHONE = re.compile(r"(?<![\w])(?:\+?1[\s.-]?)?(?:\(?\d{3}\)?[\s.-]?)?\d{3}[\s.-]?\d{4}(?![\w])")
_DIGIT_RUN = re.compile(r"\d(?:[\s.()-]?\d){6,}")
_UNIT_DESIGNATOR = re.compile(
    r"(?<!\w)(?:apt|apartment|unit|suite|ste|#)(\.?\s*#?\s*)", re.IGNORECASE
)
# Between a house number and its street: spaces, perhaps a direction ("12 N. Main").
_GAP = re.compile(r"\s+")
_GAP_WITH_DIRECTION = re.compile(r"\s+[NSEW]{1,2}\.?\s+", re.IGNORECASE)


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


def spelt_with_inner_capital(name: str) -> bool:
    """ "McDonald", "DeLuca", "O'Brien": a name no common word is spelt like, so `redact`
    blanks it in any case."""
    return any(c.isupper() for c in name[1:]) and not name.isupper()


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
    written, capitalised or in capitals; in any case if spelt with an inner capital), the
    house number and the unit (after its designator) replaced by "[hidden]". The house number
    is blanked wherever it stands alone, except where it equals a fact the card shows anyway
    (`shown`: beds, area, year built ...), since blanking "built in 1998" would tell that the
    house number is 1998.

    The lead's own values are found as literals (`_blank`), not by regular expressions built
    from them: each lead's would be new to `re`'s cache, and compiling five of them per lead
    cost more than the rest of building its golden record."""
    if not text:
        return text
    text = _EMAIL.sub(HIDDEN, text)
    text = _PHONE.sub(HIDDEN, text)
    text = _DIGIT_RUN.sub(HIDDEN, text)
    for name in (first_name, last_name):
        if name and len(name.strip()) >= 2:
            name = name.strip()
            # A name spelt with a capital inside ("McDonald", "DeLuca") is no common word, so
            # any case of it goes; another only as written, capitalised or in capitals
            # ("Rose", but the garden's "rose" stays).
            mixed = spelt_with_inner_capital(name)
            for form in sorted({name, name.title(), name.upper()}):
                text = _blank(text, form, _stands_alone, ignore_case=mixed)
    if street_number and street_name:
        first_word = _fold(street_name.split()[0])

        def before_street(text: str, start: int, end: int) -> bool:
            """Alone, then spaces (perhaps a direction: "12 N. Main") and the street's first
            word, in any case."""
            if _is_word_at(text, start - 1):
                return False
            for gap in (_GAP_WITH_DIRECTION.match(text, end), _GAP.match(text, end)):
                at = gap.end() if gap else -1
                word_end = at + len(first_word)
                if at >= 0 and _fold(text[at:word_end]) == first_word:
                    if not _is_word_at(text, word_end):
                        return True
            return False

        text = _blank(text, street_number, before_street, ignore_case=True)
        if street_number not in {str(v) for v in shown if v is not None}:
            text = _blank(text, street_number, _stands_alone_as_number)
    if unit_number:
        text = _blank_unit(text, unit_number)
    return text


def _fold(text: str) -> str:
    """`text` in lower case, one character for one (so positions in it are positions in the
    text; the few characters whose lower case is longer stay as they are)."""
    folded = text.lower()
    if len(folded) == len(text):
        return folded
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _is_word_at(text: str, i: int) -> bool:
    """Whether `text[i]` exists and is what `re` calls a word character (`\\w`)."""
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _stands_alone(text: str, start: int, end: int) -> bool:
    return not _is_word_at(text, start - 1) and not _is_word_at(text, end)


def _stands_alone_as_number(text: str, start: int, end: int) -> bool:
    """Not part of a word, an amount ("$12", "1.12") or a decimal ("12.5", "12,000")."""
    if _is_word_at(text, start - 1) or (start > 0 and text[start - 1] in ".,$"):
        return False
    if _is_word_at(text, end):
        return False
    return not (end + 1 < len(text) and text[end] in ".," and text[end + 1].isdecimal())


def _blank(
    text: str,
    needle: str,
    accept: Callable[[str, int, int], bool],
    *,
    ignore_case: bool = False,
) -> str:
    """`text` with each occurrence of `needle` that `accept(text, start, end)` approves
    replaced by HIDDEN, scanning left to right without overlaps (as `re.sub` does)."""
    haystack, target = (_fold(text), _fold(needle)) if ignore_case else (text, needle)
    parts: list[str] = []
    last = 0
    start = haystack.find(target)
    while start >= 0:
        end = start + len(target)
        if accept(text, start, end):
            parts += (text[last:start], HIDDEN)
            last = end
            start = haystack.find(target, end)
        else:
            start = haystack.find(target, start + 1)
    return "".join(parts) + text[last:] if parts else text


def _blank_unit(text: str, unit_number: str) -> str:
    """`text` with the unit blanked, designator and all, where it follows a designator
    ("apt 2", "Unit #2B", "# 2")."""
    target = _fold(unit_number)
    parts: list[str] = []
    last = pos = 0
    while (designator := _UNIT_DESIGNATOR.search(text, pos)) is not None:
        pos = designator.start() + 1
        # The unit right after the designator's punctuation, or after less of it (as `re`
        # backtracks: "##" is designator "#" and unit "#").
        for at in range(designator.end(), designator.start(1) - 1, -1):
            end = at + len(target)
            if _fold(text[at:end]) == target and not _is_word_at(text, end):
                parts += (text[last : designator.start()], HIDDEN)
                last = pos = end
                break
    return "".join(parts) + text[last:] if parts else text

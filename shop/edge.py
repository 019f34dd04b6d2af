"""The edge: what a person or a client sends, checked once, before any query.

* **Text**: NUL and other control characters are refused; format characters (zero-width spaces and joiners,
  direction marks — Unicode category Cf) are removed; what is left is trimmed. So text made only of
  invisible characters is blank, and a required field refuses it like any blank.
* **Whole numbers**: ASCII or full-width digits only (phones type either), within the range of what they
  are for — never a superscript, another script's digits, or beyond a database column.
* **JSON**: no deeper than a small limit (a deeply nested body would exhaust the parser).

Every form (`forms.ShopForm`), every query parameter and form value (`check_request`), every API string
(`api.core.Text`) and every integer a user types (`parse_int`) goes through here.
"""
from __future__ import annotations

import json
import unicodedata

from flask_babel import gettext as _

from .errors import ValidationFailed

MAX_ID = 2**31 - 1        # database ids (32-bit on PostgreSQL)
MAX_JSON_DEPTH = 20       # lines of lines of … — no client needs more
MAX_JSON_DIGITS = 30      # no amount, id or quantity needs more digits than this
ALLOWED_CONTROLS = {"\t", "\n", "\r"}
_FULL_WIDTH = {ord("０") + i: ord("0") + i for i in range(10)} | {ord("－"): ord("-")}


class BadInput(ValueError):
    """Text no person typed: control characters."""


def has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in ALLOWED_CONTROLS for ch in text)


def clean_text(value):
    """A piece of text as the shop keeps it: no control characters (BadInput), no invisible format
    characters, trimmed. Anything that is not a string is returned as it is."""
    if not isinstance(value, str):
        return value
    if has_controls(value):
        raise BadInput(value)
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip()


def parse_int(text, field_name: str, *, minimum: int = 0, maximum: int = MAX_ID, blank: int | None = None) -> int:
    """A whole number typed by a person: ASCII or full-width digits (and a minus sign where negatives make
    sense), within [minimum, maximum]. Blank is `blank`, or refused when that is None."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        raw = (text or "").strip().translate(_FULL_WIDTH) if isinstance(text, str) else ""
        if not raw and blank is not None:
            return blank
        digits = raw[1:] if raw.startswith("-") and minimum < 0 else raw
        if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
            raise ValidationFailed.on(field_name, _("应为 %(a)d–%(b)d 之间的整数。", a=minimum, b=maximum))
        number = int(raw)
    if not minimum <= number <= maximum:
        raise ValidationFailed.on(field_name, _("应为 %(a)d–%(b)d 之间的整数。", a=minimum, b=maximum))
    return number


def parse_quantity(text, decimals: int, field_name: str, *, blank: int | None = None) -> int:
    """A quantity as typed — "12.3" (斤, to `decimals` places) or "5" — as whole smallest units (123, 5), from the
    digits, never through a float. ASCII or full-width digits; a full stop or comma (either width) before the
    decimals. Blank is `blank`, or refused when that is None."""
    raw = str(text if text is not None else "").strip().translate(_FULL_WIDTH)
    raw = raw.replace("，", ".").replace(",", ".").replace("．", ".")
    if not raw and blank is not None:
        return blank
    whole, _sep, fraction = raw.partition(".")
    if (not whole or not whole.isascii() or not whole.isdigit() or len(whole) > 9 or (_sep and not fraction)
            or (fraction and (not fraction.isascii() or not fraction.isdigit() or len(fraction) > decimals))):
        if decimals:
            raise ValidationFailed.on(field_name, _("请填写重量，最多 %(d)d 位小数，如 12.3。", d=decimals))
        raise ValidationFailed.on(field_name, _("数量必须是整数。"))
    return int(whole + fraction.ljust(decimals, "0")) if decimals else int(whole)


def optional_int(text, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """A whole number from a query parameter (ASCII or full-width digits, within range), or None."""
    try:
        return parse_int(text, "n", minimum=minimum, maximum=maximum)
    except ValidationFailed:
        return None


def optional_id(text) -> int | None:
    """An id from a query parameter or form: a number within the database's range, or None."""
    try:
        return parse_int(text, "id", minimum=1, maximum=MAX_ID)
    except ValidationFailed:
        return None


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON document nests deeper than `limit` (counted on the raw bytes, before parsing)."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError("a number with too many digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > 2 * MAX_JSON_DIGITS:
        raise ValueError("a number with too many digits")
    return float(text)


def parse_json(body: bytes):
    """A request's JSON document, its numbers bounded (a 5,000-digit integer is refused here, never parsed).
    ValueError for anything that is not such a document."""
    return json.loads(body, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON knows")


def bad_values(values) -> list[str]:
    """The names of the fields among (name, value) pairs that hold control characters."""
    return sorted({name for name, value in values if isinstance(value, str) and has_controls(value)
                   or has_controls(name)})


def bad_json_strings(document, path: str = "") -> list[str]:
    """Where in a parsed JSON document a string (or a key) holds control characters, as dotted paths."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and has_controls(key):
                found.append(name)
            found += bad_json_strings(value, name)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += bad_json_strings(value, f"{path}.{index}" if path else str(index))
    elif isinstance(document, str) and has_controls(document):
        found.append(path or "_")
    return found

"""Presentation helpers: money in fen → ¥, masking of personal data, months."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from babel.dates import get_day_names
from flask_babel import format_datetime, get_locale
from flask_babel import gettext
from markupsafe import Markup

from . import clock

# "12.5", "190000.00", "190,000.00", "¥1,234.50" — amounts as people type them and as pages show them
_YUAN_RE = re.compile(r"^\s*[¥￥]?\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{1,2}))?\s*$")
MAX_YUAN_DIGITS = 9  # ¥999,999,999.99 at most (models_base.MAX_FEN)


class AmountTooLarge(ValueError):
    """A well-formed amount beyond what anyone could mean."""


def format_fen(amount_fen: int | None) -> str:
    """12345 → '¥123.45'; integer arithmetic only."""
    if amount_fen is None:
        return ""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return Markup(f"{sign}¥{yuan:,}.{fen:02d}")  # digits and signs only: nothing to escape on long pages


_FAST_PATTERNS = {"yyyy-MM-dd": "%Y-%m-%d", "yyyy-MM-dd HH:mm": "%Y-%m-%d %H:%M", "yyyy-MM-dd HH:mm:ss": "%Y-%m-%d %H:%M:%S",
                  "HH:mm": "%H:%M"}


def local_dt(moment: datetime | None, pattern: str = "yyyy-MM-dd HH:mm") -> str:
    """A stored (naive UTC) moment in the shop's time zone. The numeric patterns the pages use are
    formatted directly (pages of statements show hundreds); anything else goes through Babel."""
    if moment is None:
        return ""
    fast = _FAST_PATTERNS.get(pattern)
    if fast is not None:
        return clock.local(moment).strftime(fast)
    return format_datetime(moment, pattern)


def yuan_decimal(amount_fen: int | None):
    """Exact yuan for spreadsheets: 12345 → Decimal('123.45'). Never a float."""
    return None if amount_fen is None else Decimal(int(amount_fen)).scaleb(-2)


def fen_to_yuan_text(amount_fen: int | None) -> str:
    """For form fields: 12345 → '123.45' (no symbol, no separators)."""
    if amount_fen is None:
        return ""
    yuan, fen = divmod(int(amount_fen), 100)
    return f"{yuan}.{fen:02d}"


def parse_yuan(text: str) -> int:
    """'12.5' → 1250 fen, '190,000.00' → 19000000. Raises ValueError for anything that is not an amount
    (AmountTooLarge beyond ¥999,999,999.99). Integer arithmetic only."""
    match = _YUAN_RE.match(text or "")
    if not match:
        raise ValueError(text)
    whole, frac = match.group(1).replace(",", ""), (match.group(2) or "").ljust(2, "0")
    if len(whole.lstrip("0")) > MAX_YUAN_DIGITS:
        raise AmountTooLarge(text)
    return int(whole) * 100 + int(frac)


class Measure(NamedTuple):
    """How a quantity is counted: its unit (斤, 把) and how many stored units make one (10: tenths of a 斤)."""

    unit: str
    scale: int = 1


def measure(unit: str, decimals: int | None = 0) -> Measure:
    """The measure of a product known by its unit and its decimals (1: sold by 0.1 of the unit)."""
    return Measure(unit or "", 10 ** int(decimals or 0))


def measure_of(thing) -> Measure:
    """The measure of a product, an order line (its own scale, its product's unit), a lot, or a Measure."""
    if isinstance(thing, Measure):
        return thing
    product = getattr(thing, "product", None)
    if product is not None and not hasattr(thing, "unit"):
        return Measure(product.unit, getattr(thing, "scale", None) or product.scale)
    return Measure(thing.unit, thing.scale)


def quantity_figure(quantity: int | None, scale: int = 1) -> str:
    """A stored quantity's number as people read it: 123 tenths (scale 10) → "12.3", 2697695 → "269,769.5";
    by the piece, the whole number with thousands separated."""
    if quantity is None:
        return ""
    sign, quantity = ("-" if quantity < 0 else ""), abs(int(quantity))
    if scale == 1:
        return f"{sign}{quantity:,}"
    digits = len(str(scale)) - 1
    return f"{sign}{quantity // scale:,}.{quantity % scale:0{digits}d}"


def format_quantity(quantity: int | None, measure, *, unit: bool = True) -> str:
    """The one way a quantity is written, on every page, export and message: (quantity, product) → "12.3 斤",
    "1,200 把"; `unit=False` for a column whose heading names the unit."""
    if quantity is None:
        return ""
    m = measure_of(measure)
    figure = quantity_figure(quantity, m.scale)
    return f"{figure} {m.unit}" if unit and m.unit else figure


def quantity_number(quantity: int | None, measure):
    """A quantity for a spreadsheet cell: a whole number, or a weight as an exact decimal (Decimal('12.3'))."""
    if quantity is None:
        return None
    scale = measure_of(measure).scale
    return int(quantity) if scale == 1 else Decimal(int(quantity)) / Decimal(scale)


def quantity_totals(items) -> str:
    """(quantity, measure) pairs totalled per unit of measure, never across units: "390 把 · 36.5 斤"."""
    totals: dict[Measure, int] = {}
    for quantity, measure in items:
        m = measure_of(measure)
        totals[m] = totals.get(m, 0) + int(quantity or 0)
    return " · ".join(format_quantity(total, m) for m, total in totals.items())


def opening_days(weekdays: str | None) -> str:
    """ISO weekdays ("123456") as people say them: 周一至周六, 周一、周三、周五 (Mon–Sat in English)."""
    if not weekdays:
        return ""
    days = sorted({int(d) for d in weekdays if d.isascii() and d.isdigit() and 1 <= int(d) <= 7})
    names = get_day_names("abbreviated", locale=get_locale())  # 0 is Monday
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return gettext("%(a)s至%(b)s", a=names[days[0] - 1], b=names[days[-1] - 1])
    return gettext("、").join(names[d - 1] for d in days)


def mask_name(name: str | None) -> str:
    """康本树 → 康**; keeps the surname only."""
    if not name:
        return ""
    name = name.strip()
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str:
    """13812341234 → 138****1234."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "****" + digits[-4:]


def mask_code(code: str | None) -> str:
    """Registry codes keep their first 4 and last 2 characters."""
    if not code:
        return ""
    if len(code) <= 6:
        return code[:1] + "*" * (len(code) - 1)
    return code[:4] + "*" * (len(code) - 6) + code[-2:]


def month_in_window(month: int, start: int | None, end: int | None) -> bool:
    """Season windows are month ranges and may wrap the new year (11 → 2)."""
    if start is None or end is None:
        return True
    if start <= end:
        return start <= month <= end
    return month >= start or month <= end

"""Presentation helpers: money in fen → ¥, masking of personal data, months."""
from __future__ import annotations

import re
from datetime import date

_YUAN_RE = re.compile(r"^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$")


def format_fen(amount_fen: int | None) -> str:
    """12345 → '¥123.45'; integer arithmetic only."""
    if amount_fen is None:
        return ""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"


def yuan_decimal(amount_fen: int | None):
    """Exact yuan for spreadsheets: 12345 → Decimal('123.45'). Never a float."""
    from decimal import Decimal

    return None if amount_fen is None else Decimal(int(amount_fen)).scaleb(-2)


def fen_to_yuan_text(amount_fen: int | None) -> str:
    """For form fields: 12345 → '123.45' (no symbol, no separators)."""
    if amount_fen is None:
        return ""
    yuan, fen = divmod(int(amount_fen), 100)
    return f"{yuan}.{fen:02d}"


def parse_yuan(text: str) -> int:
    """'12.5' → 1250 fen. Raises ValueError for anything that is not a plain amount."""
    match = _YUAN_RE.match(text or "")
    if not match:
        raise ValueError(text)
    whole, frac = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(frac)


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


def today_local() -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()

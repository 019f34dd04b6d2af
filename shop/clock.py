"""The shop's time. The database holds naive UTC; people live in the shop's time zone (`SHOP_TIMEZONE`,
default Asia/Shanghai). Local days and months, and the parsing of typed dates, months and periods, are
written here once; every other module asks this one.
"""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context
from flask_babel import gettext as _

from .errors import ValidationFailed

DEFAULT_TIMEZONE = "Asia/Shanghai"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """A time zone name zoneinfo knows (settings are checked at start-up)."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def zone() -> ZoneInfo:
    name = current_app.config.get("SHOP_TIMEZONE", DEFAULT_TIMEZONE) if has_app_context() else DEFAULT_TIMEZONE
    return _zone(name)


# --- moments -------------------------------------------------------------------------------------------

def now() -> datetime:
    """Now, as the database keeps it: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def local(moment: datetime, in_zone: ZoneInfo | None = None) -> datetime:
    """A stored (naive UTC) moment in the shop's time zone (`in_zone`: that zone, already looked up — for a
    long list of moments)."""
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return aware.astimezone(in_zone or zone())


def local_day(moment: datetime, in_zone: ZoneInfo | None = None) -> date:
    return local(moment, in_zone).date()


def today() -> date:
    return datetime.now(zone()).date()


def day_start(day: date) -> datetime:
    """The naive UTC instant at which a local day begins."""
    return datetime.combine(day, time.min, tzinfo=zone()).astimezone(timezone.utc).replace(tzinfo=None)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[from, to) in naive UTC covering the local days start … end."""
    return day_start(start), day_start(end + timedelta(days=1))


def at_local(day: date, hour: int = 12) -> datetime:
    """A naive UTC moment at a local hour of a day (payments booked on a date land at its noon)."""
    return datetime.combine(day, time(hour), tzinfo=zone()).astimezone(timezone.utc).replace(tzinfo=None)


def at_local_time(day: date, when: time) -> datetime:
    """The naive UTC moment of a local wall-clock time on a day."""
    return datetime.combine(day, when, tzinfo=zone()).astimezone(timezone.utc).replace(tzinfo=None)


# --- months ----------------------------------------------------------------------------------------------

def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_after(month: str, n: int = 1) -> str:
    year, mon = int(month[:4]), int(month[5:])
    index = year * 12 + mon - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> int:
    """How many months from `first` to `last`, both included."""
    return (int(last[:4]) * 12 + int(last[5:])) - (int(first[:4]) * 12 + int(first[5:])) + 1


def month_start(month: str) -> date:
    return date(int(month[:4]), int(month[5:]), 1)


def month_end(month: str) -> date:
    year, mon = int(month[:4]), int(month[5:])
    return date(year, mon, calendar.monthrange(year, mon)[1])


# --- what people type -----------------------------------------------------------------------------------

def is_month(value: str | None) -> bool:
    return bool(value) and bool(_MONTH.match(value))


def parse_month(value: str | None, field_name: str = "month") -> str:
    value = (value or "").strip()
    if not _MONTH.match(value):
        raise ValidationFailed.on(field_name, _("月份格式应为 YYYY-MM。"))
    return value


def parse_date(value: str | None, field_name: str = "date") -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise ValidationFailed.on(field_name, _("日期格式应为 YYYY-MM-DD。")) from None


def check_period(start: date, end: date) -> None:
    """A period of days (statements, reports) may not end before it starts."""
    if end < start:
        raise ValidationFailed.on("to", _("结束日期不能早于开始日期。"))


def parse_period(start: str | None, end: str | None, default_start: date, default_end: date) -> tuple[date, date]:
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD` as typed into a page; either may be left out."""
    lo = parse_date(start, "from") if start else default_start
    hi = parse_date(end, "to") if end else default_end
    check_period(lo, hi)
    return lo, hi


def twelve_months(today: date) -> tuple[date, date]:
    """The last twelve months up to today: what the watch list looks at, so it means the same in January as in
    December."""
    try:
        start = today.replace(year=today.year - 1) + timedelta(days=1)
    except ValueError:  # 29 February
        start = today.replace(year=today.year - 1, day=28) + timedelta(days=1)
    return start, today


def twelve_months_before(today: date) -> tuple[date, date]:
    start, _end = twelve_months(today)
    earlier, _ = twelve_months(start - timedelta(days=1))
    return earlier, start - timedelta(days=1)


def year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)

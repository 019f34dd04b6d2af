"""Column helpers shared by every domain's models."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import CheckConstraint


def utcnow() -> datetime:
    """Naive UTC: the database holds UTC; pages show Asia/Shanghai."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name or f"{column}_valid")


def month_window_checks(prefix: str = "season") -> tuple[CheckConstraint, ...]:
    start, end = f"{prefix}_start_month", f"{prefix}_end_month"
    return (
        CheckConstraint(f"({start} IS NULL) = ({end} IS NULL)", name=f"{prefix}_both_or_neither"),
        CheckConstraint(f"{start} IS NULL OR ({start} BETWEEN 1 AND 12)", name=f"{prefix}_start_month_range"),
        CheckConstraint(f"{end} IS NULL OR ({end} BETWEEN 1 AND 12)", name=f"{prefix}_end_month_range"),
    )

"""Column helpers shared by every domain's models."""
from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Integer

from .clock import now as utcnow  # noqa: F401 - the column default of every "…_at": naive UTC

# Money in fen is 64-bit: a county's year of sales, or one contract's cap (¥30,000,000.00 is 3×10⁹ fen),
# is beyond a 32-bit integer. SQLite's INTEGER is already 64-bit, so it keeps its plain type there.
Money = BigInteger().with_variant(Integer(), "sqlite")
# The largest amount anyone may type: ¥999,999,999.99 (what the yuan fields accept, far within 64 bits).
MAX_FEN = 99_999_999_999


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

"""Column helpers shared by every domain's models."""
from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Integer, cast

from .clock import now as utcnow  # noqa: F401 - the column default of every "…_at": naive UTC

# Money in fen is 64-bit: a county's year of sales, or one contract's cap (¥30,000,000.00 is 3×10⁹ fen),
# is beyond a 32-bit integer. SQLite's INTEGER is already 64-bit, so it keeps its plain type there.
Money = BigInteger().with_variant(Integer(), "sqlite")
# The largest amount anyone may type: ¥999,999,999.99 (what the yuan fields accept, far within 64 bits).
MAX_FEN = 99_999_999_999


def value_fen(quantity: int, unit_price_fen: int, scale: int = 1) -> int:
    """What `quantity` smallest units cost at `unit_price_fen` per priced unit of `scale` smallest units, rounded
    half-up to the fen — the one rounding rule of the shop (12.3 斤 is 123 tenths at ¥1.50/斤: 123 × 150 / 10 =
    1845 fen). Integers only; with scale 1 (sold by the piece) it is the plain product."""
    if quantity < 0:
        return -value_fen(-quantity, unit_price_fen, scale)
    return (2 * quantity * unit_price_fen + scale) // (2 * scale)


def value_fen_sql(quantity, unit_price_fen, scale):
    """`value_fen` as an SQL expression, for sums in the database: the same integers, the same rounding (the
    quantities summed are never negative, so the database's integer division is the floor). 64-bit throughout."""
    return (2 * cast(quantity, Money) * unit_price_fen + scale) // (2 * scale)


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

# Execution options of a query that must see every village whoever asks (a uniqueness check, the county's
# figures): a village manager's queries are otherwise narrowed to their villages (see shop/scoping.py).
COUNTY_WIDE = {"county_wide": True}

"""Daily sales rollups: the ledger's sale and refund postings summed per local day and key.

The reports count money from the ledger's movements — one row per sale or refund transaction and allocation
(`movements`). A year of them at county scale is a few hundred thousand rows joined through five tables; the
rollups hold the same sums per day in two narrow tables (by buyer, by supply), so a year's report scans those
instead of joining the postings. They change only where the
ledger posts a sale or a refund, in the same transaction, by one guarded upsert per table
(`INSERT … ON CONFLICT DO UPDATE SET units = units + excluded.units …`): an increment the database applies
under the row's lock, never a value read and written back. Rows are inserted in key order, so two postings that
touch the same rows take their locks in the same order. `rebuild` recounts them from the ledger (a migration
and the bench's bulk seed use it; `flask ledger rollups-rebuild` for an operator), and `verify` compares them
to the raw aggregate, to the fen.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, bindparam, case, cast, delete, func, select, text, true

from .. import clock
from ..extensions import db
from ..orders.models import Allocation, Order, OrderLine
from ..sqltime import local_date, local_time
from ..sqlwrite import insert_adding
from .models import SUPPLIER_KINDS, Account, Entry, JournalTransaction, SalesDayBuyer, SalesDaySupply

TABLES = (SalesDayBuyer, SalesDaySupply)
MEASURES = ("units", "gross_fen", "credited_fen", "borne_fen", "sales")


def movements(lo: datetime | None = None, hi: datetime | None = None, *, transaction_id: int | None = None):
    """The ledger's sale and refund postings, one row per transaction and allocation: when, the units (+ sold,
    − refunded), their value (what the buyer paid: the supplier's credit, the fee and what the platform bore, as
    the ledger rounded it — by the piece or by weight), what the supplier was credited, and what the platform
    bore of a refund already paid out. Within [lo, hi), or of one transaction."""
    sign = case((JournalTransaction.kind == "refund", -1), else_=1)
    query = (select(Entry.allocation_id.label("allocation_id"), JournalTransaction.created_at.label("at"),
                    JournalTransaction.kind.label("kind"), (func.max(Entry.quantity) * sign).label("units"),
                    func.sum(case((Account.kind.in_(SUPPLIER_KINDS), -Entry.amount_fen), else_=0)).label("credited"),
                    func.sum(-Entry.amount_fen).label("gross"),
                    func.sum(case((Account.code == "refund_shortfall", -Entry.amount_fen), else_=0)).label("borne"))
             .select_from(Entry).join(JournalTransaction, JournalTransaction.id == Entry.transaction_id)
             .join(Account, Account.id == Entry.account_id)
             .where(Entry.allocation_id.is_not(None), JournalTransaction.kind.in_(("sale", "refund"))))
    if transaction_id is not None:
        query = query.where(Entry.transaction_id == transaction_id)
    if lo is not None:
        query = query.where(JournalTransaction.created_at >= lo)
    if hi is not None:
        query = query.where(JournalTransaction.created_at < hi)
    return (query.group_by(Entry.transaction_id, Entry.allocation_id, JournalTransaction.created_at,
                           JournalTransaction.kind)
            .subquery("movement"))


KEY_COLUMNS = {"organization_id": Order.organization_id, "channel": Order.channel, "contract_id": Order.contract_id,
               "buyer_id": Order.buyer_id, "product_id": OrderLine.product_id,
               "household_id": Allocation.household_id, "enterprise_id": Allocation.enterprise_id}
NULLABLE = {"organization_id", "contract_id", "household_id", "enterprise_id"}  # kept as 0 when absent


def _keys(table) -> list:
    """The columns each key of a rollup (but the day) comes from: the movement's order, line and allocation."""
    return [KEY_COLUMNS[name] for name in table.KEYS[1:]]


def _day(column):
    """The local day of a UTC timestamp column, as a date."""
    if db.engine.dialect.name == "postgresql":
        return cast(local_time(column), Date)
    return local_date(column)  # SQLite keeps dates as 'YYYY-MM-DD' text


def grouped(table, m, day, *, one_day: bool = False):
    """The movements `m` summed per the rollup's key, in key order: what its rows should hold. `one_day`: the
    movements are all of that day (one transaction's), so the day is a constant, not grouped by."""
    keys = _keys(table)
    named = [func.coalesce(key, 0) if name in NULLABLE else key for key, name in zip(keys, table.KEYS[1:])]
    grouping = keys if one_day else [day, *keys]  # PostgreSQL groups by the columns the keys are made of
    return (select(day.label("day"), *[key.label(name) for key, name in zip(named, table.KEYS[1:])],
                   func.sum(m.c.units).label("units"), func.sum(m.c.gross).label("gross_fen"),
                   func.sum(m.c.credited).label("credited_fen"), func.sum(m.c.borne).label("borne_fen"),
                   func.sum(case((m.c.kind == "sale", 1), else_=0)).label("sales"))
            .select_from(m).join(Allocation, Allocation.id == m.c.allocation_id)
            .join(OrderLine, OrderLine.id == Allocation.line_id).join(Order, Order.id == OrderLine.order_id)
            .where(true())  # SQLite reads an upsert's INSERT … SELECT unambiguously only with a WHERE
            .group_by(*grouping).order_by(*grouping))


_ADDING: dict[str, list] = {}  # per SQL dialect: the statements `add` runs, built once (their bind values vary)


def _adding_statements() -> list:
    dialect = db.engine.dialect.name
    if dialect not in _ADDING:
        m = movements(transaction_id=bindparam("transaction_id", type_=Integer))
        day = bindparam("day", type_=Date)
        _ADDING[dialect] = [insert_adding(table.__table__, [*table.KEYS, *MEASURES],
                                          grouped(table, m, day, one_day=True), list(table.KEYS), list(MEASURES))
                            for table in TABLES]
    return _ADDING[dialect]


def add(transaction_id: int, at: datetime) -> None:
    """Add one sale or refund transaction's movements (posted at `at`) to every rollup, in the transaction that
    posts it."""
    values = {"transaction_id": transaction_id, "day": clock.local_day(at)}
    for statement in _adding_statements():
        db.session.execute(statement, values)


def rebuild(connection=None) -> dict[str, int]:
    """Recount every rollup from the ledger, on the session's connection or the one given (a migration's). On
    PostgreSQL the rollups are locked against writers while it runs (a sale posted meanwhile waits, then adds to
    the recounted rows); readers carry on. Returns the rows each now holds."""
    run = connection if connection is not None else db.session
    if db.engine.dialect.name == "postgresql":
        run.execute(text("LOCK TABLE " + ", ".join(t.__tablename__ for t in TABLES) + " IN EXCLUSIVE MODE"))
    m = movements()
    counts = {}
    for table in TABLES:
        run.execute(delete(table.__table__))
        run.execute(table.__table__.insert().from_select([*table.KEYS, *MEASURES], grouped(table, m, _day(m.c.at))))
        counts[table.__tablename__] = run.scalar(select(func.count()).select_from(table.__table__))
    return counts


def _as_day(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def verify() -> list[str]:
    """Each rollup holds exactly the raw aggregate of the ledger's movements, row for row, to the fen."""
    problems = []
    m = movements()
    for table in TABLES:
        width = len(table.KEYS)
        raw = {(_as_day(row[0]), *row[1:width]): tuple(int(v) for v in row[width:])
               for row in db.session.execute(grouped(table, m, _day(m.c.at)))}
        kept = {tuple(row[:width]): tuple(int(v) for v in row[width:])
                for row in db.session.execute(select(*[table.__table__.c[c] for c in (*table.KEYS, *MEASURES)]))}
        wrong = sorted((key for key in raw.keys() | kept.keys() if raw.get(key) != kept.get(key)), key=str)
        for key in wrong[:5]:
            problems.append(f"{table.__tablename__} {dict(zip(table.KEYS, key))}: kept {kept.get(key)}, "
                            f"the ledger's postings sum to {raw.get(key)} ({', '.join(MEASURES)})")
        if len(wrong) > 5:
            problems.append(f"{table.__tablename__}: {len(wrong) - 5} more rows differ")
    return problems

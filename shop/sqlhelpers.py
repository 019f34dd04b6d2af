"""SQL expressions that differ between SQLite and PostgreSQL."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import clock
from .extensions import db


def local_time(column):
    """A UTC timestamp column as the wall-clock time in the shop's time zone, right for any zone and any day of
    the year (half-hour offsets, summer time): PostgreSQL converts with AT TIME ZONE, SQLite with the function
    `shop_local_time` every connection is given (`db_sqlite`). The zone is passed with each query."""
    # the zone is written into the SQL (a checked IANA name), so a GROUP BY repeats the very same expression
    name = literal_column("'" + clock.zone().key.replace("'", "''") + "'")
    if db.engine.dialect.name == "postgresql":
        return func.timezone(name, func.timezone(literal_column("'UTC'"), column))
    return func.shop_local_time(column, name, type_=String)


def local_month(column):
    """'YYYY-MM' of a UTC timestamp column, in the shop's time zone."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(local_time(column), "YYYY-MM", type_=String)
    return func.substr(local_time(column), 1, 7, type_=String)


def date_month(column):
    """'YYYY-MM' of a date column (a day already in the shop's time zone)."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM", type_=String)
    return func.strftime("%Y-%m", column, type_=String)


def local_date(column):
    """'YYYY-MM-DD' of a UTC timestamp column, in the shop's time zone."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(local_time(column), "YYYY-MM-DD", type_=String)
    return func.substr(local_time(column), 1, 10, type_=String)


def order_number(placed_at, order_id):
    """`orders.models.order_number` in SQL, for exports: YYYYMMDD-00042 (the id to at least five digits)."""
    if db.engine.dialect.name == "postgresql":
        digits = func.cast(order_id, String)
        return (func.to_char(placed_at, "YYYYMMDD", type_=String) + "-"
                + func.lpad(digits, func.greatest(5, func.length(digits)), "0", type_=String))
    return func.strftime("%Y%m%d", placed_at, type_=String) + "-" + func.printf("%05d", order_id, type_=String)


@dataclass
class Paged:
    """One page of rows that are not whole entities (what the pager macro needs, as Flask-SQLAlchemy's
    Pagination offers for entities)."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def paged_rows(query, page: int, per_page: int) -> Paged:
    """A page of a row query (newest first is the caller's ORDER BY), with the total count."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = max(1, min(page, max(1, -(-total // per_page))))
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    return Paged(rows, page, per_page, total)


def insert_ignoring_conflicts(table):
    """INSERT … ON CONFLICT DO NOTHING, for get-or-create races."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def insert_adding(table, columns: list[str], rows_select, keys: list[str], counters: list[str]):
    """INSERT … SELECT that adds to the rows already there: ON CONFLICT (keys) DO UPDATE SET each counter to
    itself plus the new value — an increment applied under the row's lock, never read and written back."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).from_select(columns, rows_select)
    return statement.on_conflict_do_update(index_elements=keys,
                                           set_={name: table.c[name] + statement.excluded[name] for name in counters})


def lock_row(model, row_id: int) -> None:
    """Take one row's write lock before reading it for a change, so two actors on it go one after the other:
    SELECT … FOR UPDATE on PostgreSQL; on SQLite, which has one writer at a time, a no-op UPDATE takes the
    database's write lock (and a transaction that read stale data meets "database is locked" and is retried)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(model.id).where(model.id == row_id).with_for_update())
    else:
        db.session.execute(update(model).where(model.id == row_id).values(id=model.id)
                           .execution_options(synchronize_session=False))

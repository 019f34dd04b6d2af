"""SQL expressions that differ between SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db


def local_month(column):
    """'YYYY-MM' of a UTC timestamp column, in Asia/Shanghai (UTC+8, no daylight saving)."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(column + literal_column("interval '8 hours'"), "YYYY-MM")
    return func.strftime("%Y-%m", column, "+8 hours")


def local_date(column):
    """'YYYY-MM-DD' of a UTC timestamp column, in Asia/Shanghai."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(column + literal_column("interval '8 hours'"), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, "+8 hours")


def insert_ignoring_conflicts(table):
    """INSERT … ON CONFLICT DO NOTHING, for get-or-create races."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def lock_row(model, row_id: int) -> None:
    """Take one row's write lock before reading it for a change, so two actors on it go one after the other:
    SELECT … FOR UPDATE on PostgreSQL; on SQLite, which has one writer at a time, a no-op UPDATE takes the
    database's write lock (and a transaction that read stale data meets "database is locked" and is retried)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(model.id).where(model.id == row_id).with_for_update())
    else:
        db.session.execute(update(model).where(model.id == row_id).values(id=model.id)
                           .execution_options(synchronize_session=False))

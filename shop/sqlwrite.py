"""Writes that differ between SQLite and PostgreSQL: insert-or-ignore, insert-or-add, and a row's write lock."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db


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

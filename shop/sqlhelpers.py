"""SQL expressions that differ between SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import func, literal_column
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

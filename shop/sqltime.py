"""The shop's time in SQL: a UTC timestamp column's local wall-clock time, day and month, the same in
PostgreSQL and SQLite and the same as `clock` computes in Python, in any time zone."""
from __future__ import annotations

from sqlalchemy import String, func, literal_column

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

"""SQLite settings: foreign keys on, WAL for concurrent readers, a busy timeout for writers; and the one function
SQLite lacks that the shop's SQL needs — a UTC moment's wall-clock time in a time zone."""
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.engine import Engine


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(stored: str | None, zone: str) -> str | None:
    """`shop_local_time(column, zone)`: a stored naive-UTC timestamp ('YYYY-MM-DD HH:MM:SS[.ffffff]') as the
    wall-clock time in `zone`, in the same form — what PostgreSQL's AT TIME ZONE gives."""
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored).replace(tzinfo=timezone.utc).astimezone(_zone(zone))
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.create_function("shop_local_time", 2, local_time, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if ":memory:" not in str(engine.url) and engine.url.database:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

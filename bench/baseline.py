"""The floor the shop is measured against, served the same way on the same database:
`GET /bare` answers a constant; `POST /insert` inserts one row and commits."""
from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, event, func, insert

metadata = MetaData()
ping = Table("bench_ping", metadata, Column("id", Integer, primary_key=True), Column("at", DateTime,
                                                                                   server_default=func.now()))


def create_app() -> Flask:
    from shop.config import normalize_database_url

    url = normalize_database_url(os.environ["DATABASE_URL"])
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":  # the same connection settings as the shop's
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    app = Flask("baseline")  # bench_ping is created by the runner before the workers start

    @app.get("/bare")
    def bare():
        return "ok"

    @app.post("/insert")
    def insert_one():
        with engine.begin() as connection:
            connection.execute(insert(ping))
        return "ok"

    return app

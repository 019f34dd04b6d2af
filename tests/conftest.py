"""Test set-up: every test runs on SQLite, and again on PostgreSQL when TEST_DATABASE_URL is set.

The schema is built once per backend by running the Alembic migrations (so the migrations
themselves are exercised); between tests every table is emptied.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, text

from shop import create_app
from shop.config import normalize_database_url
from shop.extensions import db

pytest_plugins = ["tests.payments.stripe_fixtures"]

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
FAST_HASH = "scrypt:1024:8:1"  # same algorithm, cheaper parameters: tests log in often


class ShopClient(FlaskClient):
    """A test client that submits forms the way a browser does: with the CSRF token."""

    _raw_token = hashlib.sha1(b"test-csrf").hexdigest()

    def csrf_token(self) -> str:
        with self.session_transaction() as sess:
            sess.setdefault("csrf_token", self._raw_token)
            raw = sess["csrf_token"]
        return URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token").dumps(raw)

    def open(self, *args, **kwargs):
        csrf = kwargs.pop("csrf", True)
        method = kwargs.get("method", "GET")
        data = kwargs.get("data")
        if csrf and method == "POST" and isinstance(data, dict) and "csrf_token" not in data:
            kwargs["data"] = {**data, "csrf_token": self.csrf_token()}
        # Each request gets its own app context (its own `g` and database session), as on a real
        # server; otherwise Flask reuses the test's context and state leaks between requests.
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        if has_app_context():
            db.session.expire_all()  # the test's own session sees what the request committed
        return response

    def login(self, username: str, password: str = "correct-horse-battery"):
        response = self.post("/login", data={"username": username, "password": password})
        assert response.status_code == 302, f"login as {username} failed"
        return response

    def logout(self):
        return self.post("/logout", data={})


def _reset_schema(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def compiled_translations():
    """Compile the .po catalogs the way `make translations` does, so pytest alone works too."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "shop" / "translations"
    for po in root.glob("*/LC_MESSAGES/messages.po"):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        with po.with_suffix(".mo").open("wb") as fh:
            write_mo(fh, catalog)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'shop.sqlite3'}"
    else:
        url = normalize_database_url(os.environ["TEST_DATABASE_URL"])
    _reset_schema(url)
    app = create_app({"INSTANCE_PATH": tmp_path_factory.mktemp("instance"), "SQLALCHEMY_DATABASE_URI": url,
                      "ENVIRON": {"SECRET_KEY": "x"}})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return url


@pytest.fixture
def backend(database_url) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture(autouse=True)
def _postgres_only(request):
    """Tests marked postgres_only (concurrency and locking) run on PostgreSQL, where READ COMMITTED and row
    locks behave as in production; on SQLite they are skipped, saying so."""
    if request.node.get_closest_marker("postgres_only") and "database_url" in request.fixturenames:
        if not request.getfixturevalue("database_url").startswith("postgresql"):
            pytest.skip("a concurrency test: it runs on PostgreSQL (TEST_DATABASE_URL)")


@pytest.fixture
def app(database_url, tmp_path):
    instance = tmp_path / "instance"
    app = create_app({
        "INSTANCE_PATH": instance,
        "ENVIRON": {"SECRET_KEY": "test-secret-key"},
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TESTING": True,
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "SERVER_NAME": "shop.test",
        "SHOP_CATALOG_CACHE_SECONDS": 0,  # each test sees the stock as it is; the cache has its own test
    })
    app.test_client_class = ShopClient
    with app.app_context():
        yield app
        db.session.remove()
        empty_all_tables()
        db.engine.dispose()


def empty_all_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def client(app) -> ShopClient:
    return app.test_client()


@pytest.fixture
def world(app):
    """A small village: one of each kind of user, a few households, products and pickup points."""
    from tests import factories

    return factories.world()


@pytest.fixture
def pending_order(world):
    """staff01's own order of 2 eggs, placed and not yet paid."""
    from tests import factories

    world.order = factories.order(world.staff, world.point, (world.eggs, 2))
    return world.order


def text_of(response) -> str:
    """The page's visible text, roughly: tags stripped, whitespace collapsed."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path

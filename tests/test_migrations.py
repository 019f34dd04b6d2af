"""Models and migrations agree, and the migrations run both ways."""
import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, select, text

from shop import create_app
from shop.extensions import db
from shop.ledger.models import PLATFORM_ACCOUNTS


def _expression_indexes() -> set[str]:
    """Indexes on expressions, which SQLite's reflection cannot read: compared by name instead."""
    return {index.name for table in db.metadata.sorted_tables for index in table.indexes
            if any(not isinstance(e, Column) for e in index.expressions)}


def _compare(conn) -> list:
    skipped = _expression_indexes()
    context = MigrationContext.configure(conn, opts={
        "compare_type": True, "render_as_batch": True,
        "include_object": lambda obj, name, kind, reflected, other: not (kind == "index" and name in skipped)})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression-based index")
        return compare_metadata(context, db.metadata)


def _index_names(conn) -> set[str]:
    if conn.dialect.name == "sqlite":
        return set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
    return set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")).scalars())


def test_models_match_migrations(app):
    """What `flask db check` does: autogenerate against the migrated database finds nothing."""
    with db.engine.connect() as conn:
        diff = _compare(conn)
        names = _index_names(conn)
    assert diff == [], f"models and migrations disagree: {diff}"
    assert _expression_indexes() <= names
    assert "ix_shop_order_sale_at" not in names  # read by no query: dropped (0019)


def test_migrations_downgrade_and_upgrade_again(tmp_path):
    from flask_migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k"}, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        with db.engine.connect() as conn:
            assert _compare(conn) == []
            # the platform's own accounts are made by a migration, not by the first sale
            codes = set(conn.execute(text("SELECT code FROM ledger_account WHERE kind = 'platform'")).scalars())
            assert codes == set(PLATFORM_ACCOUNTS)
            assert _expression_indexes() <= _index_names(conn)


def test_check_constraints_match_too(app):
    """Autogenerate does not compare CHECK constraints of existing tables, so they are compared here:
    every CHECK the models declare exists, by name, in the migrated database — and no other."""
    from sqlalchemy import CheckConstraint, inspect

    inspector = inspect(db.engine)
    for table in db.metadata.sorted_tables:
        declared = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        # SQLite reports the CHECKs of boolean columns too; only named ones count
        actual = {c["name"] for c in inspector.get_check_constraints(table.name) if c.get("name")}
        assert declared == actual, f"{table.name}: models {sorted(declared - actual)} vs database {sorted(actual - declared)}"


def _literals(sql: str) -> set[str]:
    import re

    return set(re.findall(r"'([^']*)'", sql))


def test_check_constraints_of_models_and_migrations_agree(app):
    """Autogenerate does not compare CHECK constraints: each model's checks exist in the migrated database under
    the same name and allow the same codes (a status, role or event added to a model needs its migration)."""
    from sqlalchemy import CheckConstraint, inspect

    inspector = inspect(db.engine)
    problems = []
    for table in db.metadata.sorted_tables:
        found = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(table.name)}
        for constraint in table.constraints:
            if not isinstance(constraint, CheckConstraint):
                continue
            name = constraint.name
            if name not in found:
                problems.append(f"{table.name}: {name} missing")
            elif _literals(str(constraint.sqltext)) != _literals(found[name]):
                problems.append(f"{table.name}: {name} allows {_literals(found[name])}, the model "
                                f"{_literals(str(constraint.sqltext))}")
    assert problems == []


def test_migrations_change_tables_that_other_rows_refer_to(tmp_path):
    """On SQLite a changed table is copied into a new one; rows elsewhere that refer to it (a user's
    notifications) must neither stop the migration nor be lost."""
    from flask_migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'referred.sqlite3'}"
    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k"}, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(revision="0019")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO user_account (id, username, display_name, password_hash, role, active, "
                              "session_version, created_at) VALUES (1, 'u', 'U', 'x', 'staff', 1, 1, '2026-01-01')"))
            conn.execute(text("INSERT INTO notification (user_id, event, key, title, created_at) "
                              "VALUES (1, 'test', 'k1', 't', '2026-01-01'), (1, 'test', 'k2', 't', '2026-01-01')"))
        upgrade()
        downgrade(revision="0018")
        upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT unread_notifications FROM user_account")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM notification")).scalar() == 2
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_the_county_migration_changes_no_figure(tmp_path, monkeypatch):
    """0021 makes the shop's one village the first of a county's (products, pickup and sales points become its
    own; the manager is granted it): every report, export and manager's page reads the same before and after."""
    from flask import url_for
    from flask_migrate import downgrade, upgrade

    from shop import clock, demo
    from shop.reports import figures
    from tests.conftest import FAST_HASH, ShopClient, text_of

    url = f"sqlite:///{tmp_path / 'county.sqlite3'}"
    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k"}, "SQLALCHEMY_DATABASE_URI": url,
                      "TESTING": True, "PASSWORD_HASH_METHOD": FAST_HASH, "SERVER_NAME": "shop.test",
                      "SHOP_CATALOG_CACHE_SECONDS": 0})
    app.test_client_class = ShopClient
    pages = {"admin": ["reports.report", "reports.summary", "reports.watch", "ledger.overview",
                       "contracts.receivables", "catalog.index"],
             "manager": ["producers.households", "producers.enterprises", "inventory.overview", "orders.manage",
                         "ledger.overview", "reports.watch", "orders.manager_home", "catalog_manage.products",
                         "catalog_manage.pickup_points", "points.points", "contracts.company_orders"]}

    def figures_now() -> dict:
        today = clock.today()
        seen: dict = {}
        for year in (today.year - 1, today.year):
            period = figures.Period.year(year)
            seen[f"report {year}"] = repr(figures.build(period, today))
            for name in figures.TABLES:
                seen[f"{name} {year}"] = figures.rows(name, period)
        for role, endpoints in pages.items():
            client = app.test_client()
            client.login(role, demo.DEMO_PASSWORD)
            for endpoint in endpoints:
                with app.test_request_context():
                    path = url_for(endpoint)
                response = client.get(path)
                assert response.status_code == 200, (role, endpoint)
                seen[f"{role} {endpoint}"] = text_of(response)
        db.session.remove()
        return seen

    # going down to 0020 drops what came after it — the welfare funds and what orders drew on them (0025, 0026) —
    # so the comparison, of 0021's effect, is made without the demo's welfare spending
    monkeypatch.setattr(demo, "_spend_welfare", lambda *args: 0)
    with app.app_context():
        upgrade()
        demo.load()
        # before 0021 a manager saw every village there was: so does the demo's manager, for this comparison
        from shop.accounts.models import User
        from shop.producers import services as producers
        from shop.producers.models import Village

        manager = db.session.scalar(select(User).where(User.username == "manager"))
        producers.set_managed_villages(manager.id, set(db.session.scalars(select(Village.id))))
        db.session.commit()
        before = figures_now()
        db.engine.dispose()
        downgrade(revision="0020")  # the shop as an installation had it: one village, one manager for everything
        upgrade()                   # and what 0021 makes of it
        after = figures_now()
    assert before.keys() == after.keys()
    assert [key for key in before if before[key] != after[key]] == []

"""Models and migrations agree, and the migrations run both ways."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shop import create_app
from shop.extensions import db


def test_models_match_migrations(app):
    """What `flask db check` does: autogenerate against the migrated database finds nothing."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrations_downgrade_and_upgrade_again(tmp_path):
    from flask_migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k"}, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            assert compare_metadata(context, db.metadata) == []


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

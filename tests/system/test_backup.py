"""A backup restores into a shop whose books are clean."""
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shop import create_app
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger.models import JournalTransaction
from tests.orders.helpers import run_cli


def test_backup_restores_with_clean_books(app, backend, world, tmp_path):
    if backend != "sqlite":
        pytest.skip("flask backup copies SQLite; PostgreSQL is backed up with pg_dump")
    app.test_cli_runner().invoke(args=["demo", "load"])
    code, output = run_cli(app, "backup", "--to", str(tmp_path))
    assert code == 0, output
    copy = Path(output.strip().splitlines()[-1])
    assert copy.exists() and copy.name.startswith("shop-") and copy.suffix == ".sqlite3"
    counts = (db.session.scalar(select(func.count(JournalTransaction.id))), db.session.scalar(select(func.count(Lot.id))))
    restored = create_app({"INSTANCE_PATH": tmp_path / "restored", "ENVIRON": {"SECRET_KEY": "k"},
                           "SQLALCHEMY_DATABASE_URI": f"sqlite:///{copy}"})
    with restored.app_context():
        assert (db.session.scalar(select(func.count(JournalTransaction.id))),
                db.session.scalar(select(func.count(Lot.id)))) == counts
        for command in (("ledger", "verify"), ("stock", "verify")):
            result = restored.test_cli_runner().invoke(args=list(command))
            assert result.exit_code == 0, result.output
        db.session.remove()
        db.engine.dispose()


def test_backup_refuses_postgresql(app, backend):
    if backend != "postgresql":
        pytest.skip("only meaningful on PostgreSQL")
    code, output = run_cli(app, "backup")
    assert code != 0 and "pg_dump" in output

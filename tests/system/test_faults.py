"""A worker killed in the middle of a checkout and payment leaves no half-written order, allocation
or posting: the database rolls the open transaction back."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from shop.extensions import db
from shop.inventory import services as inventory
from shop.inventory.models import Lot, StockMovement
from shop.ledger import services as ledger
from shop.ledger.models import Entry, JournalTransaction
from shop.orders.models import Allocation, Order

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import os, signal, sys
    from shop import create_app
    from shop.extensions import db
    from shop.accounts.models import User
    from shop.orders import services as orders
    from shop.payments import services as payments

    app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "ENVIRON": {"SECRET_KEY": "k"},
                      "INSTANCE_PATH": sys.argv[5]})
    with app.app_context():
        buyer = db.session.get(User, int(sys.argv[2]))
        order = orders.place_order(buyer, payment_method="offline", pickup_point_id=int(sys.argv[3]),
                                   lines=[(int(sys.argv[4]), 7)])
        payments.confirm_offline_payment(order, reference="R-killed", user_id=int(sys.argv[6]))
        db.session.flush()
        print("written, not committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies inside the transaction
""")


def counts():
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Order, Allocation, StockMovement, JournalTransaction, Entry))


def test_a_worker_killed_inside_checkout_and_payment_leaves_nothing_half_written(app, world, database_url, tmp_path):
    before, remaining = counts(), world.lot.remaining
    db.session.commit()
    result = subprocess.run([sys.executable, "-c", WORKER, database_url, str(world.staff.id), str(world.point.id),
                             str(world.eggs.id), str(tmp_path), str(world.manager.id)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "written, not committed" in result.stdout
    db.session.expire_all()
    assert counts() == before
    assert db.session.get(Lot, world.lot.id).remaining == remaining
    assert ledger.verify() == [] and inventory.verify() == []
    # and the shop goes on: the same checkout now succeeds
    from tests.factories import order

    assert order(world.staff, world.point, (world.eggs, 7)).status == "pending_payment"

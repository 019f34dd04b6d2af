"""Fifty buyers race for the last ten units: exactly ten win, nobody oversells, every loser is told."""
import threading

import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.inventory import services as inventory
from shop.inventory.models import Lot
from shop.inventory.services import InsufficientStock, LineRequest
from shop.unit_of_work import run as commit_with_retry
from tests.factories import product, receive

BUYERS, UNITS = 50, 10


@pytest.mark.parametrize("round_", range(3))
def test_fifty_buyers_race_for_the_last_ten_units(app, world, round_):
    item = product(f"最后十枚鸡蛋{round_}")
    # the last ten units, spread over three lots from two households
    receive(world.h1, world.manager, (item, 4))
    receive(world.h2, world.manager, (item, 3))
    receive(world.h3, world.manager, (item, 3))
    db.session.commit()
    product_id, staff_id = item.id, world.staff.id  # plain ids: threads never touch this session's objects
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(BUYERS)

    def buyer(n: int) -> None:
        with app.app_context():
            try:
                start.wait()
                commit_with_retry(lambda: inventory.allocate(
                    [LineRequest(0, product_id, 1)], buyer_id=staff_id if n % 2 else None, reference=f"race:{n}"))
                outcome = "won"
            except InsufficientStock:
                outcome = "short"
            except Exception as exc:  # noqa: BLE001 - anything else is a failure the test reports
                outcome = f"error: {exc!r}"
            finally:
                db.session.remove()
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(BUYERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    errors = [r for r in results if r.startswith("error")]
    assert not errors, errors[:3]
    assert results.count("won") == UNITS
    assert results.count("short") == BUYERS - UNITS
    db.session.expire_all()
    lots = db.session.scalars(select(Lot).where(Lot.product_id == item.id)).all()
    assert sum(lot.remaining for lot in lots) == 0
    assert all(lot.remaining >= 0 for lot in lots)
    assert sum(lot.reserved for lot in lots) == UNITS
    assert inventory.verify() == []

"""Every web form that moves money or stock carries a one-time token: the same body posted twice — a double tap,
a reload, a retry after a time-out — does the work once, and the second answer goes where the first went.

The list below is every such form; `test_every_view_that_moves_money_or_stock_submits_once` reads the views'
source and fails when a view calls a money or stock service without `submit_once`, so a new form cannot be
left off it."""
from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from tests.points.helpers import season

ROOT = Path(__file__).resolve().parents[2] / "shop"

# services whose call from a web form moves money or stock
MOVERS = {"place_order", "place_checkout", "checkout", "refund_order", "receive", "adjust", "pay_out", "record_payment",
          "request_bulk_order", "record_arrival", "close_day"}


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _paid_order(world):
    from shop.payments import services as payments
    from tests.factories import order

    placed = order(world.staff, world.point, (world.eggs, 4))
    payments.confirm_offline_payment(placed, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    return placed


def _cases(world):
    """(who, url, form data, what counts the effect) for every form that moves money or stock."""
    from shop.contracts.models import CompanyPayment
    from shop.inventory.models import Intake, Lot, StockMovement
    from shop.ledger.models import Payout
    from shop.orders.models import Order, Refund
    from shop.points.models import PointDay

    paid = _paid_order(world)
    line = paid.lines[0]
    s = season(world)
    return {
        "checkout": ("staff01", "/checkout", {"handover": "pickup", "payment_method": "offline",
                                              "pickup_point_id": str(world.point.id)},
                     lambda: _count(Order, Order.buyer_id == world.staff.id)),
        "refund": ("manager", f"/manage/orders/{paid.id}/refund", {f"qty-{line.id}": "1", "reason": "破了一个"},
                   lambda: _count(Refund)),
        "intake": ("manager", f"/manage/intake/household/{world.h2.id}",
                   {"rows-0-product_id": str(world.eggs.id), "rows-0-quantity": "10"}, lambda: _count(Intake)),
        "adjust": ("manager", f"/manage/lots/{world.lot.id}/adjust",
                   {"reason": "damaged", "quantity": "1", "note": "碎了"},
                   lambda: _count(StockMovement, StockMovement.kind == "adjust")),
        "payout": ("manager", f"/manage/ledger/household/{world.h1.id}/payouts",
                   {"amount": "1.00", "method": "cash", "reference": "R-9"}, lambda: _count(Payout)),
        "company transfer": ("admin", f"/admin/companies/{world.jinlv.id}/payments",
                             {"amount": "1.00", "reference": "T-1", "paid_on": date.today().isoformat()},
                             lambda: _count(CompanyPayment)),
        "bulk order": ("buyer-jinlv", "/company/bulk", {f"qty-{world.eggs.id}": "2"},
                       lambda: _count(Order, Order.channel == "bulk")),
        "arrival": ("op01", f"/op/points/{s.point.id}/arrivals",
                    {"grower": f"h{world.h2.id}", "product_id": str(s.melon.id), "quantity": "12.5"},
                    lambda: _count(Lot, Lot.sales_point_id == s.point.id)),
        "day close": ("op01", f"/op/points/{s.point.id}/close", {"counted": "0", "note": ""},
                      lambda: _count(PointDay)),
    }


CASES = ["checkout", "refund", "intake", "adjust", "payout", "company transfer", "bulk order", "arrival", "day close"]


@pytest.mark.parametrize("case", CASES)
def test_a_form_that_moves_money_or_stock_posted_twice_does_its_work_once(app, world, case):
    from shop.orders import services as orders

    if case == "company transfer":
        _owing_company(world)
    who, url, data, effect = _cases(world)[case]
    client = app.test_client()
    client.login(who)
    if case == "checkout":
        orders.set_cart_quantity(world.staff, world.eggs.id, 2)
        db.session.commit()
    before = effect()
    body = {**data, "once": "the-same-token-twice"}
    first = client.post(url, data=body)
    assert first.status_code in (302, 303), (case, first.status_code, first.get_data(as_text=True)[:300])
    assert effect() == before + 1, case
    second = client.post(url, data=body)
    assert second.status_code in (302, 303) and second.headers["Location"] == first.headers["Location"], case
    assert effect() == before + 1, case
    with client.session_transaction() as session:
        assert any("已经提交过" in message for _c, message in session.get("_flashes", []))


def _owing_company(world):
    """劲旅 owes something: a bulk order accepted, so a transfer has something to settle."""
    from shop.contracts import services as contracts

    order = contracts.request_bulk_order(world.buyer, [(world.eggs.id, 2)])
    contracts.confirm_bulk_order(order, user_id=world.manager.id)
    contracts.deliver(order, user_id=world.manager.id)
    contracts.accept(order, {line.id: line.quantity for line in order.lines}, user_id=world.buyer.id)
    db.session.commit()


def _views_calling_movers() -> list[tuple[str, str, bool]]:
    """(module, view, uses submit_once) for every web view whose body calls a money or stock service."""
    found = []
    for path in sorted(ROOT.glob("*/views.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", None)
                      for n in ast.walk(node) if isinstance(n, ast.Call)}
            if called & MOVERS:
                found.append((path.parent.name, node.name, "submit_once" in called))
    return found


def test_every_view_that_moves_money_or_stock_submits_once():
    views = _views_calling_movers()
    assert len(views) >= len(CASES)
    assert [(module, name) for module, name, once in views if not once] == []

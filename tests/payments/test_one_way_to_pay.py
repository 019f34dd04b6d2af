"""Every way an order is paid goes through one paying step, so every way writes the same books: for random orders —
lines, lots from several suppliers, prices, weights, service fees, channels — the order, its timeline, the notice,
the ledger's entries and the daily rollups are identical whichever way the money came, but for where the money
now is; and everything is dated at the one moment of the payment, to the microsecond."""
from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shop import clock, unit_of_work
from shop.extensions import db
from shop.ledger.models import JournalTransaction, SalesDayBuyer, SalesDaySupply
from shop.orders.models import Order, OrderEvent
from tests.conftest import empty_all_tables
from tests.factories import household, organization, product, receive, user

RETAIL_WAYS = ("stripe at once", "stripe late", "offline")
SPEC = st.fixed_dictionaries({
    "lines": st.lists(st.tuples(st.integers(1, 5000), st.lists(st.integers(1, 9), min_size=1, max_size=3)),
                      min_size=1, max_size=3),
    "fee": st.sampled_from([0, 0, 13, 37, 100]),
    "minute": st.integers(0, 60 * 24 * 30),
})


def _world():
    from shop.catalog.models import PickupPoint
    from shop.producers import services as producers

    bureau, company = organization("县XX局", "government"), organization("劲旅环卫", "company")
    village = producers.create_village("XX村", "XX镇")
    staff, manager = user("staff01", "staff", bureau), user("manager", "manager")
    producers.set_managed_villages(manager.id, {village.id})
    buyer = user("buyer", "company", company)
    suppliers = [household(village, f"XXC00{n}", f"户{n}") for n in range(1, 4)]
    point = PickupPoint(village_id=village.id, name="村电商服务点", address="村委会", active=True)
    db.session.add(point)
    db.session.flush()
    return staff, manager, buyer, suppliers, point


def _place(spec):
    """The spec's order in a fresh shop: each line's product from up to three suppliers' lots, in full."""
    staff, manager, buyer, suppliers, point = _world()
    lines = []
    for n, (price, lots) in enumerate(spec["lines"]):
        item = product(f"商品{n}", "peanuts", "斤", price)
        for supplier, quantity in zip(suppliers, lots):
            receive(supplier, manager, (item, quantity))
        lines.append((item, sum(lots)))
    return staff, manager, buyer, point, lines


def _pay(way: str, spec, at: datetime) -> int:
    """Place the order and pay it `way`, through the service each way uses; the order's id."""
    from shop.contracts import services as contracts
    from shop.orders import services as orders
    from shop.payments import services as payments

    staff, manager, buyer, point, lines = _place(spec)
    if way == "on account":
        order = contracts.request_bulk_order(buyer, [(p.id, q) for p, q in lines], at=at)
        contracts.confirm_bulk_order(order, user_id=manager.id)
        contracts.deliver(order, user_id=manager.id, at=at)
        contracts.accept(order, {line.id: line.quantity for line in order.lines}, user_id=buyer.id, at=at)
        return order.id
    method = "offline" if way == "offline" else "stripe"
    order = orders.place_order(staff, payment_method=method, pickup_point_id=point.id,
                               lines=[(p.id, q) for p, q in lines], at=at - timedelta(minutes=5))
    if way == "offline":
        payments.confirm_offline_payment(order, reference="R-1", user_id=manager.id, at=at)
        return order.id
    order.stripe_session_id = "cs_test_1"
    db.session.flush()
    session = {"id": "cs_test_1", "payment_status": "paid", "amount_total": order.total_fen, "currency": "cny",
               "payment_intent": "pi_test_1", "client_reference_id": str(order.id)}
    if way == "stripe at once":
        assert payments._paid_at_once(session, at=at) is not None
    else:  # the full path: a late notice about an order known by its row
        assert payments.record_payment(order, amount_fen=order.total_fen, currency="cny", way="stripe",
                                       reference="cs_test_1", payment_intent_id="pi_test_1", at=at)
    return order.id


def _books(order_id: int, at: datetime) -> dict:
    """What paying wrote, with ids, references and where the money now is taken out."""
    order = db.session.get(Order, order_id)
    transactions = db.session.scalars(select(JournalTransaction).where(JournalTransaction.order_id == order_id)).all()
    entries = sorted((e.account.kind, e.account.household_id and e.account.household.code, e.account.code,
                      e.amount_fen, e.quantity, e.created_at == at)
                     for t in transactions for e in t.entries
                     if e.account.kind in ("household", "enterprise") or e.account.code == "fee_income")
    paid_events = [(e.to_status, e.created_at) for e in db.session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.to_status.in_(("paid", "accepted"))))]
    return {
        "paid": (order.payment_status, order.total_fen, (order.paid_at or order.accepted_at) == at),
        "posted at": [t.created_at for t in transactions],
        "events at": [when for _status, when in paid_events],
        "entries": entries,
        "supply": sorted((r.day, r.product_id, r.units, r.gross_fen, r.credited_fen, r.sales)
                         for r in db.session.scalars(select(SalesDaySupply))),
        "buyer days": sorted((r.day, r.gross_fen, r.credited_fen) for r in db.session.scalars(select(SalesDayBuyer))),
    }


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=SPEC)
def test_every_way_of_paying_writes_the_same_books_at_the_same_moment(app, spec):
    app.config.update(SHOP_SERVICE_FEE_PERMILLE=spec["fee"], STRIPE_SECRET_KEY="sk_test_placing_only",
                      SHOP_STRIPE_MIN_FEN=1)
    at = datetime(2026, 1, 1, 12, 0, 0, 123456) + timedelta(minutes=spec["minute"])
    seen = {}
    try:
        for way in (*RETAIL_WAYS, "on account"):
            order_id = unit_of_work.run(lambda: _pay(way, spec, at))
            books = _books(order_id, at)
            assert books["posted at"] == [at] and books["events at"] == [at], (way, books)
            assert books["paid"][2], way
            if way == "offline":  # a staff member and a company buy in different units: compare the money only
                seen["retail"] = books
            seen[way] = books
            db.session.remove()
            empty_all_tables()
    finally:
        db.session.remove()
        empty_all_tables()
    first = seen["stripe at once"]
    for way in RETAIL_WAYS[1:]:
        assert seen[way] == first, way
    account = seen["on account"]
    assert (account["entries"], account["supply"]) == (first["entries"], first["supply"])
    # the sale's local day is the day of the one moment it was paid
    assert {row[0] for row in first["supply"]} == {clock.local_day(at)}

"""Stripe events: verified, applied once, in any order, never moving an order backwards."""
import itertools
import threading
import time

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.ledger import services as ledger
from shop.ledger.models import JournalTransaction
from shop.payments.models import ProcessedStripeEvent
from tests.factories import order as place, product, receive
from tests.orders.helpers import assert_books_clean, run_cli
from tests.payments.stripe_fixtures import StripeTestDriver


def stripe_order(app, world, quantity=5, item=None):
    from shop.payments import services as payments

    from shop.unit_of_work import run

    placed = place(world.staff, world.point, (item or world.eggs, quantity), payment_method="stripe")
    db.session.commit()
    with app.test_request_context():
        payments.start_checkout(placed.id, unit=run)
    db.session.refresh(placed)
    return placed


def sales() -> int:
    return db.session.scalar(select(func.count(JournalTransaction.id)).where(JournalTransaction.kind == "sale"))


def test_forged_stale_and_unsigned_webhooks_are_refused_and_write_nothing(app, client, world, stripe_driver):
    order = stripe_order(app, world)
    event = stripe_driver.pay(order.stripe_session_id)
    assert stripe_driver.deliver(event, secret="whsec_forged").status_code == 400
    assert stripe_driver.deliver(event, timestamp=int(time.time()) - 600).status_code == 400
    payload, headers = StripeTestDriver.signed(event)
    assert client.post("/stripe/webhook", data=payload, headers={"Content-Type": "application/json"},
                       csrf=False).status_code == 400
    tampered = payload.replace(b'"paid"', b'"PAID"')
    assert client.post("/stripe/webhook", data=tampered, headers=headers, csrf=False).status_code == 400
    db.session.refresh(order)
    assert order.status == "pending_payment"
    assert db.session.scalar(select(func.count()).select_from(ProcessedStripeEvent)) == 0
    assert stripe_driver.deliver(event).status_code == 200  # the genuine one still works
    db.session.refresh(order)
    assert order.status == "paid"


def test_the_same_event_ten_times_has_one_effect(app, client, world, stripe_driver):
    order = stripe_order(app, world)
    event = stripe_driver.pay(order.stripe_session_id)
    outcomes = [stripe_driver.deliver(event) for _ in range(10)]
    assert all(r.status_code == 200 for r in outcomes)
    assert [r.get_json()["outcome"] for r in outcomes].count("paid") == 1
    assert sales() == 1
    assert ledger.household_account(world.h1.id).owed_fen == 600
    assert_books_clean(app)


def test_the_same_event_ten_times_at_once_has_one_effect(app, world, stripe_driver, localstripe_url):
    order = stripe_order(app, world)
    event = stripe_driver.pay(order.stripe_session_id)
    payload, headers = StripeTestDriver.signed(event)
    statuses: list[int] = []
    start = threading.Barrier(10)

    def deliver():
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/stripe/webhook", data=payload, headers=headers, csrf=False).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 10
    assert sales() == 1
    assert db.session.scalar(select(func.count()).select_from(ProcessedStripeEvent)) == 1
    db.session.refresh(order)
    assert order.status == "paid" and ledger.household_account(world.h1.id).owed_fen == 600
    assert_books_clean(app)


def test_every_ordering_of_completed_and_refunded_events_ends_the_same(app, world, stripe_driver):
    """Payment, a dashboard refund of 2 units, then of the other 3: delivered in all six orders."""
    item = product("排列鸡蛋", price_fen=120)
    receive(world.h3, world.manager, (item, 100))
    db.session.commit()
    finals = set()
    for permutation in itertools.permutations(range(3)):
        order = stripe_order(app, world, quantity=5, item=item)
        paid = stripe_driver.pay(order.stripe_session_id)
        intent = paid["data"]["object"]["payment_intent"]
        first = stripe_driver.refund_event(intent, dashboard_amount=240)
        second = stripe_driver.refund_event(intent, dashboard_amount=360)
        events = [paid, first, second]
        for index in permutation:
            assert stripe_driver.deliver(events[index]).status_code == 200
        db.session.refresh(order)
        finals.add((order.status, order.payment_status, order.refunded_fen,
                    sum(line.refunded_quantity for line in order.lines),
                    sum(1 for e in order.events if e.to_status == "paid")))
    assert finals == {("cancelled", "refunded", 600, 5, 1)}  # every unit refunded before it left: closed
    assert ledger.household_account(world.h3.id).owed_fen == 0
    assert_books_clean(app)


def test_amount_mismatch_flags_the_order_instead_of_paying_it(app, client, world, stripe_driver):
    order = stripe_order(app, world)
    event = stripe_driver.pay(order.stripe_session_id, amount=1)
    assert stripe_driver.deliver(event).status_code == 200
    db.session.refresh(order)
    assert order.status == "pending_payment" and "does not match" in order.review_reason
    assert sales() == 0
    client.login("manager")
    assert order.number in client.get("/manage/orders?status=flagged").get_data(as_text=True)


def test_async_payment_waits_then_succeeds(app, world, stripe_driver):
    order = stripe_order(app, world)
    completed = stripe_driver.pay(order.stripe_session_id, **{"async": "1"})
    assert stripe_driver.deliver(completed).get_json()["outcome"] == "awaiting async payment"
    db.session.refresh(order)
    assert order.status == "pending_payment" and order.awaiting_async_payment
    # a hold awaiting an async payment is not expired from under it
    order.reserved_until = order.placed_at
    db.session.commit()
    assert run_cli(app, "orders", "expire")[0] == 0
    db.session.refresh(order)
    assert order.status == "pending_payment"
    response = stripe_driver.deliver(stripe_driver.async_result(order.stripe_session_id, "succeeded"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outcome"] == "paid", response.get_json()
    db.session.refresh(order)
    assert order.status == "paid"
    assert_books_clean(app)


def test_async_failure_and_expiry_release_the_stock(app, world, stripe_driver):
    failing = stripe_order(app, world, quantity=4)
    stripe_driver.deliver(stripe_driver.pay(failing.stripe_session_id, **{"async": "1"}))
    stripe_driver.deliver(stripe_driver.async_result(failing.stripe_session_id, "failed"))
    expiring = stripe_order(app, world, quantity=6)
    stripe_driver.deliver(stripe_driver.expire(expiring.stripe_session_id))
    for order in (failing, expiring):
        db.session.refresh(order)
        assert order.status == "cancelled"
    db.session.refresh(world.lot)
    assert world.lot.remaining == 30
    assert_books_clean(app)


def test_late_expiry_never_moves_a_paid_order_backwards(app, world, stripe_driver):
    order = stripe_order(app, world)
    stripe_driver.deliver(stripe_driver.pay(order.stripe_session_id))
    expired = stripe_driver.expire(order.stripe_session_id)
    assert stripe_driver.deliver(expired).get_json()["outcome"] == "ignored (paid)"
    db.session.refresh(order)
    assert order.status == "paid"


def test_an_event_for_another_session_of_the_same_order_id_is_not_applied(app, world, stripe_driver):
    order = stripe_order(app, world)
    event = stripe_driver.pay(order.stripe_session_id)
    event["id"] = "evt_other_session"
    event["data"]["object"]["id"] = "cs_test_not_this_orders_session"
    assert stripe_driver.deliver(event).get_json()["outcome"] == "unknown order"
    db.session.refresh(order)
    assert order.status == "pending_payment"


def test_unknown_event_types_get_200(client, stripe_driver):
    event = {"id": "evt_unknown_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    response = stripe_driver.deliver(event)
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"


def test_reconcile_applies_missed_events_once(app, world, stripe_driver):
    stripe_driver.forget_everything()  # only this test's events in Stripe
    order = stripe_order(app, world)
    stripe_driver.pay(order.stripe_session_id)  # Stripe has the event; the webhook never arrived
    code, output = run_cli(app, "payments", "reconcile", "--since", time.strftime("%Y-%m-%d"))
    assert code == 0 and "applied" in output, output
    db.session.refresh(order)
    assert order.status == "paid"
    code, output = run_cli(app, "payments", "reconcile", "--since", time.strftime("%Y-%m-%d"))
    assert code == 0 and "1 applied" not in output and "skipped" in output
    assert sales() == 1
    assert run_cli(app, "payments", "reconcile", "--since", "yesterday")[0] != 0


def test_alipay_and_wechat_pay_are_offered_when_enabled(app, world, stripe_driver):
    app.config["SHOP_STRIPE_WALLETS"] = ("alipay", "wechat_pay")
    order = stripe_order(app, world)
    session = stripe_driver.session(order.stripe_session_id)
    assert session["payment_method_types"] == ["card", "alipay", "wechat_pay"]
    assert session["payment_method_options"] == {"wechat_pay": {"client": "web"}}
    assert session["currency"] == "cny" and session["metadata"] == {"order_id": str(order.id)}


def test_settings_name_the_wallets(tmp_path):
    from shop.config import load_config

    config = load_config(tmp_path, {"SECRET_KEY": "k", "SHOP_STRIPE_WALLETS": "alipay, wechat_pay, bitcoin"})
    assert config["SHOP_STRIPE_WALLETS"] == ("alipay", "wechat_pay")


def _books_of(order_id: int, product_id: int) -> dict:
    """What paying an order wrote, with its own ids taken out: two like orders compare equal."""
    from shop.audit.models import AuditEvent
    from shop.ledger.models import SalesDaySupply
    from shop.notifications.models import Notification
    from shop.orders.models import Order, OrderEvent

    order = db.session.get(Order, order_id)
    session = order.stripe_session_id
    entries = sorted((e.account.kind, e.account.household_id, e.account.enterprise_id, e.account.code, e.amount_fen,
                      e.quantity) for t in db.session.scalars(select(JournalTransaction)
                                                               .where(JournalTransaction.order_id == order_id))
                     for e in t.entries)
    return {
        "order": (order.status, order.payment_status, order.payment_reference == session,
                  order.stripe_payment_intent_id is not None, order.paid_at is not None, order.awaiting_async_payment),
        "events": [(e.kind, e.from_status, e.to_status, e.note == session, e.user_id)
                   for e in db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id,
                                                                        OrderEvent.to_status == "paid"))],
        "told": [(n.user_id, n.event, n.title.replace(order.number, "N"), n.link == f"/orders/{order_id}")
                 for n in db.session.scalars(select(Notification).where(Notification.key == f"paid:{order_id}"))],
        "audit": [a.detail.replace(session, "S") for a in db.session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "shop_order", AuditEvent.object_id == order_id,
                                     AuditEvent.action == "payment"))],
        "entries": entries,
        "rollup": sorted((r.household_id, r.enterprise_id, r.units, r.gross_fen, r.credited_fen, r.sales)
                         for r in db.session.scalars(select(SalesDaySupply)
                                                     .where(SalesDaySupply.product_id == product_id))),
    }


def test_a_payment_found_by_its_session_or_by_its_locked_order_writes_the_same_books(app, world, stripe_driver, monkeypatch):
    """A pending order paid in full by its own session goes through the one paying step found by its session (no
    order loaded or locked through the ORM); the same payment reaching that step after the order is locked and
    loaded (as a late or repeated event does) leaves the same order, timeline, notice, audit line, ledger entries
    and rollups — here for two like orders of three lots from two suppliers, with a fee that rounds."""
    from shop.orders import services as orders

    app.config["SHOP_SERVICE_FEE_PERMILLE"] = 37
    first, second = product("甲花生", "peanuts", "斤", 333), product("乙花生", "peanuts", "斤", 333)
    for supplier, quantity in ((world.h1, 2), (world.h2, 3), (world.enterprise, 9)):
        receive(supplier, world.manager, (first, quantity), (second, quantity))
    db.session.commit()
    quick, full = stripe_order(app, world, 7, first), stripe_order(app, world, 7, second)
    locked = []
    real_lock = orders.lock
    monkeypatch.setattr(orders, "lock", lambda order: locked.append(order.id) or real_lock(order))
    assert stripe_driver.deliver(stripe_driver.pay(quick.stripe_session_id)).get_json()["outcome"] == "paid"
    assert locked == []  # found by its session: no order locked and loaded through the ORM
    from shop.payments import services as payments_services

    monkeypatch.setattr(payments_services, "_paid_at_once", lambda session: None)
    assert stripe_driver.deliver(stripe_driver.pay(full.stripe_session_id)).get_json()["outcome"] == "paid"
    assert full.id in locked  # found by its locked order
    db.session.expire_all()
    quick_books, full_books = _books_of(quick.id, first.id), _books_of(full.id, second.id)
    assert quick_books == full_books
    assert quick_books["order"] == ("paid", "paid", True, True, True, False)
    assert len(quick_books["rollup"]) == 3 and sum(r[3] for r in quick_books["rollup"]) == 7 * 333
    # 7 × ¥3.33 = ¥23.31, a fee of 86 fen split over three suppliers' parts, adding up exactly
    fee = sum(-e[4] for e in quick_books["entries"] if e[3] == "fee_income")
    credited = sum(-e[4] for e in quick_books["entries"] if e[0] in ("household", "enterprise"))
    assert (fee, credited) == (86, 2331 - 86)
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_twelve_payments_and_their_resends_at_once_post_each_sale_once(app, world, stripe_driver):
    """Twelve orders sharing two households' lots, each paid by its event and by a resend of it under another
    event id, all 24 delivered at once: twelve sales, each household credited exactly its units, the rollups
    exact, one line 'paid' on each order's timeline."""
    from shop.ledger.models import SalesDaySupply
    from shop.orders.models import OrderEvent

    item = product("并发鸡蛋", price_fen=130)
    receive(world.h2, world.manager, (item, 30))
    receive(world.h3, world.manager, (item, 30))
    db.session.commit()
    placed = [stripe_order(app, world, 4, item) for _ in range(12)]  # 48 units: 30 of h2's, then 18 of h3's
    events = []
    for order in placed:
        event = stripe_driver.pay(order.stripe_session_id)
        events += [event, {**event, "id": event["id"] + "_resent"}]
    bodies = [StripeTestDriver.signed(event) for event in events]
    outcomes: list[str] = []
    start = threading.Barrier(len(bodies))

    def deliver(payload, headers):
        client = app.test_client()
        start.wait()
        response = client.post("/stripe/webhook", data=payload, headers=headers, csrf=False)
        outcomes.append(response.get_json()["outcome"] if response.status_code == 200 else str(response.status_code))

    threads = [threading.Thread(target=deliver, args=body) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["not paid (paid)"] * 12 + ["paid"] * 12
    db.session.expire_all()
    assert sales() == 12
    assert ledger.household_account(world.h2.id).owed_fen == 30 * 130
    assert ledger.household_account(world.h3.id).owed_fen == 18 * 130
    rows = db.session.scalars(select(SalesDaySupply).where(SalesDaySupply.product_id == item.id)).all()
    per_household: dict[int, list[int]] = {}
    for r in rows:
        per_household.setdefault(r.household_id, [0, 0, 0])
        per_household[r.household_id] = [a + b for a, b in zip(per_household[r.household_id],
                                                                (r.units, r.gross_fen, r.sales))]
    assert per_household == {world.h2.id: [30, 3900, 8], world.h3.id: [18, 2340, 5]}  # 7½ orders, 4½ orders
    for order in placed:
        assert db.session.scalar(select(func.count(OrderEvent.id)).where(OrderEvent.order_id == order.id,
                                                                         OrderEvent.to_status == "paid")) == 1
    assert_books_clean(app)

"""Ordering rules: bad input changes nothing; reservations expire; cancellations and refunds."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.ledger import services as ledger
from shop.models_base import utcnow
from shop.orders import services as orders
from shop.payments import services as payments
from shop.orders.models import CartItem, Order
from tests.conftest import text_of
from tests.factories import order as place, receive
from tests.orders.helpers import assert_books_clean, buy, last_order, run_cli


def order_count() -> int:
    return db.session.scalar(select(func.count(Order.id)))


def stock(lot) -> tuple[int, int]:
    db.session.refresh(lot)
    return lot.remaining, lot.reserved


@pytest.mark.parametrize("quantity", ["0", "-3", "1.5", "abc", "99999999"])
def test_bad_cart_quantities_are_refused(client, world, quantity):
    client.login("staff01")
    response = client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": quantity})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count(CartItem.id))) == 0


def test_inactive_or_unknown_products_cannot_go_in_the_cart(client, world):
    client.login("staff01")
    for product_id in (world.retired.id, 99999):
        client.post("/cart/add", data={"product_id": str(product_id), "quantity": "1"})
    assert db.session.scalar(select(func.count(CartItem.id))) == 0


def test_more_than_available_is_refused_with_the_shortfall_and_changes_nothing(client, world):
    client.login("staff01")
    before_orders, before_stock = order_count(), stock(world.lot)
    response = buy(client, world, (world.eggs, 31), (world.peanuts, 2))
    assert response.status_code == 422
    page = text_of(response)
    assert "库存不足" in page and "散养土鸡蛋 需要 31，现有 30，缺 1" in page and "花生米 需要 2，现有 0，缺 2" in page
    assert order_count() == before_orders and stock(world.lot) == before_stock
    assert db.session.scalar(select(func.count(CartItem.id))) == 2  # the cart is kept to fix


def test_prices_come_from_the_server_not_the_form(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "3", "price": "1", "price_fen": "1"})
    client.post("/checkout", data={"handover": "pickup", "payment_method": "offline", "pickup_point_id": str(world.point.id),
                                   "total_fen": "1", "unit_price_fen": "1"})
    assert last_order().total_fen == 360


def test_a_product_taken_off_sale_after_it_was_put_in_the_cart(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "3"})
    world.eggs.active = False
    db.session.commit()
    before = order_count()
    response = buy(client, world)
    assert response.status_code == 422 and "已下架" in text_of(response)
    assert order_count() == before


def test_pickup_point_out_of_season_is_refused(client, world, monkeypatch):
    from datetime import date

    from shop import clock

    monkeypatch.setattr(clock, "today", lambda: date(2023, 11, 20))
    client.login("staff01")
    before = order_count()
    response = buy(client, world, (world.eggs, 1), point=world.melon_point)
    assert response.status_code == 422 and "现在不开放" in text_of(response)
    assert order_count() == before


def test_delivery_to_the_workplace(client, world):
    client.login("staff01")
    assert buy(client, world, (world.eggs, 2), workplace=True).status_code == 302
    order = last_order()
    assert order.pickup_point_id is None and order.delivery_address == "县XX局"


def test_online_payment_is_not_offered_without_stripe_keys(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "1"})
    page = text_of(client.get("/cart"))
    assert "本店暂未开通在线支付" in page and "在线支付（银行卡" not in page
    before = order_count()
    response = buy(client, world, payment="stripe")
    assert response.status_code == 422 and order_count() == before


def test_stripe_has_a_minimum_amount(app, client, world, stripe_app):
    client.login("staff01")
    before = order_count()
    response = buy(client, world, (world.eggs, 1), payment="stripe")  # ¥1.20 < ¥4.00
    assert response.status_code == 422 and "在线支付的最低金额为 ¥4.00" in text_of(response)
    assert order_count() == before


def test_reservations_expire_from_cron_and_release_the_stock_once(app, world, pending_order):
    world.order.reserved_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert stock(world.lot) == (28, 2)
    code, output = run_cli(app, "orders", "expire")
    assert code == 0 and f"expired 1 orders: {world.order.id}" in output
    assert run_cli(app, "orders", "expire")[1].startswith("expired 0 orders")
    db.session.refresh(world.order)
    assert world.order.status == "cancelled" and stock(world.lot) == (30, 0)
    assert world.order.events[-1].note == "reservation expired"
    assert_books_clean(app)


def test_reservations_expire_lazily_when_someone_else_wants_the_stock(app, world, pending_order):
    world.order.reserved_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    place(world.staff2, world.point, (world.eggs, 30))  # needs the 2 eggs held by the stale order
    db.session.refresh(world.order)
    assert world.order.status == "cancelled" and stock(world.lot) == (0, 30)


def test_two_hosts_expiring_at_once_release_once(app, world, pending_order):
    world.order.reserved_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    results = []

    def host():
        with app.app_context():
            from shop.unit_of_work import run as commit_with_retry

            results.append(commit_with_retry(lambda: orders.expire_reservations()))
            db.session.remove()

    threads = [threading.Thread(target=host) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(r) for r in results) == [0, 1]
    assert stock(world.lot) == (30, 0)
    assert_books_clean(app)


def test_buyer_cancels_while_pending_and_not_after(client, world, pending_order):
    client.login("staff01")
    assert client.post(f"/orders/{world.order.id}/cancel", data={"confirm": "1"}).status_code == 302
    db.session.refresh(world.order)
    assert world.order.status == "cancelled" and stock(world.lot) == (30, 0)
    paid = place(world.staff, world.point, (world.eggs, 3))
    payments.confirm_offline_payment(paid, reference="R-9", user_id=world.manager.id)
    db.session.commit()
    response = client.post(f"/orders/{paid.id}/cancel", data={"confirm": "1"})
    assert "不能变为" in text_of(client.get(response.headers["Location"]))
    db.session.refresh(paid)
    assert paid.status == "paid"


def test_someone_elses_order_is_a_404(app, client, world, pending_order):
    for username in ("staff02", "buyer-jinlv"):
        client.login(username)
        for url in (f"/orders/{world.order.id}", f"/orders/{world.order.id}/receipt",
                    f"/orders/{world.order.id}/payment-return"):
            assert client.get(url).status_code == 404, (username, url)
        assert client.post(f"/orders/{world.order.id}/cancel", data={"confirm": "1"}).status_code == 404
        assert client.post(f"/orders/{world.order.id}/pay", data={}).status_code == 404
        assert "散养土鸡蛋" not in text_of(client.get("/orders"))
        client.logout()
    db.session.refresh(world.order)
    assert world.order.status == "pending_payment"


def test_a_second_payment_of_a_paid_order_is_refused(client, world, pending_order):
    client.login("manager")
    client.post(f"/manage/orders/{world.order.id}/offline-payment", data={"reference": "R-1"})
    response = client.post(f"/manage/orders/{world.order.id}/offline-payment", data={"reference": "R-2"})
    assert "不能重复收款" in text_of(client.get(response.headers["Location"]))
    db.session.refresh(world.order)
    assert world.order.payment_reference == "R-1"
    assert ledger.household_account(world.h1.id).owed_fen == 240


def test_offline_payment_needs_a_receipt_number(client, world, pending_order):
    client.login("manager")
    client.post(f"/manage/orders/{world.order.id}/offline-payment", data={"reference": ""})
    db.session.refresh(world.order)
    assert world.order.status == "pending_payment"


def _paid_order(world, *items, stripe=False):
    placed = place(world.staff, world.point, *items)
    payments.confirm_offline_payment(placed, reference="R-100", user_id=world.manager.id)
    db.session.commit()
    return placed


def refund_form(order, quantities: dict, restock=False, lots=None, reason="坏了"):
    data = {f"qty-{line.id}": str(quantities.get(line.product_id, 0)) for line in order.lines}
    if restock:
        data["restock"] = "y"
    data["reason"] = reason
    return data


def test_partial_refund_with_restock_before_hand_over(app, client, world, pending_order):
    order = _paid_order(world, (world.eggs, 10))
    client.login("manager")
    response = client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 3}, restock=True))
    assert response.status_code == 302
    db.session.refresh(order)
    assert (order.status, order.payment_status, order.refunded_fen) == ("paid", "partially_refunded", 360)
    assert stock(world.lot) == (21, 9)  # 3 back on the shelf; 7 + world.order's 2 still held
    assert ledger.household_account(world.h1.id).owed_fen == 840
    assert_books_clean(app)


def test_partial_refund_without_restock_after_hand_over(app, client, world):
    order = _paid_order(world, (world.eggs, 10))
    orders.pack(order, user_id=world.manager.id)
    orders.hand_over(order, user_id=world.manager.id, to="康本树")
    db.session.commit()
    client.login("manager")
    client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 4}))
    db.session.refresh(order)
    assert (order.status, order.payment_status) == ("handed_over", "partially_refunded")
    assert stock(world.lot) == (20, 0)  # spoiled eggs stay gone
    assert ledger.household_account(world.h1.id).owed_fen == 720
    client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 6}, restock=True))
    db.session.refresh(order)
    assert (order.status, order.payment_status, order.refunded_fen) == ("handed_over", "refunded", 1200)
    assert stock(world.lot) == (26, 0)
    assert ledger.household_account(world.h1.id).owed_fen == 0
    assert_books_clean(app)


def test_refund_of_more_than_was_sold_is_refused(app, client, world, pending_order):
    order = _paid_order(world, (world.eggs, 5))
    client.login("manager")
    for quantity in (6, -1):
        response = client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: quantity}))
        assert response.status_code == 422
    response = client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {}))
    assert response.status_code == 422 and "请填写要退的数量" in text_of(response)
    db.session.refresh(order)
    assert order.status == "paid" and order.refunded_fen == 0
    with pytest.raises(orders.InvalidTransition):
        payments.refund_order(world.order, {world.order.lines[0].id: 1}, restock=True, user_id=world.manager.id)


def test_refund_from_the_lots_the_manager_names(app, client, world):
    receive(world.h2, world.manager, (world.eggs, 10))  # monitored household's eggs
    db.session.commit()
    order = _paid_order(world, (world.eggs, 37))  # 30 from the paired household, 7 from the monitored one
    allocations = {a.household_id: a for a in order.lines[0].allocations}
    assert allocations[world.h1.id].quantity == 30 and allocations[world.h2.id].quantity == 7
    client.login("manager")
    data = refund_form(order, {world.eggs.id: 2})
    data[f"lots-{order.lines[0].id}"] = str(allocations[world.h1.id].id)
    client.post(f"/manage/orders/{order.id}/refund", data=data)
    assert ledger.household_account(world.h1.id).owed_fen == 28 * 120
    assert ledger.household_account(world.h2.id).owed_fen == 7 * 120
    # without naming lots: the latest-allocated first (the monitored household's)
    client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 3}))
    assert ledger.household_account(world.h2.id).owed_fen == 4 * 120
    assert_books_clean(app)


def test_refund_through_stripe(app, client, world, stripe_driver):
    from tests.payments.test_webhooks import stripe_order

    order = stripe_order(app, world, quantity=10)
    stripe_driver.deliver(stripe_driver.pay(order.stripe_session_id))
    client.login("manager")
    response = client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 4}, restock=True))
    assert response.status_code == 302
    db.session.refresh(order)
    assert [r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [480]
    record = order.refunds[0]
    assert record.stripe_refund_id.startswith("re_") and record.stripe_status == "succeeded"
    # Stripe then tells us about the refund we made: it is matched by its id, and nothing more happens
    echo = stripe_driver.refund_event(order.stripe_payment_intent_id)
    assert stripe_driver.deliver(echo).get_json()["outcome"] == f"refund {record.id} succeeded"
    db.session.refresh(order)
    assert order.refunded_fen == 480 and len(order.refunds) == 1
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "退款记录" in page and "原路退回（在线支付）" in page and "已退回" in page and "¥4.80" in page
    assert_books_clean(app)


def test_pages_for_staff_and_the_service_point(client, world, pending_order):
    client.login("staff01")
    page = text_of(client.get(f"/orders/{world.order.id}"))
    assert "待付款" in page and "¥2.40" in page and "取消订单" in page
    assert world.h1.head_name not in page  # buyers do not see whose lot it is
    assert "散养土鸡蛋" in text_of(client.get("/orders"))
    client.logout()
    client.login("manager")
    page = text_of(client.get(f"/orders/{world.order.id}"))
    assert "李建国" in page and f"#{world.lot.id}" in page
    assert "村电商服务点" in text_of(client.get("/manage/orders?status=pending_payment"))

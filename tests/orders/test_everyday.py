"""Everyday ordering: the quantities on screen are what is ordered, holds fit how people pay, and a
cancelled order says why and by whom."""
import re
from datetime import date, time, timedelta

from sqlalchemy import func, select

from shop import clock
from shop.extensions import db
from shop.orders import services as orders
from shop.orders.models import CartItem, Order
from tests.conftest import text_of
from tests.factories import order as place
from tests.orders.helpers import last_order


def checkout(client, world, **quantities):
    data = {"handover": "pickup", "payment_method": "offline", "pickup_point_id": str(world.point.id)}
    data.update({f"qty-{product_id}": str(n) for product_id, n in quantities.items()})
    return client.post("/checkout", data=data)


def test_checkout_orders_the_quantity_on_screen_even_if_it_was_never_saved(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "1"})
    response = checkout(client, world, **{str(world.eggs.id): 10})  # typed 10, never tapped 更新数量
    assert response.status_code == 302
    order = last_order()
    assert [(line.product_id, line.quantity) for line in order.lines] == [(world.eggs.id, 10)]
    assert order.total_fen == 1200


def test_a_cart_changed_in_another_tab_is_refused_by_name_and_nothing_changes(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "2"})
    client.post("/cart/add", data={"product_id": str(world.peanuts.id), "quantity": "1"})  # another tab
    response = checkout(client, world, **{str(world.eggs.id): 5})  # the page only showed the eggs
    assert response.status_code == 422
    assert "又加入了 花生米" in text_of(response)
    assert db.session.scalar(select(func.count(Order.id))) == 0
    quantities = dict(db.session.execute(select(CartItem.product_id, CartItem.quantity)).all())
    assert quantities == {world.eggs.id: 2, world.peanuts.id: 1}  # not even the 5 was kept


def test_the_cart_saves_a_change_as_it_is_made_and_answers_the_new_totals(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "1"})
    answer = client.post("/cart/update", data={f"qty-{world.eggs.id}": "7"},
                         headers={"Accept": "application/json"})
    assert answer.status_code == 200
    assert answer.json["total"] == "¥8.40" and answer.json["lines"][str(world.eggs.id)]["total"] == "¥8.40"
    assert db.session.scalar(select(CartItem.quantity)) == 7
    refused = client.post("/cart/update", data={f"qty-{world.eggs.id}": "2000000"}, headers={"Accept": "application/json"})
    assert refused.status_code == 422 and "1000000" in refused.json["message"]
    assert refused.json["total"] == "¥8.40" and db.session.scalar(select(CartItem.quantity)) == 7


def test_the_cart_page_offers_steppers_and_keeps_the_total_outside_the_table(client, world):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "3"})
    html = client.get("/cart").get_data(as_text=True)
    assert 'data-step="1"' in html and 'name="qty-%d"' % world.eggs.id in html
    assert 'data-cart-total>¥3.60<' in html


def test_an_offline_order_is_held_to_the_closing_of_the_points_next_opening_day(app, world):
    world.point.open_weekdays, world.point.closes_at = "135", time(17, 30)  # Mon, Wed, Fri
    db.session.commit()
    tuesday_morning = clock.at_local_time(date(2026, 12, 1), time(9, 0))
    assert orders.hold_until("offline", world.point, tuesday_morning) == clock.at_local_time(date(2026, 12, 2), time(17, 30))
    friday_evening = clock.at_local_time(date(2026, 12, 4), time(19, 0))
    assert orders.hold_until("offline", world.point, friday_evening) == clock.at_local_time(date(2026, 12, 7), time(17, 30))
    # a point without a schedule: SHOP_OFFLINE_HOLD_HOURS; online payment: SHOP_RESERVATION_MINUTES
    assert orders.hold_until("offline", world.melon_point, tuesday_morning) == tuesday_morning + timedelta(hours=48)
    app.config["SHOP_OFFLINE_HOLD_HOURS"] = 6
    assert orders.hold_until("offline", None, tuesday_morning) == tuesday_morning + timedelta(hours=6)
    assert orders.hold_until("stripe", world.point, tuesday_morning) == tuesday_morning + timedelta(minutes=30)


def test_a_placed_offline_order_shows_its_deadline_and_outlives_half_an_hour(client, world):
    order = place(world.staff, world.point, (world.eggs, 2))
    assert order.reserved_until - order.placed_at == timedelta(hours=48)
    assert orders.expire_reservations(now=order.placed_at + timedelta(hours=2)) == []
    client.login("staff01")
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "保留至" in page and order.reserved_until and "取消订单" in page


def test_an_expired_order_says_the_shop_cancelled_it_and_why(client, world):
    order = place(world.staff, world.point, (world.eggs, 2))
    assert orders.expire_reservations(now=order.reserved_until + timedelta(minutes=1)) == [order.id]
    db.session.commit()
    client.login("staff01")
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "已取消" in page and "系统" in page and "超过保留时间未付款" in page


def test_cancelling_asks_first_and_records_who_and_why(client, world):
    order = place(world.staff, world.point, (world.eggs, 2))
    client.login("staff01")
    unconfirmed = client.post(f"/orders/{order.id}/cancel", data={})
    assert "请确认取消订单" in text_of(client.get(unconfirmed.headers["Location"]))
    db.session.refresh(order)
    assert order.status == "pending_payment"
    client.post(f"/orders/{order.id}/cancel", data={"confirm": "1", "reason": "买重了"})
    db.session.refresh(order)
    assert order.status == "cancelled"
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "买重了" in page and world.staff.display_name in page


def numbers_on(page: str) -> list[str]:
    return re.findall(r"\b\d{8}-\d{5}\b", page)


def test_the_managers_list_is_paged_newest_first_and_searchable(client, world, monkeypatch):
    from shop.orders import views
    monkeypatch.setattr(views, "MANAGE_PAGE_SIZE", 10)
    from shop.payments import services as payments
    placed = [place(world.staff2 if n == 7 else world.staff, world.point, (world.eggs, 1)) for n in range(26)]
    for order in placed[:25]:
        payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
        orders.pack(order, user_id=world.manager.id)
        orders.hand_over(order, user_id=world.manager.id, to="本人")
    db.session.commit()
    client.login("manager")
    newest_first = [o.number for o in reversed(placed[:25])]
    first = text_of(client.get("/manage/orders?status=handed_over"))
    assert numbers_on(first) == newest_first[:10] and "第 1 / 3 页，共 25 条" in first
    assert numbers_on(text_of(client.get("/manage/orders?status=handed_over&page=3"))) == newest_first[20:]
    found = numbers_on(text_of(client.get(f"/manage/orders?status=handed_over&q={placed[3].number}")))
    assert found == [placed[3].number]
    by_buyer = numbers_on(text_of(client.get("/manage/orders?status=handed_over&q=王秀英")))
    assert by_buyer == [placed[7].number]
    by_product = numbers_on(text_of(client.get("/manage/orders?status=pending_payment&q=土鸡蛋")))
    assert by_product == [placed[25].number]
    none = text_of(client.get("/manage/orders?status=handed_over&from=2001-01-01&to=2001-01-31"))
    assert "没有找到订单" in none and numbers_on(none) == []


def test_the_manager_lands_on_todays_work(client, world):
    from shop.payments import services as payments
    paid = place(world.staff, world.point, (world.eggs, 2))
    payments.confirm_offline_payment(paid, reference="R-1", user_id=world.manager.id)
    place(world.staff2, world.point, (world.eggs, 1))
    db.session.commit()
    response = client.post("/login", data={"username": "manager", "password": "correct-horse-battery"})
    assert response.headers["Location"].endswith("/manage/today")
    page = text_of(client.get("/manage/today"))
    assert "待打包 1" in page and "待付款 1" in page and "保留即将到期的订单" in page


def test_a_search_looks_through_every_order_whatever_tab_it_starts_from(client, world):
    """?q=<order number> from the 待打包 tab finds an order that was handed over long ago: the search form
    searches all orders, and the 全部 tab counts them all."""
    from shop.payments import services as payments

    done = place(world.staff, world.point, (world.eggs, 1))
    payments.confirm_offline_payment(done, reference="R-1", user_id=world.manager.id)
    orders.pack(done, user_id=world.manager.id)
    orders.hand_over(done, user_id=world.manager.id, to="本人")
    waiting = place(world.staff2, world.point, (world.eggs, 1))
    db.session.commit()
    client.login("manager")
    page = client.get("/manage/orders?status=paid")
    assert 'name="status" value="all"' in page.get_data(as_text=True)  # the search box searches everything
    found = text_of(client.get(f"/manage/orders?status=all&q={done.number}"))
    assert numbers_on(found) == [done.number]
    assert numbers_on(text_of(client.get("/manage/orders?status=all"))) == [waiting.number, done.number]
    assert "全部 (2)" in text_of(page)


def test_checking_out_an_empty_cart_says_why(client, world):
    client.login("staff01")
    response = client.post("/checkout", data={"handover": "pickup", "payment_method": "offline",
                                              "pickup_point_id": str(world.point.id)})
    assert response.status_code == 422 and "购物车是空的" in text_of(response) and "订单没有提交" in text_of(response)


def test_an_order_paid_in_person_says_where_and_when_to_pay(client, world):
    world.point.open_weekdays, world.point.closes_at = "123456", time(18, 0)
    db.session.commit()
    placed = place(world.staff, world.point, (world.eggs, 2))
    client.login("staff01")
    page = text_of(client.get(f"/orders/{placed.id}"))
    assert "到 村电商服务点 付款" in page and "XX村村委会东侧" in page and "周一至周六，18:00 前" in page
    assert clock.local(placed.reserved_until).strftime("%Y-%m-%d %H:%M") in page


def test_an_orders_suppliers_link_to_their_statements(client, world, pending_order):
    client.login("manager")
    html = client.get(f"/orders/{pending_order.id}").get_data(as_text=True)
    assert f"/manage/ledger/household/{world.h1.id}/statement" in html

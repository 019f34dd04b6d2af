"""Seasonal sales points: sales by weight, recorded once whatever the retries, flagged rather than dropped, paid in
cash or to the grower's own code, and a day that adds up."""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from shop import clock
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger import services as ledger
from shop.models_base import value_fen
from shop.orders.models import Order
from shop.points import services as points
from shop.points.models import PointDay, PointSale
from shop.reports import services as reports
from shop.unit_of_work import run
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean
from tests.points.helpers import sale, season, send
from tests.races import race


@pytest.fixture
def s(world):
    return season(world)


def owed(household) -> int:
    return ledger.kept_balance(ledger.find_account(household_id=household.id)) * -1


def income(household) -> int:
    today = clock.today()
    return ledger.summary(ledger.find_account(household_id=household.id), today - timedelta(days=60), today).income_fen


def test_a_weighed_sale_is_weight_times_price_rounded_half_up_to_the_fen():
    assert value_fen(123, 150, 10) == 1845        # 12.3 斤 at ¥1.50/斤 is ¥18.45
    assert value_fen(1, 155, 10) == 16            # 0.1 斤 at ¥1.55: 15.5 fen → 16
    assert value_fen(3, 115, 10) == 35            # 0.3 斤 at ¥1.15: 34.5 fen → 35
    assert value_fen(7, 120) == 840               # by the piece it is the plain product


@given(st.integers(1, 10_000_000), st.integers(1, 100_000_000))
def test_rounding_is_half_up_for_every_weight_and_price(tenths, price):
    exact = Decimal(tenths) * Decimal(price) / Decimal(10)
    assert value_fen(tenths, price, 10) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_the_operator_records_sales_and_the_grower_is_credited(client, world, s, app):
    client.login("op01")
    cash, qr = sale(s, 123), sale(s, 50, payment="grower_qr")
    response = send(client, s, cash, qr)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["recorded", "recorded"]
    assert results[0]["amount_fen"] == 1845 and results[0]["order_number"]
    order = db.session.get(Order, db.session.scalar(select(PointSale.order_id).where(PointSale.client_id == cash["id"])))
    assert (order.channel, order.status, order.payment_status, order.total_fen) == ("point", "handed_over", "paid", 1845)
    assert order.lines[0].quantity == 123 and order.lines[0].scale == 10
    db.session.refresh(s.lot)
    assert s.lot.remaining == 1000 - 123 - 50
    # cash: the grower is owed it; the grower's own code: earned and nothing owed
    assert owed(world.h1) == 1845
    assert income(world.h1) == 1845 + 750
    assert ledger.platform_balance("point_cash") == 1845
    assert ledger.platform_balance("grower_direct") == 0
    manager = app.test_client()
    manager.login("manager")
    statement = text_of(manager.get(f"/manage/ledger/household/{world.h1.id}/statement"))
    assert "12.3 斤 ¥1.50 临时销售点 ¥18.45" in statement and "5.0 斤 ¥1.50 临时销售点 ¥7.50" in statement
    assert "临时销售点有 0 笔" not in text_of(manager.get("/manage/today"))
    assert_books_clean(app)


def test_sending_the_same_batch_again_records_nothing_new(client, world, s):
    client.login("op01")
    batch = [sale(s, 100 + n) for n in range(5)]
    first = send(client, s, *batch).get_json()["results"]
    again = send(client, s, *reversed(batch)).get_json()["results"]
    assert all(r["status"] == "recorded" and not r["duplicate"] for r in first)
    assert all(r["status"] == "recorded" and r["duplicate"] for r in again)
    assert db.session.scalar(select(func.count(PointSale.id))) == 5
    assert db.session.scalar(select(func.count(Order.id)).where(Order.channel == "point")) == 5
    changed = dict(batch[0], quantity=999, amount_fen=value_fen(999, 150, 10))
    refused = send(client, s, changed).get_json()["results"][0]
    assert refused["status"] == "refused" and refused["code"] == "sale_differs"


def test_a_grower_without_a_valid_permit_cannot_sell(client, world, s):
    permit = points.valid_permit(s.point.id, world.h1.id, None, clock.today())
    run(lambda: points.revoke_permit(permit, user_id=world.manager.id))
    client.login("op01")
    result = send(client, s, sale(s, 100)).get_json()["results"][0]
    assert result["status"] == "refused" and "许可证" in result["message"]
    assert db.session.scalar(select(func.count(PointSale.id))) == 0
    db.session.refresh(s.lot)
    assert s.lot.remaining == 1000


@pytest.mark.parametrize("change, field", [
    ({"amount_fen": 1846}, "amount_fen"),            # not weight × price rounded
    ({"quantity": 0}, "quantity"),
    ({"payment": "wechat"}, "payment"),
    ({"receipt": "XG02-01-0001"}, "receipt"),        # another point's receipt
    ({"id": "not-a-uuid"}, "id"),
])
def test_a_malformed_sale_is_refused_by_its_field_and_changes_nothing(client, world, s, change, field):
    client.login("op01")
    result = send(client, s, dict(sale(s, 100), **change)).get_json()["results"][0]
    assert result["status"] == "refused" and field in result["fields"]
    assert db.session.scalar(select(func.count(PointSale.id))) == 0


def test_another_points_operator_is_refused(client, world, s):
    other = points.save_point(None, points.PointData(code="XG02", name="二号点", address="东街", first_day=s.point.first_day,
                                                     last_day=s.point.last_day), user_id=world.admin.id)
    from tests import factories
    factories.user("op02", "operator")
    points.assign_operator(other, db.session.scalar(select(points.User.id).where(points.User.username == "op02")))
    db.session.commit()
    client.login("op02")
    assert client.get(f"/op/points/{s.point.id}").status_code == 403
    assert send(client, s, sale(s, 10)).status_code == 403


def test_a_sale_beyond_the_lot_is_kept_and_flagged_then_the_manager_posts_it(client, world, s, app):
    client.login("op01")
    results = send(client, s, sale(s, 900), sale(s, 300)).get_json()["results"]
    assert [r["status"] for r in results] == ["recorded", "flagged"]
    flagged = db.session.scalar(select(PointSale).where(PointSale.status == "flagged"))
    assert "库存不足" in flagged.flag_reason and flagged.order_id is None
    manager = app.test_client()
    manager.login("manager")
    page = text_of(manager.get("/manage/points"))
    assert "待核对的销售" in page and flagged.receipt_number in page
    assert manager.post(f"/manage/points/sales/{flagged.id}/resolve", data={"action": "post", "note": "农户实有此货"}
                        ).status_code == 302
    db.session.refresh(flagged)
    assert flagged.status == "recorded" and flagged.order_id is not None
    assert owed(world.h1) == value_fen(900, 150, 10) + value_fen(300, 150, 10)
    assert_books_clean(app)


def test_a_flagged_sale_entered_by_mistake_is_voided(client, world, s, app):
    client.login("op01")
    send(client, s, sale(s, 2000))
    flagged = db.session.scalar(select(PointSale))
    manager = app.test_client()
    manager.login("manager")
    manager.post(f"/manage/points/sales/{flagged.id}/resolve", data={"action": "void", "note": "误录"})
    db.session.refresh(flagged)
    assert flagged.status == "voided" and owed(world.h1) == 0
    assert_books_clean(app)


def test_closing_the_day_with_a_cash_difference(client, world, s, app):
    client.login("op01")
    send(client, s, sale(s, 123), sale(s, 200), sale(s, 100, payment="grower_qr"))
    recorded = value_fen(123, 150, 10) + value_fen(200, 150, 10)    # ¥18.45 + ¥30.00 in cash
    page = text_of(client.get(f"/op/points/{s.point.id}/close"))
    assert "¥48.45" in page and "¥15.00" in page and "李**" in page and "李建国" not in page
    refused = client.post(f"/op/points/{s.point.id}/close", data={"counted": "48.00", "note": ""})
    assert refused.status_code == 422 and "请写明原因" in text_of(refused)
    assert db.session.scalar(select(func.count(PointDay.id))) == 0
    done = client.post(f"/op/points/{s.point.id}/close", data={"counted": "48.00", "note": "找零少收 0.45 元"})
    assert done.status_code == 302
    closed = db.session.scalar(select(PointDay))
    assert (closed.recorded_cash_fen, closed.counted_cash_fen, closed.difference_fen) == (recorded, 4800, -45)
    page = text_of(client.get(f"/op/points/{s.point.id}/close"))
    assert "短款 ¥0.45" in page
    assert ledger.platform_balance("point_cash") == 0
    assert ledger.platform_balance("cash_difference") == 45
    again = client.post(f"/op/points/{s.point.id}/close", data={"counted": "48.45", "note": "x"})
    assert again.status_code == 422 and "已经日结" in text_of(again)
    manager = app.test_client()
    manager.login("manager")
    assert "−¥0.45" in text_of(manager.get(f"/manage/points/{s.point.id}"))
    # a sale sent after the close debits the difference the count already held, and the books still agree
    send(client, s, sale(s, 10))
    assert_books_clean(app)


def test_the_report_counts_the_channel_and_says_it_in_a_sentence(client, world, s):
    client.login("op01")
    send(client, s, sale(s, 1000))
    report = reports.build(reports.Period.year(clock.today().year), clock.today())
    assert report.by_channel["point"] == 15000
    assert report.points_used == 1 and report.point_households == 1
    sentences = reports.summary_sentences(report)
    assert "设置西瓜临时销售点1处，销售150.00元，带动1户增收。" in sentences


def test_the_permit_card_and_its_public_check_page(client, world, s, app):
    permit = points.valid_permit(s.point.id, world.h1.id, None, clock.today())
    manager = app.test_client()
    manager.login("manager")
    card = text_of(manager.get(f"/manage/points/permits/{permit.id}/card"))
    assert permit.number in card and "李建国" in card
    check = client.get(f"/permit/{permit.token}")
    text = text_of(check)
    assert check.status_code == 200 and "有效" in text and "李**" in text and "李建国" not in text
    run(lambda: points.revoke_permit(permit, user_id=world.manager.id))
    assert "已注销" in text_of(client.get(f"/permit/{permit.token}"))
    assert client.get("/permit/nothing-here").status_code == 404


def test_the_api_syncs_the_same_way(world, s, app):
    from tests.api.conftest import ApiClient

    api = ApiClient(app)
    one = sale(s, 123)
    status, body = api.call("op01", "POST", f"/points/{s.point.id}/sales/sync", json={"sales": [one]})
    assert status == 200 and body["results"][0]["status"] == "recorded"
    status, body = api.call("op01", "POST", f"/points/{s.point.id}/sales/sync", json={"sales": [one]})
    assert body["results"][0]["duplicate"] is True
    status, state = api.call("op01", "GET", f"/points/{s.point.id}/state")
    grower = next(g for g in state["growers"] if g["household_id"] == world.h1.id)
    assert grower["stock"][str(s.melon.id)] == 1000 - 123 and grower["permits"]
    assert api.call("staff01", "GET", f"/points/{s.point.id}/state")[0] == 403


def test_the_operator_records_what_a_grower_brings_in_tenths(client, world, s):
    client.login("op01")
    response = client.post(f"/op/points/{s.point.id}/arrivals",
                           data={"grower": f"h{world.h2.id}", "product_id": str(s.melon.id), "quantity": "1250.5"})
    assert response.status_code == 302
    lot = db.session.scalar(select(Lot).where(Lot.household_id == world.h2.id))
    assert (lot.quantity_received, lot.sales_point_id) == (12505, s.point.id)
    bad = client.post(f"/op/points/{s.point.id}/arrivals",
                      data={"grower": f"h{world.h2.id}", "product_id": str(s.melon.id), "quantity": "12.34"})
    assert bad.status_code == 422 and "最多 1 位小数" in text_of(bad)


def test_weighed_products_and_point_stock_stay_out_of_the_catalog(client, world, s):
    client.login("staff01")
    assert "沙瓤西瓜" not in text_of(client.get("/"))
    refused = client.post("/cart/add", data={"product_id": str(s.melon.id), "quantity": "1"})
    assert db.session.scalar(select(func.count()).select_from(db.metadata.tables["cart_item"])) == 0
    assert refused.status_code in (302, 422)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 400), st.integers(5, 999), st.sampled_from(["cash", "grower_qr"])),
                min_size=1, max_size=6))
def test_weighed_sales_credit_growers_exactly_what_buyers_paid(app, world, sales):
    from tests import factories
    from tests.conftest import empty_all_tables

    try:
        s = season(world, stock_tenths=10_000)
        user = s.operator
        paid = 0
        for tenths, price, payment in sales:
            s.melon.price_fen = price
            db.session.commit()
            data = points.parse_sale(sale(s, tenths, price=price, payment=payment))
            run(lambda: points.record_sale(db.session.merge(user), data))
            paid += value_fen(tenths, price, 10)
        credited = -int(db.session.scalar(select(func.sum(ledger.Entry.amount_fen)).join(ledger.Account)
                                          .join(ledger.JournalTransaction)
                                          .where(ledger.Account.kind == "household",
                                                 ledger.JournalTransaction.kind == "sale")))
        assert credited == paid == int(db.session.scalar(select(func.sum(PointSale.amount_fen))))
        assert income(world.h1) == paid
        assert points.verify() == [] and ledger.verify() == []
    finally:
        db.session.remove()
        empty_all_tables()
        world.__dict__.update(factories.world().__dict__)


@pytest.mark.postgres_only
def test_two_phones_offline_beyond_the_lot_then_both_resend_nothing_is_oversold(app, world):
    """Twelve senders: two phones' batches (40 sales of 1.0 斤 each from a 30 斤 lot), each batch sent six times
    at once. Every sale is recorded exactly once; 30 are filled, 10 flagged; the lot ends at zero."""
    s = season(world, stock_tenths=300)
    other = points.register_device(s.point, s.operator)
    db.session.commit()
    phone_a = [sale(s, 10, seq=n) for n in range(1, 21)]
    phone_b = [sale(s, 10, seq=n, device=other.code) for n in range(1, 21)]
    operator_id = s.operator.id

    def send_batch(n):
        from shop.accounts.models import User
        batch = phone_a if n % 2 else phone_b
        return points.sync(db.session.get(User, operator_id), {"sales": batch if n % 4 < 2 else batch[::-1]})

    assert set(race(app, 12, send_batch)) == {"ok"}
    statuses = dict(db.session.execute(select(PointSale.status, func.count()).group_by(PointSale.status)).all())
    assert statuses == {"recorded": 30, "flagged": 10}
    lot = db.session.get(Lot, s.lot.id)
    assert (lot.remaining, lot.reserved) == (0, 0)
    assert owed(world.h1) == 30 * 150
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_ten_operators_closing_the_same_day_close_it_once(app, world):
    s = season(world)
    data = points.parse_sale(sale(s, 100))
    run(lambda: points.record_sale(db.session.merge(s.operator), data))
    point_id, user_id = s.point.id, s.operator.id

    def close(n):
        from shop.points.models import SalesPoint
        points.close_day(db.session.get(SalesPoint, point_id), clock.today(), 1500 + n, note=f"第{n}位", user_id=user_id)

    outcomes = race(app, 10, close)
    assert outcomes.count("ok") == 1 and outcomes.count("day_closed") == 9
    assert db.session.scalar(select(func.count(PointDay.id))) == 1
    assert ledger.platform_balance("point_cash") == 0
    assert_books_clean(app)


def test_an_operator_reads_growers_masked_on_every_page_and_in_the_api(client, world, s, app):
    """Operators are not back office: the point's state (page and API), the arrivals page and the day's sheet
    name a household's grower 李**, as everywhere outside the manager's and admin's pages; the manager reads
    the full name."""
    from tests.api.conftest import ApiClient

    client.login("op01")
    state = client.get(f"/op/points/{s.point.id}/state.json").get_json()
    names = {g["name"] for g in state["growers"]}
    assert "李**" in names and "李建国" not in names
    for url in (f"/op/points/{s.point.id}/arrivals", f"/op/points/{s.point.id}/close"):
        page = client.get(url).get_data(as_text=True)
        assert "李建国" not in page, url
    status, body = ApiClient(app).get("op01", f"/points/{s.point.id}/state")
    assert status == 200 and "李建国" not in str(body) and "李**" in str(body)
    client.logout()
    client.login("manager")
    assert "李建国" in {g["name"] for g in client.get(f"/op/points/{s.point.id}/state.json").get_json()["growers"]}


def test_a_phones_exported_file_is_imported_once_by_the_manager(client, world, s, app):
    """A phone that never got to send exports its waiting sales; the manager imports the file on the point's page:
    each sale is recorded once — importing the same file again, or after the phone sent some itself, adds nothing."""
    import io
    import json

    from shop.points.models import PointSale

    waiting = [sale(s, 123), sale(s, 50, payment="grower_qr"), sale(s, 20)]
    exported = {"format": "shop-point-sales", "version": 1, "point_id": s.point.id, "point_code": "XG01",
                "device": s.device.code, "sales": waiting}
    client.login("op01")
    send(client, s, waiting[0])  # this one got through before the network went
    client.logout()
    client.login("manager")

    def upload(document):
        body = json.dumps(document).encode()
        return client.post(f"/manage/points/{s.point.id}/import",
                           data={"import-file": (io.BytesIO(body), "XG01-02.json")}, content_type="multipart/form-data")

    first = upload(exported)
    assert first.status_code == 200 and "新记录 2 笔" in text_of(first) and "已有 1 笔" in text_of(first)
    assert db.session.scalar(select(func.count(PointSale.id))) == 3
    again = upload(exported)
    assert "新记录 0 笔" in text_of(again) and "已有 3 笔" in text_of(again)
    assert db.session.scalar(select(func.count(PointSale.id))) == 3
    other = upload({**exported, "point_id": s.point.id + 1000, "point_code": "XG99"})
    assert other.status_code == 422 and "另一个销售点" in text_of(other)
    junk = client.post(f"/manage/points/{s.point.id}/import", data={"import-file": (io.BytesIO(b"x" * 50), "a.json")},
                       content_type="multipart/form-data")
    assert junk.status_code == 422 and "不是手机导出的销售文件" in text_of(junk)


# --- the selling page and the point's day -----------------------------------------------------------------

def _order_of(receipt_sale) -> Order:
    found = db.session.scalar(select(PointSale).where(PointSale.client_id == receipt_sale["id"]))
    return db.session.get(Order, found.order_id)


@pytest.mark.parametrize("tenths,price,back,expected", [(123, 150, "2.3", 345), (7, 155, "0.3", 47), (50, 120, "5", 600)])
def test_a_point_sale_is_refunded_by_weight_and_the_growers_credit_reversed_to_the_fen(client, world, s, tenths, price,
                                                                                      back, expected):
    """A weighed line is refunded by weight: what is left is always worth its weight × price rounded once, so
    0.3 斤 back of 0.7 斤 at ¥1.55 (¥1.09) gives back ¥0.47 and leaves ¥0.62, the value of 0.4 斤. The grower's
    credit is reversed by exactly that, the goods go back onto the grower's lot at the point, the books hold."""
    s.melon.price_fen = price
    db.session.commit()
    client.login("op01")
    sold = sale(s, tenths, price=price)
    send(client, s, sold)
    order = _order_of(sold)
    before, stock = income(world.h1), s.lot.remaining
    client.logout()
    client.login("manager")
    assert "退款" in text_of(client.get(f"/orders/{order.id}"))  # a point sale is refundable like any other
    form = text_of(client.get(f"/manage/orders/{order.id}/refund"))
    assert "0.0" in client.get(f"/manage/orders/{order.id}/refund").get_data(as_text=True)  # a weight box
    line = order.lines[0]
    response = client.post(f"/manage/orders/{order.id}/refund", data={f"qty-{line.id}": back, "restock": "y",
                                                                      "reason": "瓜是生的"})
    assert response.status_code == 302, text_of(response)
    db.session.expire_all()
    order = db.session.get(Order, order.id)
    assert order.refunded_fen == expected and income(world.h1) == before - expected
    db.session.refresh(s.lot)
    assert s.lot.remaining == stock + round(float(back) * 10)
    remaining = tenths - round(float(back) * 10)
    assert order.total_fen - order.refunded_fen == value_fen(remaining, price, 10)
    assert form
    assert_books_clean(client.application)


def test_sales_in_question_are_posted_and_listed_to_check_and_the_phone_is_told_why(client, world, s):
    """A price other than the product's, or a receipt number used twice: the sale is posted (the buyer paid, the
    grower is credited) and listed in 待核对 with its reason until the manager marks it checked."""
    client.login("op01")
    odd = sale(s, 100, price=160)
    repeated = sale(s, 10, seq=1)
    answers = send(client, s, odd, repeated).get_json()["results"]
    assert [a["status"] for a in answers] == ["recorded", "recorded"]
    assert "单价" in answers[0]["message"] and "重复" in answers[1]["message"]
    client.logout()
    client.login("manager")
    page = text_of(client.get("/manage/points"))
    assert "待核对的销售" in page and "单价 ¥1.60 与商品现价 ¥1.50 不同" in page and "已入账" in page
    checked = db.session.scalar(select(PointSale).where(PointSale.client_id == odd["id"]))
    assert client.post(f"/manage/points/sales/{checked.id}/resolve",
                       data={"action": "void", "note": "x"}).status_code == 302  # a posted sale cannot be voided
    db.session.refresh(checked)
    assert checked.status == "recorded" and checked.resolved_at is None
    client.post(f"/manage/points/sales/{checked.id}/resolve", data={"action": "ok", "note": "老顾客优惠价"})
    db.session.refresh(checked)
    assert checked.resolved_at is not None and checked.resolution_note == "老顾客优惠价"
    assert "单价 ¥1.60" not in text_of(client.get("/manage/points"))


def test_cash_that_arrives_after_its_day_closed_is_said_so_on_the_phone_and_in_the_list(client, world, s, app):
    client.login("op01")
    send(client, s, sale(s, 100))
    client.post(f"/op/points/{s.point.id}/close", data={"counted": "15.00", "note": ""})
    late = sale(s, 50)
    answer = send(client, s, late).get_json()["results"][0]
    assert answer["status"] == "recorded" and "已经日结" in answer["message"]
    page = text_of(client.get(f"/op/points/{s.point.id}/close"))
    # the close as it was made (¥15.00 recorded, ¥15.00 counted, no difference), and the late cash beside it
    assert "现金销售（日结时记录） ¥15.00" in page and "无差额" in page and "日结后收到 现金 ¥7.50" in page
    client.logout()
    client.login("manager")
    assert "已经日结" in text_of(client.get("/manage/points"))


def test_the_selling_page_offers_only_what_the_point_sells_and_names_each_growers_permit(client, world, s):
    client.login("op01")
    state = client.get(f"/op/points/{s.point.id}/state.json").get_json()
    assert [p["name"] for p in state["products"]] == [s.melon.name]  # not the shop's whole catalog
    assert all(g["permits"] for g in state["growers"])


def test_operators_open_the_receipts_of_their_own_points_sales_only(client, world, s, app):
    from tests import factories

    client.login("op01")
    sold = sale(s, 123)
    send(client, s, sold)
    order = _order_of(sold)
    receipt = text_of(client.get(f"/orders/{order.id}/receipt"))
    assert "12.3 斤" in receipt and "¥18.45" in receipt and "四舍五入到分" in receipt
    factories.user("op02", "operator")
    db.session.commit()
    other = app.test_client()
    other.login("op02")
    assert other.get(f"/orders/{order.id}/receipt").status_code == 404

"""A checkout holding goods of two villages' service points: one order per point, each packed and handed over by
its own point, each household credited as ever — and one online payment for all of them."""
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from shop.errors import ValidationFailed
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger import services as ledger
from shop.ledger.models import JournalTransaction
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from shop.unit_of_work import run
from tests import factories
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean
from tests.payments.stripe_fixtures import StripeTestDriver
from tests.races import race


@pytest.fixture
def far(world):
    """远山村, beside the world's XX村: its service point, one household with 20 jars of honey in stock."""
    from shop.catalog.models import PickupPoint
    from shop.producers import services as producers

    village = producers.create_village("远山村", "远山镇")
    f = SimpleNamespace(village=village)
    f.manager = factories.user("manager-ys", "manager", None, "远山服务点管理员")
    producers.set_managed_villages(f.manager.id, {village.id})
    f.h = factories.household(village, "YSC001", "欧阳远山")
    f.honey = factories.product("远山土蜂蜜", "other", "瓶", 4500, village=village)
    f.point = PickupPoint(village_id=village.id, name="远山村服务点", address="远山村村委会", active=True)
    db.session.add(f.point)
    db.session.flush()
    factories.receive(f.h, f.manager, (f.honey, 20))
    db.session.commit()
    return f


def checkout(world, far, *, payment_method="offline", workplace=False, eggs=5, honey=2) -> list[Order]:
    placed = orders.place_checkout(world.staff, payment_method=payment_method, deliver_to_workplace=workplace,
                                   pickup_point_ids=None if workplace else [far.point.id, world.point.id],
                                   lines=[(world.eggs.id, eggs), (far.honey.id, honey)])
    db.session.commit()
    return placed


def held(product_id: int) -> int:
    return int(db.session.scalar(select(func.sum(Lot.reserved)).where(Lot.product_id == product_id)) or 0)


def order_count() -> int:
    return db.session.scalar(select(func.count(Order.id)))


def sales() -> int:
    return db.session.scalar(select(func.count(JournalTransaction.id)).where(JournalTransaction.kind == "sale"))


def test_a_cart_of_two_service_points_becomes_one_order_each(app, world, far):
    ours, theirs = checkout(world, far)
    assert [line.product_id for line in ours.lines] == [world.eggs.id] and ours.pickup_point_id == world.point.id
    assert [line.product_id for line in theirs.lines] == [far.honey.id] and theirs.pickup_point_id == far.point.id
    assert ours.checkout_id == theirs.checkout_id == ours.id
    assert (ours.total_fen, theirs.total_fen) == (600, 9000)
    assert (held(world.eggs.id), held(far.honey.id)) == (5, 2)
    # each point takes its own part's payment at the counter, and credits its own households
    payments.confirm_offline_payment(theirs, reference="YS-9", user_id=far.manager.id)
    db.session.commit()
    assert (ours.status, theirs.status) == ("pending_payment", "paid")
    assert ledger.household_account(far.h.id).owed_fen == 9000
    payments.confirm_offline_payment(ours, reference="XX-9", user_id=world.manager.id)
    db.session.commit()
    assert ledger.household_account(world.h1.id).owed_fen == 600
    assert_books_clean(app)


def test_each_part_needs_a_pickup_point_of_its_own_service_point_and_a_refusal_writes_nothing(app, world, far):
    from shop.catalog.models import PickupPoint

    town = PickupPoint(village_id=world.village.id, name="镇上自提点", address="镇政府", active=True)
    db.session.add(town)
    db.session.commit()
    before = (order_count(), held(world.eggs.id), held(far.honey.id))
    lines = [(world.eggs.id, 1), (far.honey.id, 1)]
    refusals = [
        (dict(pickup_point_id=world.point.id, lines=lines), "请为远山村服务点的商品选择一个它的自提点"),
        (dict(pickup_point_ids=[world.point.id, far.point.id], lines=[(world.eggs.id, 1)]),
         "自提点 远山村服务点 不是购物车里商品所在服务点的自提点"),
        (dict(pickup_point_ids=[world.point.id, town.id, far.point.id], lines=lines), "每个服务点只选一个自提点"),
        (dict(pickup_point_id=far.point.id, lines=[(world.eggs.id, 1)]), "不是这些商品所在服务点的自提点"),
    ]
    for kwargs, message in refusals:
        with pytest.raises(ValidationFailed, match=message):
            orders.place_checkout(world.staff, payment_method="offline", **kwargs)
        db.session.rollback()
    with pytest.raises(ValidationFailed, match="远山村.*请分别下单"):  # the single-order entry (a company's, the demo's)
        orders.place_order(world.staff, payment_method="offline", deliver_to_workplace=True, lines=lines)
    db.session.rollback()
    assert (order_count(), held(world.eggs.id), held(far.honey.id)) == before


def test_the_cart_page_asks_a_pickup_point_of_each_service_point_and_places_both(app, client, world, far):
    client.login("staff01")
    for product, quantity in ((world.eggs, 5), (far.honey, 2)):
        client.post("/cart/add", data={"product_id": str(product.id), "quantity": str(quantity)})
    page = client.get("/cart").get_data(as_text=True)
    assert "将分成 2 个订单" in page
    assert 'name="pickup_point_id"' in page and f'name="pickup_point_{far.village.id}"' in page
    assert "远山村服务点" in text_of(client.get("/cart"))
    response = client.post("/checkout", data={"handover": "pickup", "payment_method": "offline",
                                              "pickup_point_id": str(world.point.id),
                                              f"pickup_point_{far.village.id}": str(far.point.id)})
    assert response.status_code == 302
    placed = db.session.scalars(select(Order).order_by(Order.id.desc()).limit(2)).all()[::-1]
    assert [o.pickup_point_id for o in placed] == [world.point.id, far.point.id]
    shown = text_of(client.get(response.headers["Location"], follow_redirects=True))
    assert "分成 2 个订单" in shown and placed[1].number in shown and "同一次结算的其他订单" in shown
    # each service point sees its own part and not the other's
    client.logout()
    client.login("manager-ys")
    assert client.get(f"/orders/{placed[0].id}").status_code == 404
    page = text_of(client.get(f"/orders/{placed[1].id}"))
    assert "远山土蜂蜜" in page and placed[0].number not in page


def test_one_online_payment_pays_every_part_and_credits_each_household(app, world, far, stripe_driver):
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(theirs.id, unit=run)  # from either part: the one session of the checkout
    db.session.expire_all()
    assert ours.stripe_session_id == theirs.stripe_session_id is not None
    assert stripe_driver.session(ours.stripe_session_id)["amount_total"] == 9600
    response = stripe_driver.deliver(stripe_driver.pay(ours.stripe_session_id))
    assert response.get_json()["outcome"] == "paid"
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("paid", "paid") and sales() == 2
    assert ledger.household_account(world.h1.id).owed_fen == 600
    assert ledger.household_account(far.h.id).owed_fen == 9000
    assert_books_clean(app)


def test_a_payment_short_of_the_checkouts_total_pays_no_part(app, world, far, stripe_driver):
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(ours.id, unit=run)
    db.session.expire_all()
    stripe_driver.deliver(stripe_driver.pay(ours.stripe_session_id, amount=600))  # exactly one part's total
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("pending_payment", "pending_payment") and sales() == 0
    assert "not marked paid" in ours.review_reason and "not marked paid" in theirs.review_reason


def test_cancelling_or_expiring_one_online_part_ends_the_whole_checkout(app, client, world, far, stripe_driver):
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    client.login("staff01")
    client.post(f"/orders/{theirs.id}/cancel", data={"confirm": "1"})
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("cancelled", "cancelled")
    assert (held(world.eggs.id), held(far.honey.id)) == (0, 0)
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(ours.id, unit=run)
    db.session.expire_all()
    stripe_driver.deliver(stripe_driver.expire(ours.stripe_session_id))
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("cancelled", "cancelled")
    ours, theirs = checkout(world, far, payment_method="offline", workplace=True)
    client.post(f"/orders/{theirs.id}/cancel", data={"confirm": "1"})  # paid at each point: each its own
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("pending_payment", "cancelled")
    assert_books_clean(app)


def test_refunds_of_one_payment_land_on_the_part_they_belong_to(app, world, far, stripe_driver):
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(ours.id, unit=run)
    db.session.expire_all()
    stripe_driver.deliver(stripe_driver.pay(ours.stripe_session_id))
    db.session.expire_all()
    record = payments.refund_order(theirs, {theirs.lines[0].id: 1}, restock=True, user_id=far.manager.id)
    db.session.commit()
    with app.test_request_context():
        assert payments.send_refund(record.id, unit=run)
    intent = theirs.stripe_payment_intent_id
    assert stripe_driver.deliver(stripe_driver.refund_event(intent)).status_code == 200
    db.session.expire_all()
    assert (ours.refunded_fen, theirs.refunded_fen) == (0, 4500)
    assert ledger.household_account(far.h.id).owed_fen == 4500
    # a refund made in Stripe's dashboard goes on the first part that can take it whole, flagged to be checked
    stripe_driver.deliver(stripe_driver.refund_event(intent, dashboard_amount=240))
    db.session.expire_all()
    assert (ours.refunded_fen, theirs.refunded_fen) == (240, 4500)
    assert "check it belongs here" in ours.review_reason
    assert ledger.household_account(world.h1.id).owed_fen == 360
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_twelve_split_checkouts_at_once_take_stock_whole_or_not_at_all(app, world, far):
    """Twelve buyers check out 2 jars of honey and 3 eggs each at once, with 20 jars in stock: ten checkouts
    are placed whole — both parts — and two are refused whole; no part is left without its other."""
    staff = [factories.user(f"split{n:02d}", "staff", world.bureau, f"买家{n}") for n in range(12)]
    db.session.commit()
    ids = [user.id for user in staff]

    def work(n: int):
        from shop.accounts.models import User

        buyer = db.session.get(User, ids[n])
        orders.place_checkout(buyer, payment_method="offline", pickup_point_ids=[world.point.id, far.point.id],
                              lines=[(world.eggs.id, 3), (far.honey.id, 2)])

    outcomes = race(app, 12, work)
    assert sorted(outcomes) == ["insufficient_stock"] * 2 + ["ok"] * 10, outcomes
    db.session.expire_all()
    placed = db.session.scalars(select(Order).where(Order.buyer_id.in_(ids))).all()
    assert len(placed) == 20 and len({o.checkout_id for o in placed}) == 10
    assert (held(world.eggs.id), held(far.honey.id)) == (30, 20)
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_twelve_deliveries_of_one_checkouts_payment_pay_each_part_once(app, world, far, stripe_driver):
    """The completion of one split checkout's payment, delivered twelve times at once under six event ids: each
    part paid once, each household credited once."""
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(ours.id, unit=run)
    db.session.expire_all()
    event = stripe_driver.pay(ours.stripe_session_id)
    bodies = [StripeTestDriver.signed({**event, "id": f"{event['id']}_{n % 6}"}) for n in range(12)]
    statuses: list[int] = []
    start = threading.Barrier(len(bodies))

    def deliver(payload, headers):
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/stripe/webhook", data=payload, headers=headers, csrf=False).status_code)

    threads = [threading.Thread(target=deliver, args=body) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * 12
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("paid", "paid") and sales() == 2
    assert ledger.household_account(world.h1.id).owed_fen == 600
    assert ledger.household_account(far.h.id).owed_fen == 9000
    assert_books_clean(app)


def test_the_api_places_a_split_checkout_and_answers_every_part(app, world, far):
    from tests.api.conftest import ApiClient

    api = ApiClient(app)
    body = {"payment_method": "offline", "pickup_point_ids": [far.point.id, world.point.id],
            "lines": [{"product_id": world.eggs.id, "quantity": 5}, {"product_id": far.honey.id, "quantity": 2}]}
    status, placed = api.call("staff01", "POST", "/orders", json=body, headers={"Idempotency-Key": "split-1"})
    assert status == 201, placed
    (other,) = placed["other_parts"]
    assert (placed["total_fen"], other["total_fen"]) == (600, 9000)
    assert placed["checkout_id"] == other["checkout_id"] == placed["id"]
    assert (placed["pickup_point_id"], other["pickup_point_id"]) == (world.point.id, far.point.id)
    before = order_count()
    status, refused = api.call("staff01", "POST", "/orders", json={**body, "pickup_point_id": world.point.id},
                               headers={"Idempotency-Key": "split-2"})
    assert status == 422 and "pickup_point_ids" in str(refused)
    status, refused = api.call("staff01", "POST", "/orders", json={**body, "pickup_point_ids": [world.point.id]},
                               headers={"Idempotency-Key": "split-3"})
    assert status == 422 and "远山村" in str(refused)
    assert order_count() == before


def test_a_managers_cancel_of_their_part_ends_the_payment_and_its_expiry_the_other_part(app, client, world, far,
                                                                                          stripe_driver):
    ours, theirs = checkout(world, far, payment_method="stripe", workplace=True)
    with app.test_request_context():
        payments.start_checkout(ours.id, unit=run)
    db.session.expire_all()
    session_id = ours.stripe_session_id
    client.login("manager-ys")  # 远山村's manager acts on their own part only
    client.post(f"/orders/{theirs.id}/cancel", data={"confirm": "1"})
    db.session.expire_all()
    assert (ours.status, theirs.status) == ("pending_payment", "cancelled")
    with app.test_request_context():
        with pytest.raises(orders.InvalidTransition, match="已是"):
            payments.checkout_ask(ours.id)  # the one payment cannot be made for part of it
    stripe_driver.deliver(stripe_driver.expire(session_id))
    db.session.expire_all()
    assert ours.status == "cancelled" and held(world.eggs.id) == 0
    assert_books_clean(app)

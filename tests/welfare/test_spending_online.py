"""Welfare grants spent with an online payment and through the API: Stripe is asked only for what is left to pay,
a refund gives the welfare part back first and asks Stripe only for the rest."""
from datetime import timedelta

from sqlalchemy import func, select

from shop import clock
from shop.extensions import db
from shop.ledger import services as ledger
from shop.orders.models import Order
from shop.payments import services as payments
from shop.unit_of_work import run
from shop.welfare import services as welfare
from shop.welfare.models import WelfareGrant
from tests.api.conftest import ApiClient
from tests.orders.helpers import assert_books_clean
from tests.welfare.test_funds import ask


def grant_staff(world, fen=30_000):
    fund = welfare.fund_of(world.bureau.id)
    welfare.top_up(fund, 100_000, reference="GH-2027-001", user_id=world.coordinator.id)
    made = welfare.grant(fund, ask(world.staff, fen), granted_by=world.coordinator.id)
    db.session.commit()
    return made


def test_stripe_is_asked_for_what_welfare_left_and_refunds_give_welfare_back_first(app, world, stripe_driver):
    grant = grant_staff(world, 500)  # ¥5.00 of welfare towards ¥24.00 of eggs
    order = payments.checkout(world.staff, payment_method="stripe", pickup_point_id=world.point.id,
                              lines=[(world.eggs.id, 20)], welfare_fen=500)[0]
    db.session.commit()
    with app.test_request_context():
        payments.start_checkout(order.id, unit=run)
    db.session.expire_all()
    session = stripe_driver.session(order.stripe_session_id)
    assert session["amount_total"] == 1900
    assert stripe_driver.deliver(stripe_driver.pay(order.stripe_session_id)).get_json()["outcome"] == "paid"
    db.session.expire_all()
    assert (order.status, order.welfare_fen, order.due_fen) == ("paid", 500, 1900)
    assert ledger.household_account(world.h1.id).owed_fen == 2400 - ledger.fee_for(2400)
    # refund 10 eggs (¥12.00): the ¥5.00 of welfare back to the grant, Stripe asked for ¥7.00 only
    record = payments.refund_order(order, {order.lines[0].id: 10}, restock=True, user_id=world.manager.id)
    db.session.commit()
    assert (record.amount_fen, record.welfare_fen, record.method) == (1200, 500, "stripe")
    with app.test_request_context():
        assert payments.send_refund(record.id, unit=run)
    assert [r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [700]
    db.session.expire_all()
    assert db.session.get(WelfareGrant, grant.id).remaining_fen == 500
    assert welfare.verify() == []
    assert_books_clean(app)


def test_a_stripe_order_the_grants_pay_whole_never_goes_to_stripe(app, world, stripe_app):
    grant_staff(world)
    order = payments.checkout(world.staff, payment_method="stripe", pickup_point_id=world.point.id,
                              lines=[(world.eggs.id, 1)], welfare_fen=120)[0]  # ¥1.20: under Stripe's minimum
    db.session.commit()
    assert (order.status, order.stripe_session_id, order.due_fen) == ("paid", None, 0)
    assert_books_clean(app)


def test_welfare_through_the_api(app, world):
    grant = grant_staff(world)
    other = welfare.grant(welfare.fund_of(world.bureau.id), ask(world.staff2, 1000), granted_by=world.coordinator.id)
    db.session.commit()
    api = ApiClient(app)
    body = {"lines": [{"product_id": world.eggs.id, "quantity": 5}], "payment_method": "offline",
            "pickup_point_id": world.point.id, "welfare_fen": 200}
    status, placed = api.call("staff01", "POST", "/orders", json=body, headers={"Idempotency-Key": "o-1"})
    assert status == 201 and (placed["total_fen"], placed["welfare_fen"], placed["due_fen"]) == (600, 200, 400)
    assert api.call("staff01", "POST", "/orders", json=body, headers={"Idempotency-Key": "o-1"})[1] == placed
    assert api.get("staff01", "/welfare/balance")[1]["balance_fen"] == 30_000 - 200
    before = db.session.scalar(select(func.count(Order.id)))
    for bad, message in [({"grant_ids": [other.id]}, "只能使用发给您本人的福利"), ({"welfare_fen": -1}, ""),
                         ({"welfare_fen": 1.5}, "")]:
        status, answer = api.call("staff01", "POST", "/orders", json={**body, **bad},
                                  headers={"Idempotency-Key": f"bad-{len(str(bad))}-{bad}"})
        assert status == 422 and message in str(answer), (bad, answer)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Order.id))) == before
    assert db.session.get(WelfareGrant, grant.id).remaining_fen == 30_000 - 200
    status, whole = api.call("staff01", "POST", "/orders", json={**body, "welfare_fen": 600},
                             headers={"Idempotency-Key": "o-2"})
    assert status == 201 and (whole["status"], whole["due_fen"]) == ("paid", 0)
    status, refused = api.call("coordinator", "POST", "/orders", json={**body, "payment_method": "account"},
                               headers={"Idempotency-Key": "o-3"})
    assert status == 422 and "福利只能用于职工本人的订单" in str(refused)
    assert clock.today() <= grant.expires_on <= clock.today() + timedelta(days=60)

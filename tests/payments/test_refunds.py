"""Card refunds: recorded and posted first, sent to Stripe after the commit with a key fixed by the refund's own row,
settled by Stripe's events — which match refunds by their ids, so a refund made in Stripe's dashboard is mirrored
by the first event that shows it."""
import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.ledger import services as ledger
from shop.orders.models import Order, Refund
from shop.payments import services as payments
from shop.payments import stripe_gateway
from shop.unit_of_work import run
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean, run_cli
from tests.orders.test_orders import refund_form
from tests.payments.stripe_fixtures import _free_port
from tests.payments.test_webhooks import stripe_order
from tests.races import race


def paid_by_card(app, world, stripe_driver, quantity=10) -> Order:
    order = stripe_order(app, world, quantity=quantity)
    stripe_driver.deliver(stripe_driver.pay(order.stripe_session_id))
    db.session.refresh(order)
    assert order.is_paid
    return order


def stripe_down(app):
    working = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    return working


def test_a_refund_while_stripe_is_down_is_kept_and_sent_once_when_it_is_back(app, client, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    working = stripe_down(app)
    client.login("manager")
    response = client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 4}),
                           follow_redirects=True)
    page = text_of(response)
    assert "已退款 ¥4.80" in page and "稍后会自动原路退回" in page and "待提交支付服务" in page
    record = db.session.scalar(select(Refund).where(Refund.order_id == order.id))
    assert (record.amount_fen, record.stripe_status, record.stripe_refund_id) == (480, "to_send", None)
    # the households' credit is reversed at once: the books do not wait for Stripe
    assert ledger.household_account(world.h1.id).owed_fen == 6 * 120
    assert stripe_driver.refunds(order.stripe_payment_intent_id) == []
    assert run_cli(app, "payments", "send-refunds")[0] == 1  # still down: cron is told, nothing is lost

    app.config["STRIPE_API_BASE"] = working
    assert run_cli(app, "payments", "send-refunds") == (0, "send-refunds: 1 sent, 0 still waiting\n")
    assert run_cli(app, "payments", "send-refunds") == (0, "send-refunds: 0 sent, 0 still waiting\n")
    assert [r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [480]
    db.session.refresh(record)
    assert record.stripe_status == "succeeded" and record.stripe_refund_id.startswith("re_")
    assert_books_clean(app)


def test_the_manager_may_send_a_waiting_refund_now(app, client, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    working = stripe_down(app)
    client.login("manager")
    client.post(f"/manage/orders/{order.id}/refund", data=refund_form(order, {world.eggs.id: 1}))
    record = db.session.scalar(select(Refund).where(Refund.order_id == order.id))
    page = client.get(f"/orders/{order.id}")
    assert "现在提交" in text_of(page)
    app.config["STRIPE_API_BASE"] = working
    other = paid_by_card(app, world, stripe_driver, quantity=4)
    assert client.post(f"/manage/orders/{other.id}/refunds/{record.id}/send", data={}).status_code == 404
    response = client.post(f"/manage/orders/{order.id}/refunds/{record.id}/send", data={}, follow_redirects=True)
    assert "退款已提交支付服务" in text_of(response)
    assert [r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [120]
    client.logout()
    client.login("staff01")  # the buyer sees where the money is
    assert "已退回" in text_of(client.get(f"/orders/{order.id}"))


def test_a_lost_answer_is_asked_again_with_the_same_key_and_stripe_refunds_once(app, world, stripe_driver):
    """Stripe made the refund but its answer never arrived (a time-out): sending again gets the same refund."""
    order = paid_by_card(app, world, stripe_driver)
    record = payments.refund_order(order, {order.lines[0].id: 3}, restock=False, user_id=world.manager.id)
    db.session.commit()
    ask = run(lambda: payments.refund_to_send(record.id))
    with app.test_request_context():
        first = stripe_gateway.refund(payment_intent=ask.payment_intent, amount_fen=ask.amount_fen,
                                      idempotency_key=ask.key, order_id=ask.order_id, refund_id=ask.refund_id)
        assert payments.send_refund(record.id, unit=run)
    assert [r["id"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [first["id"]]
    db.session.refresh(record)
    assert record.stripe_refund_id == first["id"]


def test_stripes_event_finds_the_shops_refund_by_the_id_it_carries_when_its_answer_was_lost(app, world,
                                                                                           stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    record = payments.refund_order(order, {order.lines[0].id: 2}, restock=False, user_id=world.manager.id)
    db.session.commit()
    ask = run(lambda: payments.refund_to_send(record.id))
    with app.test_request_context():
        made = stripe_gateway.refund(payment_intent=ask.payment_intent, amount_fen=ask.amount_fen,
                                     idempotency_key=ask.key, order_id=ask.order_id, refund_id=ask.refund_id)
    event = stripe_driver._post(f"/_test/refunds/{made['id']}/refund.created")
    assert stripe_driver.deliver(event).get_json()["outcome"] == f"refund {record.id} succeeded"
    db.session.refresh(order)
    assert order.refunded_fen == 240 and len(order.refunds) == 1  # not mirrored as a second refund
    assert order.refunds[0].stripe_refund_id == made["id"]
    assert run(lambda: payments.refunds_to_send()) == []
    assert_books_clean(app)


@pytest.mark.parametrize("listed", [False, True], ids=["charge without its refunds", "charge listing its refunds"])
def test_a_dashboard_refund_during_a_storm_is_mirrored_by_the_first_event_that_shows_it(app, world, stripe_driver,
                                                                                        listed):
    """The shop's refund is recorded but not yet at Stripe; meanwhile someone refunds 2 units in Stripe's
    dashboard. The first charge.refunded mirrors exactly that refund — by its id — and leaves the shop's alone."""
    order = paid_by_card(app, world, stripe_driver)
    working = stripe_down(app)
    ours = payments.refund_order(order, {order.lines[0].id: 1}, restock=False, user_id=world.manager.id)
    db.session.commit()
    with app.test_request_context():
        assert not payments.send_refund(ours.id, unit=run)
    app.config["STRIPE_API_BASE"] = working
    query = "?listed=1" if listed else ""
    event = stripe_driver._post(f"/_test/payment_intents/{order.stripe_payment_intent_id}/refund-event{query}",
                                amount=240)
    assert stripe_driver.deliver(event).get_json()["outcome"] == "mirrored refund of 240 fen"
    db.session.refresh(order)
    assert order.refunded_fen == 120 + 240 and sum(line.refunded_quantity for line in order.lines) == 3
    assert stripe_driver.deliver(event).get_json()["outcome"] == "duplicate"
    with app.test_request_context():
        assert payments.send_refund(ours.id, unit=run)
    echo = stripe_driver.refund_event(order.stripe_payment_intent_id)
    outcome = stripe_driver.deliver(echo).get_json()["outcome"]
    assert f"refund {ours.id} succeeded" in outcome and "mirrored" not in outcome
    db.session.refresh(order)
    assert order.refunded_fen == 360 and len(order.refunds) == 2
    assert sorted(r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)) == [120, 240]
    assert ledger.household_account(world.h1.id).owed_fen == 7 * 120
    assert_books_clean(app)


def test_a_refund_stripe_fails_is_flagged_for_the_manager(app, client, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    record = payments.refund_order(order, {order.lines[0].id: 2}, restock=False, user_id=world.manager.id)
    db.session.commit()
    with app.test_request_context():
        assert payments.send_refund(record.id, unit=run)
    db.session.refresh(record)
    event = stripe_driver._post(f"/_test/refunds/{record.stripe_refund_id}/refund.updated", status="failed")
    # a refund already succeeded does not go back; one that was still on its way does
    db.session.execute(Refund.__table__.update().where(Refund.id == record.id).values(stripe_status="sent"))
    db.session.commit()
    assert stripe_driver.deliver(event).get_json()["outcome"] == f"refund {record.id} failed"
    db.session.refresh(order)
    assert "give it back another way" in order.review_reason
    client.login("manager")
    assert "退回失败，请另行退还" in text_of(client.get(f"/orders/{order.id}"))
    again = stripe_driver._post(f"/_test/refunds/{record.stripe_refund_id}/refund.updated", status="succeeded")
    stripe_driver.deliver(again)
    db.session.refresh(record)
    assert record.stripe_status == "failed"  # never backwards


def test_no_call_to_stripe_is_made_inside_a_database_transaction(app, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    db.session.get(Order, order.id)  # a read opens a transaction
    with app.test_request_context(), pytest.raises(stripe_gateway.CalledInsideTransaction):
        stripe_gateway.refund(payment_intent=order.stripe_payment_intent_id, amount_fen=120, idempotency_key="k",
                              order_id=order.id, refund_id=1)
    db.session.rollback()
    assert stripe_driver.refunds(order.stripe_payment_intent_id) == []


@pytest.mark.postgres_only
def test_twelve_senders_of_one_refund_make_one_refund_at_stripe(app, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    record = payments.refund_order(order, {order.lines[0].id: 5}, restock=True, user_id=world.manager.id)
    db.session.commit()
    refund_id = record.id

    def send(_n):
        with app.test_request_context():
            payments.send_refund(refund_id, unit=run)

    assert race(app, 12, send) == ["ok"] * 12
    assert [r["amount"] for r in stripe_driver.refunds(order.stripe_payment_intent_id)] == [600]
    record = db.session.get(Refund, refund_id)
    assert record.stripe_status == "succeeded" and record.stripe_refund_id.startswith("re_")
    assert db.session.get(Order, order.id).review_reason is None
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_twelve_events_showing_one_dashboard_refund_mirror_it_once(app, world, stripe_driver):
    order = paid_by_card(app, world, stripe_driver)
    made = stripe_driver._post(f"/_test/payment_intents/{order.stripe_payment_intent_id}/refund-event", amount=360)
    refund_id = stripe_driver.refunds(order.stripe_payment_intent_id)[0]["id"]
    events = [dict(made, id=f"evt_storm_{n}") for n in range(6)]
    events += [dict(stripe_driver._post(f"/_test/refunds/{refund_id}/refund.created"), id=f"evt_created_{n}")
               for n in range(6)]
    from shop.unit_of_work import read_only

    def deliver(n):
        with app.test_request_context():
            hint = payments.event_hint(events[n], read=read_only)
            payments.handle_event(events[n], hint=hint)

    assert race(app, 12, deliver) == ["ok"] * 12
    order = db.session.get(Order, order.id)
    assert order.refunded_fen == 360 and len(order.refunds) == 1 and order.refunds[0].stripe_refund_id == refund_id
    assert ledger.household_account(world.h1.id).owed_fen == 7 * 120
    assert_books_clean(app)

"""The happy path to handed_over with both payment kinds, and what the household's ledger then shows."""


from shop.extensions import db
from shop.ledger import services as ledger
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean, buy, last_order


def test_offline_payment_to_handed_over(app, client, world):
    client.login("staff01")
    response = buy(client, world, (world.eggs, 10))
    assert response.status_code == 302
    order = last_order()
    assert order.status == "pending_payment" and order.total_fen == 1200 and order.payment_method == "offline"
    db.session.refresh(world.lot)
    assert (world.lot.remaining, world.lot.reserved) == (20, 10)
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "待付款" in page and "请到服务点付款" in page
    assert "购物车是空的" in text_of(client.get("/cart"))
    client.logout()

    client.login("manager")
    assert client.post(f"/manage/orders/{order.id}/offline-payment", data={"reference": "R-0001"}).status_code == 302
    db.session.refresh(order)
    assert order.status == "paid" and order.payment_reference == "R-0001"
    account = ledger.household_account(world.h1.id)
    assert account.owed_fen == 1200  # the paired household's eggs: its income, to the fen
    picklist = text_of(client.get("/manage/orders/picklist"))
    assert "散养土鸡蛋" in picklist and "李建国（XXC001）" in picklist and f"#{world.lot.id}" in picklist
    assert client.post(f"/manage/orders/{order.id}/pack", data={}).status_code == 302
    assert client.post(f"/manage/orders/{order.id}/hand-over", data={"handed_over_to": "康本树"}).status_code == 302
    db.session.refresh(order)
    db.session.refresh(world.lot)
    assert order.status == "handed_over" and order.handed_over_to == "康本树"
    assert (world.lot.remaining, world.lot.reserved) == (20, 0)
    timeline = [e.to_status for e in order.events]
    assert timeline == ["pending_payment", "paid", "packed", "handed_over"]
    assert all(e.user_id for e in order.events)

    statement = text_of(client.get(f"/manage/ledger/household/{world.h1.id}/statement"))
    assert "散养土鸡蛋" in statement and "县XX局" in statement and "¥12.00" in statement
    assert_books_clean(app)


def test_stripe_payment_to_handed_over(app, client, world, stripe_driver):
    client.login("staff01")
    response = buy(client, world, (world.eggs, 5), payment="stripe")
    order = last_order()
    assert response.status_code == 303 and "/pay/cs_test_" in response.headers["Location"]
    assert order.stripe_session_id and order.status == "pending_payment"
    session = stripe_driver.session(order.stripe_session_id)
    assert session["currency"] == "cny" and session["amount_total"] == 600
    assert session["client_reference_id"] == str(order.id) and session["payment_method_types"] == ["card"]

    # back from Stripe before the webhook: the redirect proves nothing
    assert "正在确认付款" in text_of(client.get(f"/orders/{order.id}/payment-return"))
    event = stripe_driver.pay(order.stripe_session_id)
    response = stripe_driver.deliver(event)
    assert response.status_code == 200 and response.get_json()["outcome"] == "paid"
    db.session.refresh(order)
    assert order.status == "paid" and order.stripe_payment_intent_id.startswith("pi_")
    assert "付款成功" in text_of(client.get(f"/orders/{order.id}/payment-return"))
    assert ledger.household_account(world.h1.id).owed_fen == 600
    client.logout()
    client.login("manager")
    client.post(f"/manage/orders/{order.id}/pack", data={})
    client.post(f"/manage/orders/{order.id}/hand-over", data={"handed_over_to": "康本树"})
    db.session.refresh(order)
    assert order.status == "handed_over"
    assert_books_clean(app)

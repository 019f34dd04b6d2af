"""Tokens, roles, ownership and the error body: what an API client sees when something is refused —
and that a refused call changes nothing."""
from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from shop.accounts.models import ApiToken, User
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger.models import JournalTransaction
from shop.orders.models import Order
from tests.conftest import text_of


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- tokens ---------------------------------------------------------------------------------------

def test_the_command_prints_a_token_once_and_keeps_only_its_hash(app, world, api):
    result = app.test_cli_runner().invoke(args=["users", "token", "manager", "--name", "入库平板"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    stored = db.session.scalar(select(ApiToken))
    assert stored.name == "入库平板" and stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (stored.token_hash, stored.prefix) and secret.startswith(stored.prefix)
    response = app.test_client().get("/api/v1/households", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200 and response.get_json()["total"] == 3
    from shop.accounts.services import token_last_used

    assert token_last_used(db.session.scalar(select(ApiToken))) is not None  # noted without writing on a read
    unknown = app.test_cli_runner().invoke(args=["users", "token", "nobody"])
    assert unknown.exit_code != 0 and "unknown user" in unknown.output


def test_without_a_valid_token_the_answer_is_401(app, world, api):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer shop_not-a-token"}, {"Authorization": "Basic YWRtaW46eA=="},
                    {"Authorization": "Bearer"}):
        response = client.get("/api/v1/products", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_logged_in_browser_session_does_not_open_the_api(client, world):
    """Only the token counts: a page in another tab cannot call the API with the user's cookie."""
    client.login("manager")
    assert client.get("/manage/stock").status_code == 200
    response = client.post("/api/v1/lots", json={"product_id": world.eggs.id, "household_id": world.h1.id,
                                                 "quantity": 5})
    assert response.status_code == 401
    assert _count(Lot) == 1


def test_a_revoked_token_or_a_deactivated_user_is_refused(client, world, api):
    assert api.get("staff01", "/products")[0] == 200
    client.login("staff01")
    page = client.get("/account")
    assert "tests" in text_of(page)  # the token made by the API client, listed by name
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == world.staff.id))
    response = client.post(f"/account/tokens/{token.id}/revoke", data={})
    assert response.status_code == 302
    assert api.get("staff01", "/products")[0] == 401

    assert api.get("staff02", "/products")[0] == 200
    db.session.get(User, world.staff2.id).active = False
    db.session.commit()
    assert api.get("staff02", "/products")[0] == 401


def test_the_account_page_makes_a_token_and_shows_it_only_once(client, world, app):
    client.login("buyer-jinlv")
    response = client.post("/account/tokens", data={"name": "采购系统"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    secret = page.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert secret.startswith("shop_") and "只显示这一次" in page
    assert secret not in client.get("/account").get_data(as_text=True)  # never again
    answer = app.test_client().get("/api/v1/contracts", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    refused = client.post("/account/tokens", data={"name": ""})
    assert refused.status_code == 422 and _count(ApiToken) == 1
    # someone else's token cannot be revoked from my page
    client.logout()
    client.login("buyer-yonghao")
    token_id = db.session.scalar(select(ApiToken.id))
    assert client.post(f"/account/tokens/{token_id}/revoke", data={}).status_code == 404
    assert app.test_client().get("/api/v1/contracts", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


# --- roles and ownership --------------------------------------------------------------------------

def test_the_wrong_role_gets_403_and_someone_elses_object_404(api, world, pending_order):
    status, body = api.post("staff01", "/lots", {"product_id": world.eggs.id, "household_id": world.h1.id,
                                                "quantity": 5})
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert api.get("buyer-jinlv", "/households")[0] == 403
    assert api.get("manager", "/reports/summary")[0] == 403
    # staff02 cannot see staff01's order, nor can a company: it is not disclosed that it exists
    for who in ("staff02", "buyer-jinlv"):
        status, body = api.get(who, f"/orders/{pending_order.id}")
        assert status == 404 and body["error"]["code"] == "not_found"
        assert api.post(who, f"/orders/{pending_order.id}/cancel")[0] == 404
    assert api.get("staff01", f"/orders/{pending_order.id}")[0] == 200
    assert api.get("manager", f"/orders/{pending_order.id}")[0] == 200
    assert api.get("manager", "/orders/999999")[0] == 404
    assert api.get("manager", f"/lots/{2**40}")[0] == 404


def test_a_company_sees_only_its_own_contracts(api, world):
    from shop.contracts import services as contracts

    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-1", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=10, first_month="2026-01", last_month="2026-12", cap_fen=100_000, delivery_address="站",
        delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    db.session.commit()
    status, mine = api.get("buyer-jinlv", "/contracts")
    assert status == 200 and [c["number"] for c in mine["items"]] == ["JL-1"]
    assert mine["items"][0]["company"] == "劲旅环卫" and mine["items"][0]["unit_price_fen"] == 550
    assert api.get("buyer-yonghao", "/contracts")[1]["items"] == []
    assert api.get("buyer-yonghao", f"/contracts/{contract.id}")[0] == 404
    assert api.get("admin", f"/contracts/{contract.id}")[0] == 200


# --- the error body, and nothing changed ------------------------------------------------------------

def test_invalid_input_names_each_field_and_changes_nothing(api, world):
    before = (_count(Order), _count(Lot))
    status, body = api.post("staff01", "/orders", {"lines": [{"product_id": world.eggs.id, "quantity": 0},
                                                             {"quantity": "two"}], "payment_method": "cash",
                                                   "colour": "red"})
    assert status == 422
    fields = body["error"]["fields"]
    assert body["error"]["code"] == "invalid"
    assert {"lines.0.quantity", "lines.1.product_id", "lines.1.quantity", "payment_method", "colour"} <= set(fields)
    status, body = api.post("manager", "/lots", {"product_id": world.eggs.id, "household_id": world.h1.id,
                                                 "enterprise_id": world.enterprise.id, "quantity": 5})
    assert status == 422 and "household_id" in body["error"]["fields"]
    status, body = api.post("manager", "/lots", {"product_id": world.eggs.id, "household_id": world.h1.id,
                                                 "quantity": 5, "best_before": "2020-01-01"})
    assert status == 422 and body["error"]["fields"] == {"items-0-best_before": "保质期不能早于入库日期。"}
    status, body = api.post("manager", "/lots", {"product_id": world.eggs.id, "household_id": world.h1.id,
                                                 "quantity": 5, "note": "bad\x00note"})
    assert status == 422 and "note" in body["error"]["fields"]
    status, body = api.get("admin", "/reports/summary", **{"from": "2026-12-31", "to": "2026-01-01"})
    assert status == 422 and "to" in body["error"]["fields"]
    status, body = api.get("admin", "/reports/summary", **{"from": "last year"})
    assert status == 422 and "from" in body["error"]["fields"]
    assert (_count(Order), _count(Lot)) == before


def test_not_enough_stock_is_a_409_that_names_the_product_and_changes_nothing(api, world):
    lot_before = db.session.get(Lot, world.lot.id).remaining
    status, body = api.post("staff01", "/orders", {"lines": [{"product_id": world.eggs.id, "quantity": 31}],
                                                   "pickup_point_id": world.point.id, "payment_method": "offline"})
    assert status == 409 and body["error"]["code"] == "insufficient_stock"
    assert world.eggs.name in body["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Lot, world.lot.id).remaining == lot_before and db.session.get(Lot, world.lot.id).reserved == 0
    assert _count(Order) == 0


def test_moving_an_order_the_wrong_way_is_a_409(api, world, pending_order):
    status, body = api.post("manager", f"/orders/{pending_order.id}/status", {"status": "packed"})
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = api.post("manager", f"/orders/{pending_order.id}/status", {"status": "shipped"})
    assert status == 422 and "status" in body["error"]["fields"]
    assert api.post("manager", f"/orders/{pending_order.id}/offline-payment", {"reference": "R1"})[0] == 200
    status, body = api.post("manager", f"/orders/{pending_order.id}/offline-payment", {"reference": "R2"})
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = api.post("staff01", f"/orders/{pending_order.id}/cancel")
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    sales = db.session.scalar(select(func.count()).select_from(JournalTransaction)
                              .where(JournalTransaction.kind == "sale"))
    assert sales == 1  # paid once, posted once


def test_a_buyer_cancels_their_pending_order_and_the_stock_returns(api, world, pending_order):
    status, body = api.post("staff01", f"/orders/{pending_order.id}/cancel")
    assert status == 200 and body["status"] == "cancelled"
    status, products = api.get("staff01", "/products", category="eggs")
    assert [p["available"] for p in products["items"]] == [30]


def test_a_company_places_a_bulk_order_on_account_at_tier_prices(api, world):
    from shop.catalog.models import PriceTier

    db.session.add(PriceTier(product_id=world.brooms.id, min_quantity=100, unit_price_fen=800))
    db.session.commit()
    status, body = api.post("buyer-jinlv", "/orders", {"lines": [{"product_id": world.brooms.id, "quantity": 120},
                                                                 {"product_id": world.eggs.id, "quantity": 10}],
                                                       "payment_method": "offline"})
    assert status == 422 and "payment_method" in body["error"]["fields"]
    request = {"lines": [{"product_id": world.brooms.id, "quantity": 120}, {"product_id": world.eggs.id, "quantity": 10}],
               "payment_method": "account"}
    status, body = api.post("buyer-jinlv", "/orders", request)
    assert status == 409 and body["error"]["code"] == "insufficient_stock"  # no brooms received yet
    assert "环卫扫帚 需要 120，现有 0" in body["error"]["message"] and _count(Order) == 0
    from tests.factories import receive

    receive(world.h3, world.manager, (world.brooms, 150))
    db.session.commit()
    status, body = api.post("buyer-jinlv", "/orders", request)
    assert status == 201 and (body["channel"], body["status"], body["payment_status"]) == ("bulk", "requested",
                                                                                        "unpaid")
    assert body["total_fen"] == 120 * 800 + 10 * 120
    status, confirmed = api.post("manager", f"/orders/{body['id']}/status", {"status": "confirmed"})
    assert status == 200 and confirmed["status"] == "confirmed"
    assert sum(a["quantity"] for line in confirmed["lines"] for a in line["allocations"]) == 130


def test_generating_a_months_order_twice_gives_the_same_order(api, world):
    from shop.contracts import services as contracts
    from tests.factories import receive

    receive(world.enterprise, world.manager, (world.brooms, 50))
    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-1", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=10, first_month="2026-01", last_month="2026-12", cap_fen=100_000, delivery_address="站",
        delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    db.session.commit()
    first = api.post("admin", f"/contracts/{contract.id}/orders", {"month": "2026-03"})
    second = api.post("admin", f"/contracts/{contract.id}/orders", {"month": "2026-03"})
    assert first[0] == 201 and first[1]["created"] is True
    assert second == (200, {"order_id": first[1]["order_id"], "created": False, "backordered": 0, "trimmed": False})
    assert api.post("admin", f"/contracts/{contract.id}/orders", {"month": "2027-01"})[0] == 409
    assert api.post("admin", f"/contracts/{contract.id}/orders", {"month": "2026-13"})[0] == 422
    assert _count(Order) == 1


def test_messages_follow_accept_language(api, world):
    status, body = api.call("staff01", "GET", "/orders/999", headers={"Accept-Language": "en"})
    assert status == 404 and body["error"]["message"].startswith("The page")
    status, body = api.call("staff01", "GET", "/orders/999")
    assert "不存在" in body["error"]["message"]


def test_lists_are_paged(api, world):
    status, page = api.get("manager", "/households", per_page=2)
    assert (page["total"], page["page"], len(page["items"])) == (3, 1, 2)
    status, page = api.get("manager", "/households", per_page=2, page=2)
    assert [h["code"] for h in page["items"]] == ["XXC003"]
    assert api.get("manager", "/households", per_page=500)[0] == 422
    status, body = api.get("admin", "/reports/summary", form="2026-01-01")  # a typo is refused, not ignored
    assert status == 422 and "form" in body["error"]["fields"]


def test_the_document_and_its_docs_page_are_served_from_the_shop(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/api/v1/orders/{order_id}/acceptance" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    page = client.get("/api/v1/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "http://" not in html and "https://" not in html  # nothing from a CDN
    assert "<script>" not in html  # the CSP allows no inline script
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_an_online_order_through_the_api_is_paid_by_stripes_webhook(api, world, stripe_driver):
    """payment_method stripe: the answer carries the Checkout page; only the signed webhook makes it paid,
    and a refund through the API goes back through Stripe."""
    status, order = api.post("staff01", "/orders", {"lines": [{"product_id": world.eggs.id, "quantity": 5}],
                                                    "pickup_point_id": world.point.id, "payment_method": "stripe"})
    assert status == 201 and order["status"] == "pending_payment" and "/pay/cs_test_" in order["checkout_url"]
    session_id = db.session.get(Order, order["id"]).stripe_session_id
    assert stripe_driver.session(session_id)["amount_total"] == 600
    assert "checkout_url" not in api.get("staff01", f"/orders/{order['id']}")[1]  # only when just placed
    assert stripe_driver.deliver(stripe_driver.pay(session_id)).get_json()["outcome"] == "paid"
    status, paid = api.get("staff01", f"/orders/{order['id']}")
    assert paid["status"] == "paid" and paid["paid_at"].endswith("+00:00")
    status, refund = api.post("manager", f"/orders/{order['id']}/refunds",
                              {"lines": [{"line_id": paid["lines"][0]["id"], "quantity": 2}], "restock": True})
    assert status == 201 and refund["amount_fen"] == 240 and refund["method"] == "stripe"
    assert refund["stripe_status"] == "succeeded"  # sent to Stripe once the refund was committed
    intent = db.session.get(Order, order["id"]).stripe_payment_intent_id
    assert [r["amount"] for r in stripe_driver.refunds(intent)] == [240]


def test_when_stripe_cannot_be_reached_the_placed_order_is_answered_with_how_to_pay(app, api, world, stripe_driver):
    """The order is committed before Stripe is called: if Stripe is down, the answer is still 201 with the
    order (its stock held) and a hint, never a 500 that would make the client place it again."""
    from tests.payments.stripe_fixtures import _free_port
    app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    status, order = api.post("staff01", "/orders", {"lines": [{"product_id": world.eggs.id, "quantity": 5}],
                                                    "pickup_point_id": world.point.id, "payment_method": "stripe"})
    assert status == 201 and order["status"] == "pending_payment" and "checkout_url" not in order
    assert "订单已保留" in order["payment_hint"]
    assert db.session.get(Order, order["id"]).lines[0].held == 5

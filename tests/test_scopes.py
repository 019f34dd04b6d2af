"""Each village's manager sees only their own village: no route, API operation, export or form reaches another's.

A second village, 远山村, has everything a village can have — a household, an enterprise, a product, a pickup
point, a lot, a paid order, a payout, a seasonal sales point with a grower, a permit and a sale, a household card
and a visit note. The manager of XX村 walks every route and API operation they may use, with 远山村's ids: each
answers "not found" (or "forbidden"), no page, list, export or API answer names anything of 远山村, and nothing in
the database changes. The county's coordinator (admin) still sees both villages.
"""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from flask import url_for
from sqlalchemy import func, select

from shop.extensions import db
from tests.conftest import text_of
from tests.routes_table import ROUTES, allowed

# what only 远山村 has: none of it may appear on a page the XX村 manager sees
FAR = ("欧阳远山", "远山蜂蜜合作社", "远山土蜂蜜", "远山村", "远山集市", "YSC001", "YS01")
# arguments naming an object of a village (the rest — a month, a format, a user — are not a village's)
VILLAGE_ARGS = {"household_id", "enterprise_id", "product_id", "point_id", "lot_id", "intake_id", "supplier_id",
                "order_id", "permit_id", "sale_id", "refund_id", "contract_id"}
# tables whose rows must not change while the manager walks
WATCHED = ("village", "household", "enterprise", "product", "pickup_point", "intake", "lot", "stock_movement",
           "shop_order", "order_line", "allocation", "refund", "journal_transaction", "ledger_entry", "payout",
           "sales_point", "point_grower", "point_operator", "permit", "point_sale", "household_card", "visit_note",
           "pairing", "point_manager", "contract", "ledger_account")


@pytest.fixture
def far(world):
    """远山村 and everything in it, beside the world's XX村."""
    from datetime import timedelta

    from shop import clock
    from shop.contracts import services as contracts
    from shop.ledger import services as ledger
    from shop.payments import services as payments
    from shop.points import services as points
    from shop.producers import services as producers
    from shop.producers.models import Enterprise
    from shop.catalog.models import PickupPoint
    from tests import factories

    v = producers.create_village("远山村", "远山镇")
    f = SimpleNamespace(village=v)
    f.manager = factories.user("manager-ys", "manager", None, "远山服务点管理员")
    producers.set_managed_villages(f.manager.id, {v.id})
    f.h = factories.household(v, "YSC001", "欧阳远山", phone="13700001111")
    f.enterprise = Enterprise(name="远山蜂蜜合作社", kind="cooperative", village=v)
    db.session.add(f.enterprise)
    f.honey = factories.product("远山土蜂蜜", "other", "瓶", 4500, village=v)
    f.point = PickupPoint(village_id=v.id, name="远山村服务点", address="远山村村委会", active=True)
    db.session.add(f.point)
    db.session.flush()
    f.lot = factories.receive(f.h, f.manager, (f.honey, 20)).lots[0]
    f.order = factories.order(world.staff, f.point, (f.honey, 2))
    payments.confirm_offline_payment(f.order, reference="YS-1", user_id=f.manager.id)
    ledger.pay_out(ledger.household_account(f.h.id), 1000, method="cash", reference="YS-P1", user_id=f.manager.id)
    f.unpaid = factories.order(world.staff, f.point, (f.honey, 1))
    today = clock.today()
    f.sales_point = points.save_point(None, points.PointData(
        code="YS01", name="远山集市", address="远山镇街口", first_day=today, last_day=today + timedelta(days=5),
        village_id=v.id), user_id=None)
    points.add_grower(f.sales_point, household_id=f.h.id)
    f.permit = points.issue_permit(f.sales_point, household_id=f.h.id, issued_by="县市场监督管理局",
                                   valid_from=today, valid_to=today, user_id=None)
    f.contract = contracts.save_contract(None, contracts.ContractData(
        number="YS-C1", organization_id=world.jinlv.id, product_id=f.honey.id, unit_price_fen=4000,
        monthly_quantity=2, first_month="2023-01", last_month="2023-12", cap_fen=100_000, delivery_address="站",
        delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    producers.issue_card(f.h, user_id=world.admin.id, pin="246810")
    producers.set_supported_villages(world.bureau.id, {world.village.id, v.id})
    producers.pair(world.staff2, f.h)
    producers.add_visit_note(world.staff2, f.h, visited_on=today, note="远山村走访")
    db.session.commit()
    return f


def _values(world, far) -> dict:
    return {
        "user_id": world.staff.id, "household_id": far.h.id, "enterprise_id": far.enterprise.id,
        "pairing_id": world.pairing.id, "product_id": far.honey.id, "name": "households", "code": "en",
        "lot_id": far.lot.id, "intake_id": far.lot.intake_id, "kind": "household", "supplier_id": far.h.id,
        "token": far.lot.token, "order_id": far.order.id, "contract_id": far.contract.id, "backorder_id": 1,
        "organization_id": world.jinlv.id, "month": "2023-09", "fmt": "csv", "token_id": 1,
        "filename": "swagger-ui.css", "notification_id": 1, "permit_id": far.permit.id, "sale_id": 1,
        "refund_id": 1, "point_id": None,
    }


def _url(app, endpoint, values, far):
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    args = {k: values[k] for k in rule.arguments}
    if "point_id" in args:
        args["point_id"] = far.sales_point.id if endpoint.split(".")[0] in ("points", "api_points") else far.point.id
    with app.test_request_context():
        return url_for(endpoint, **args), rule.methods, bool(set(args) & VILLAGE_ARGS)


def _visible_text(response) -> str:
    kind = response.headers.get("Content-Type", "")
    if "spreadsheetml" in kind:
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
        return " ".join(str(c) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
                        for c in row if c is not None)
    if kind.startswith("image/") or "pdf" in kind:
        return ""
    return text_of(response) if "html" in kind else response.get_data(as_text=True)


def _snapshot() -> dict:
    from shop.extensions import db as _db

    tables = _db.metadata.tables
    return {name: sorted(map(repr, db.session.execute(select(tables[name])).all())) for name in WATCHED}


# a valid body for each API operation that takes one, so that what answers is the object's scope, not the schema
API_BODIES = {
    "api_ledger.payout": {"amount_fen": 100, "method": "cash", "reference": "R-1"},
    "api_orders.move_on": {"status": "packed"},
    "api_orders.offline_payment": {"reference": "R-1"},
    "api_orders.refund": {"lines": [{"line_id": 1, "quantity": 1}], "restock": True},
    "api_points.sync": {"sales": []},
}

MANAGER_ROUTES = sorted(e for e in ROUTES if allowed(e, "manager") and ROUTES[e] != "public"
                        and e not in ("accounts.logout", "accounts.token_revoke"))


def test_a_village_manager_reaches_nothing_of_another_village(app, world, far):
    from shop.accounts.services import create_api_token
    from shop.accounts.models import User

    values = _values(world, far)
    token = create_api_token(db.session.get(User, world.manager.id), "scope test")[1]
    db.session.commit()
    before = _snapshot()
    client = app.test_client()
    client.login("manager")
    leaks = []
    for endpoint in MANAGER_ROUTES:
        url, methods, names_far = _url(app, endpoint, values, far)
        method = "GET" if "GET" in methods else "POST"
        api = endpoint.startswith("api_")
        if api:
            response = app.test_client().open(url, method=method,
                                              json=API_BODIES.get(endpoint, {}) if method == "POST" else None,
                                              headers={"Authorization": f"Bearer {token}"})
        else:
            response = client.open(url, method=method, data={} if method == "POST" else None)
        assert response.status_code < 500, f"{endpoint}: {response.status_code}"
        if names_far and response.status_code not in (403, 404):
            leaks.append(f"{method} {url} ({endpoint}) answered {response.status_code}, not 404")
        if response.status_code == 200:
            seen = [word for word in FAR if word in _visible_text(response)]
            if seen:
                leaks.append(f"{method} {url} ({endpoint}) shows {seen}")
    assert leaks == [], "\n".join(leaks)
    db.session.expire_all()
    assert _snapshot() == before


def test_forms_and_api_refuse_another_villages_objects(app, world, far):
    """Ids of 远山村 sent in a form or an API body are unknown to the XX村 manager: refused, nothing written."""
    from shop.accounts.services import create_api_token
    from shop.accounts.models import User

    token = create_api_token(db.session.get(User, world.manager.id), "scope test")[1]
    db.session.commit()
    before = _snapshot()
    client = app.test_client()
    client.login("manager")
    # take in stock from 远山村's household, or into 远山村's product
    assert client.post(f"/manage/intake/household/{far.h.id}", data={}).status_code == 404
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    for n, body in enumerate(({"household_id": far.h.id, "product_id": world.eggs.id, "quantity": 1},
                              {"household_id": world.h1.id, "product_id": far.honey.id, "quantity": 1})):
        response = api.post("/api/v1/lots", json=body, headers={**auth, "Idempotency-Key": f"scope-{n}"})
        assert response.status_code in (404, 422), response.get_data(as_text=True)
    # a grower, an operator or a permit of 远山村 at a point of 远山村, or 远山村's household at XX村's point
    assert client.post(f"/manage/points/{far.sales_point.id}/growers", data={"grower": f"h{world.h1.id}"}
                       ).status_code == 404
    # a product or a pickup point put into 远山村
    response = client.post("/manage/products/new", data={
        "village_id": far.village.id, "name": "偷放的商品", "category": "eggs", "unit": "枚", "price": "1.00",
        "active": "y"})
    assert response.status_code == 422 and "不是你负责的村" in text_of(response)
    response = client.post("/manage/pickup-points/new", data={
        "village_id": far.village.id, "name": "偷放的自提点", "address": "某处", "active": "y"})
    assert response.status_code == 422 and "不是你负责的村" in text_of(response)
    # a household registered into 远山村, or moved there
    response = client.post("/manage/households/new", data={
        "code": "YSC999", "head_name": "偷放", "members": "2", "status": "ordinary", "village_id": far.village.id})
    assert response.status_code == 422
    db.session.expire_all()
    assert _snapshot() == before


def test_the_county_sees_every_village(app, world, far):
    client = app.test_client()
    client.login("admin")
    for url in ("/manage/households", "/manage/enterprises", "/manage/villages", "/manage/orders",
                "/manage/stock"):
        page = text_of(client.get(url))
        assert "XX" in page, url
    assert "欧阳" in text_of(client.get("/manage/households")) or "欧**" in text_of(client.get("/manage/households"))
    assert "远山土蜂蜜" in text_of(client.get("/manage/stock"))
    assert "远山村" in text_of(client.get("/manage/villages"))


def test_a_manager_of_two_villages_sees_both(app, world, far):
    """Grants add up: the manager given 远山村 as well sees both villages' households, and no more."""
    from shop.producers import services as producers

    producers.set_managed_villages(world.manager.id, {world.village.id, far.village.id})
    db.session.commit()
    client = app.test_client()
    client.login("manager")
    page = text_of(client.get("/manage/households"))
    assert "李建国" in page and "欧阳远山" in page
    assert client.get(f"/manage/households/{far.h.id}").status_code == 200


def test_one_order_is_one_service_points(app, world, far):
    """An order holds one village's goods (a checkout of two is split: tests/orders/test_split_checkout.py); a
    pickup point must be the goods' point."""
    from shop.errors import ValidationFailed
    from shop.orders import services as orders

    with pytest.raises(ValidationFailed, match="远山村") as refused:
        orders.place_order(world.staff, payment_method="offline", pickup_point_id=world.point.id,
                           lines=[(world.eggs.id, 1), (far.honey.id, 1)])
    assert "请为远山村服务点的商品选择一个它的自提点" in str(refused.value)
    with pytest.raises(ValidationFailed, match="远山村服务点"):
        orders.place_order(world.staff, payment_method="offline", pickup_point_id=far.point.id,
                           lines=[(world.eggs.id, 1)])
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(
        select(db.metadata.tables["shop_order"]).subquery())) == 2  # 远山村's two, nothing more


def test_stock_comes_from_the_products_own_village(world, far):
    from shop.errors import ValidationFailed
    from tests import factories

    with pytest.raises(ValidationFailed, match=re.escape("远山土蜂蜜")):
        factories.receive(world.h1, world.manager, (far.honey, 5))


def test_the_county_report_shows_every_village(app, world, far):
    """The county's coordinator sees each village's sales and households, exports them, and the year's summary
    says where the buying went, village by village."""
    from shop import clock
    from shop.reports import figures, summary
    from tests import factories

    from shop.payments import services as payments

    order = factories.order(world.staff, world.point, (world.eggs, 10))
    payments.confirm_offline_payment(order, reference="XX-1", user_id=world.manager.id)
    db.session.commit()
    report = figures.build(figures.Period.year(clock.today().year), clock.today())
    assert report.villages == (("远山村", 1, 1, 9000, 9000), ("XX村", 3, 1, 1200, 1200))
    # the summary sums them from one pass over the products; the report's tables and exports say the same
    period = figures.Period.year(clock.today().year)
    assert report.villages == tuple(figures.rows("villages", period))
    assert sorted(report.by_category) == sorted(figures.rows("categories", period)) and report.by_category
    sentences = summary.summary_sentences(report)
    assert "全县1个单位和企业采购102.00元，带动2个村2户增收。" in sentences
    assert "远山村服务点销售90.00元，1户农户中1户增收，农户和村企实得90.00元。" in sentences

    client = app.test_client()
    client.login("admin")
    page = text_of(client.get("/admin/report"))
    assert "各村" in page and "远山村 1 1 ¥90.00 ¥90.00" in page
    csv = client.post("/admin/report/export/villages.csv", data={}).get_data(as_text=True)
    assert "远山村,1,1,90.00,90.00" in csv.replace("\r", "")

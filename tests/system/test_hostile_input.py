"""Hostile input never reaches a server error, and a refusal changes nothing.

A property test posts generated hostile values — NUL, control and invisible characters, huge and negative
integers, superscripts and other scripts' digits, full-width digits, very long strings — into every form field
the shop's pages render and every query parameter, on every route of the route table, as a role allowed to use
it; and deeply nested or control-character JSON at the API. No answer may be a 5xx, and when the answer is a
refusal (4xx, or a redirect that flashes an error) no table's row count may have changed.

Then each finding of the adversarial review is pinned by its own test.
"""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from shop.extensions import db
from tests.routes_table import ROUTES, allowed
from tests.test_routes import ENDPOINTS, USERNAMES, _url_for, sales_point  # noqa: F401 - its fixture

HOSTILE = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\x07\x1b[2J", "\u200b", "\u200b\u200d\ufeff", "\u202e\u2066\u2069", "²",
                     "¹²³", "١٢٣", "１２", "１０００００００００", "-1", "0", "2147483648", str(2**63), str(10**20),
                     "1e3", "NaN", "0x10", " ", "x" * 3000, "=HYPERLINK(\"http://x\")", "'; DROP TABLE lot;--",
                     "<script>alert(1)</script>", "../../etc/passwd", "2023-02-30", "9999-99", "//evil.example"]),
    st.integers(-2**70, 2**70).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
QUERY_NAMES = ["q", "status", "page", "from", "to", "org", "year", "category", "role", "user", "object", "id", "days",
               "low", "all", "next", "encoding", "format", "per_page"]
ROLE_ORDER = ["manager", "admin", "staff", "company", "operator", "coordinator"]
NOT_COUNTED = {"audit_event"}  # a refused login is recorded there, on purpose


def _role(endpoint: str) -> str | None:
    rule = ROUTES[endpoint]
    if rule == "public":
        return None
    return next(role for role in ROLE_ORDER if allowed(endpoint, role))


def _counts() -> tuple:
    tables = [t.name for t in db.metadata.sorted_tables if t.name not in NOT_COUNTED]
    sql = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}")' for t in tables)
    return tuple(db.session.execute(text(sql)).one())


def _field_names(client, pages) -> list[str]:
    names = set()
    for url in pages:
        html = client.get(url).get_data(as_text=True)
        names |= set(re.findall(r'name="([^"]+)"', html))
    return sorted(names - {"csrf_token"})


WEB_ENDPOINTS = [e for e in ENDPOINTS if not e.startswith("api") and e not in (
    "static", "api_docs_asset", "payments.webhook", "accounts.logout")]


@pytest.fixture
def api(app, world):
    from tests.api.conftest import ApiClient

    return ApiClient(app)


@pytest.fixture
def contract(world):
    from shop.contracts import services

    world.contract = services.save_contract(None, services.ContractData(
        number="JL-H", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=10, first_month="2023-01", last_month="2030-12", cap_fen=1_000_000, delivery_address="站",
        delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    db.session.commit()
    return world.contract


@pytest.mark.parametrize("endpoint", WEB_ENDPOINTS)
def test_hostile_values_never_break_a_page_or_change_anything_when_refused(app, world, pending_order, contract,
                                                                          sales_point, endpoint):  # noqa: F811
    url, methods = _url_for(app, world, endpoint)
    role = _role(endpoint)
    client = app.test_client()
    if role:
        client.login(USERNAMES[role])
    names = _field_names(client, [url] if "GET" in methods else [])
    names = names or ["quantity", "reference", "amount", "name", "reason", "note", "month", "product_id"]
    method = "POST" if "POST" in methods else "GET"

    @settings(max_examples=6, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(values=st.dictionaries(st.sampled_from(names + QUERY_NAMES), HOSTILE, min_size=1, max_size=6))
    def probe(values):
        before = _counts()
        query = {k: v for k, v in values.items() if k in QUERY_NAMES}
        if method == "GET":
            response = client.get(url, query_string=query)
        else:
            response = client.post(url, query_string=query, data=values)
        assert response.status_code < 500, (endpoint, values, response.status_code)
        refused = response.status_code >= 400 or _flashed_error(client)
        if refused:
            assert _counts() == before, (endpoint, values)

    probe()


def _flashed_error(client) -> bool:
    with client.session_transaction() as session:
        flashes = session.get("_flashes", [])
        session.pop("_flashes", None)
    return any(category == "error" for category, _message in flashes)


# --- the findings, one by one ------------------------------------------------------------------------

@pytest.mark.parametrize("who,url,expected", [
    (None, "/?q=%00", 422), ("manager", "/manage/households?q=%00", 422), ("manager", "/manage/intake?q=%00", 422),
    ("admin", "/admin/audit?user=%00", 422), ("admin", "/admin/users?role=%00", 422),
    (None, "/?page=99999999999999999999", 404),          # a page number past any list: no such page
    ("manager", "/manage/orders/99999999999", 404),      # an id beyond the database's: no such order
    ("admin", "/admin/report?org=%C2%B2", 302),          # a superscript is not a unit's id: said on the page
])
def test_nul_bytes_and_giant_numbers_in_urls_are_refused_not_crashes(app, client, world, who, url, expected):
    if who:
        client.login(USERNAMES[who])
    response = client.get(url)
    assert response.status_code == expected
    if expected == 422:
        assert "控制字符" in response.get_data(as_text=True)


@pytest.mark.parametrize("path,data", [
    ("/cart/add", {"product_id": "2147483648", "quantity": "1"}),
    ("/cart/add", {"product_id": "1", "quantity": "²"}),
    ("/cart/update", {"qty-1": str(10**20)}),
    ("/cart/update", {"qty-1": "²"}),
    ("/cart/update", {f"qty-{2**63}": "1"}),
    ("/checkout", {"handover": "pickup", "payment_method": "offline", "pickup_point_id": str(2**63)}),
    ("/checkout", {"handover": "pickup", "payment_method": "offline", "pickup_point_id": "a\x00"}),
])
def test_hostile_form_values_for_staff_change_nothing(app, client, world, path, data):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "2"})
    before = _counts()
    response = client.post(path, data=data)
    assert response.status_code < 500
    assert _counts() == before


def test_a_payout_reference_or_product_name_of_invisible_characters_is_blank(app, client, world, pending_order):
    from shop.payments import services as payments

    payments.confirm_offline_payment(pending_order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    client.login("manager")
    before = _counts()
    response = client.post(f"/manage/ledger/household/{world.h1.id}/payouts",
                           data={"amount": "1.00", "method": "cash", "reference": "\u200b\u200d\u202e"})
    assert response.status_code == 422 and _counts() == before
    response = client.post("/manage/products/new", data={"name": "\u200b\u2066\u2069", "category": "eggs",
                                                         "unit": "枚", "price": "1.00", "active": "y"})
    assert response.status_code == 422 and _counts() == before
    response = client.post("/manage/products/new", data={"name": "鸡蛋\x00", "category": "eggs", "unit": "枚",
                                                         "price": "1.00"})
    assert response.status_code == 422 and "控制字符" in response.get_data(as_text=True)


def test_a_superscript_member_count_in_an_import_is_a_row_problem(app, client, world):
    client.login("manager")
    data = "户编号,户主姓名,家庭人口,属性\nXXC901,测试,²,脱贫户\n".encode()
    from io import BytesIO

    response = client.post("/manage/households/import", data={"file": (BytesIO(data), "h.csv"),
                                                              "village_id": str(world.village.id)},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "不是正整数" in response.get_data(as_text=True)


def test_the_api_answers_every_4xx_in_its_error_body(app, world, api):
    client = app.test_client()
    token = api.token_for("staff01")
    headers = {"Authorization": f"Bearer {token}"}
    deep = b"[" * 5000 + b"]" * 5000
    for response, code in (
            (client.post("/api/v1/orders", data=deep, headers={**headers, "Content-Type": "application/json"}), 400),
            (client.post("/api/v1/orders", data=b"x" * (9 * 1024 * 1024), headers={**headers,
                                                                                     "Content-Type": "application/json"}),
             413),
            (client.delete("/api/v1/orders", headers=headers), 405),
            (client.post("/api/v1/orders", data="lines=1", headers={**headers, "Content-Type": "text/plain"}), None),
            (client.post("/api/v1/orders", json={"lines": [{"product_id": 1, "quantity": 1}],
                                                 "payment_method": "offline\x00"}, headers=headers), 422),
    ):
        assert response.content_type.startswith("application/json"), (code, response.status_code, response.data[:80])
        body = response.get_json()
        assert set(body["error"]) == {"code", "message", "fields"}
        assert code is None or response.status_code == code, (code, response.status_code)
        assert 400 <= response.status_code < 500


# --- Stripe events of the wrong shape ---------------------------------------------------------------------

@pytest.mark.parametrize("event", [
    {"id": "evt_bad_1", "type": "checkout.session.completed", "data": "not an object"},
    {"id": "evt_bad_2", "type": "checkout.session.completed",
     "data": {"object": {"id": "cs_1", "payment_status": "paid", "amount_total": "abc", "currency": "cny"}}},
    {"id": "evt_bad_3", "type": "checkout.session.completed",
     "data": {"object": {"id": "cs_2", "client_reference_id": str(2**70), "payment_status": "paid",
                         "amount_total": 100, "currency": "cny"}}},
    {"id": "evt_" + "x" * 300, "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}},
    {"id": "evt_bad_5", "type": "charge.refunded", "data": {"object": {"id": "ch_1", "amount_refunded": -5}}},
])
def test_a_signed_event_of_the_wrong_shape_is_recorded_as_rejected(app, client, world, stripe_driver, event):
    from shop.payments.models import ProcessedStripeEvent
    from shop.payments.services import event_key

    before = _counts()
    response = stripe_driver.deliver(event)
    assert response.status_code == 200 and response.get_json()["outcome"].startswith("rejected")
    assert db.session.get(ProcessedStripeEvent, event_key(event)).outcome.startswith("rejected")
    again = stripe_driver.deliver(event)
    assert again.get_json()["outcome"] == "duplicate"
    after = _counts()
    assert sum(after) - sum(before) == 1  # the rejected event's own row, nothing else


def test_a_webhook_signed_in_the_future_is_refused(app, client, world, stripe_driver):
    import time

    event = {"id": "evt_future", "type": "checkout.session.expired", "data": {"object": {"id": "cs_x"}}}
    response = stripe_driver.deliver(event, timestamp=int(time.time()) + 24 * 3600)
    assert response.status_code == 400


# --- exports are safe to open ------------------------------------------------------------------------------

def test_a_formula_in_a_name_is_written_as_text_in_every_export(app, client, world):
    import csv
    import io

    from openpyxl import load_workbook

    from shop.payments import services as payments
    from tests.factories import order as place

    world.h1.head_name = '=HYPERLINK("http://evil.example","点我")'
    db.session.commit()
    placed = place(world.staff, world.point, (world.eggs, 2))
    payments.confirm_offline_payment(placed, reference="+cmd|' /C calc'!A0", user_id=world.manager.id)
    db.session.commit()
    client.login("admin")
    rows = list(csv.reader(io.StringIO(client.post("/admin/report/export/households.csv", data={})
                                       .get_data().decode("utf-8-sig"))))
    assert rows[1][2] == "'" + world.h1.head_name
    sheet = load_workbook(io.BytesIO(client.post("/admin/report/export/households.xlsx", data={}).data)).active
    cell = sheet.cell(row=2, column=3)
    assert cell.value == world.h1.head_name and cell.data_type == "s"  # text, never a formula


# --- tokens end with a new password ----------------------------------------------------------------------

def test_a_new_password_or_a_deactivation_ends_the_users_api_tokens(app, client, world, api):
    from shop.audit.models import AuditEvent

    token = api.token_for("staff01")
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/orders", headers=headers).status_code == 200
    client.login("staff01")
    client.post("/account/password", data={"current_password": "correct-horse-battery",
                                           "new_password": "a-brand-new-password", "confirm": "a-brand-new-password"})
    assert app.test_client().get("/api/v1/orders", headers=headers).status_code == 401
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "api_token.revoke")) is not None
    other = api.token_for("staff02")
    client.logout()
    client.login("admin")
    client.post(f"/admin/users/{world.staff2.id}/edit", data={"display_name": "王秀英", "role": "staff",
                                                              "organization_id": str(world.bureau.id)})
    assert app.test_client().get("/api/v1/orders", headers={"Authorization": f"Bearer {other}"}).status_code == 401


def test_the_lot_schema_describes_remaining_as_the_api_answers_it(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    remaining = spec["components"]["schemas"]["Lot"]["properties"]["remaining"]["description"]
    assert "not counting the units reserved" in remaining
    assert json.dumps(spec)  # the document itself stays valid JSON


# --- the last server errors: big integers, chunked bodies, other scripts' digits, huge sheets ----------------

def _api_writes(app) -> list[tuple[str, str]]:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    return [(method.upper(), path) for path, operations in spec["paths"].items() for method in operations
            if method in ("post", "put", "patch")]


def test_every_api_write_refuses_a_giant_integer_and_a_chunked_deep_body_with_its_error_body(app, world, api,
                                                                                          pending_order):
    """Every POST of the API, as a manager and as a staff member: a JSON integer of 5,000 digits, the same inside
    a chunked body (no Content-Length), and a chunked body nested 5,000 deep are each a 400 in the API's error
    body — never a 500 — and change nothing."""
    import io

    giant = "9" * 5000
    bodies = [
        ('{"lines": [{"product_id": %s, "quantity": 1}], "amount_fen": %s}' % (giant, giant)).encode(),
        ('{"quantity": 1, "product_id": 1, "household_id": %s}' % giant).encode(),
        b"[" * 5000 + b"]" * 5000,
        b'{"quantity": NaN}',
    ]
    before = _counts()
    for username in ("manager", "staff01", "admin"):
        headers = {"Authorization": f"Bearer {api.token_for(username)}", "Content-Type": "application/json"}
        before = _counts()
        for method, path in _api_writes(app):
            url = re.sub(r"\{[^}]+\}", str(pending_order.id), path)
            for body in bodies:
                for chunked in (False, True):
                    extra = ({"input_stream": io.BytesIO(body), "environ_overrides": {"wsgi.input_terminated": True},
                              "headers": {**headers, "Transfer-Encoding": "chunked"}} if chunked
                             else {"data": body, "headers": headers})
                    response = app.test_client().open(url, method=method, **extra)
                    assert response.status_code == 400, (method, url, body[:40], chunked, response.status_code)
                    assert set(response.get_json()["error"]) == {"code", "message", "fields"}
        assert _counts() == before


def test_a_superscript_in_the_order_search_is_simply_not_found(app, client, world, pending_order):
    client.login("manager")
    for q in ("²", "١٢", "20261204-²"):
        response = client.get("/manage/orders", query_string={"q": q, "status": "all"})
        assert response.status_code == 200, q


@pytest.mark.parametrize("typed", ["١٢", "١٢.٥٠", "۱۲", "١,٢٠٠.00", "१२"])
def test_other_scripts_digits_are_not_money(app, client, world, pending_order, typed):
    """Arabic-Indic, Persian and Devanagari digits are refused wherever money is typed (the pay-out form here);
    full-width digits, which Chinese phones type, are a different matter and stay accepted as whole numbers."""
    from shop.formatting import parse_yuan
    from shop.payments import services as payments

    with pytest.raises(ValueError):
        parse_yuan(typed)
    payments.confirm_offline_payment(pending_order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    client.login("manager")
    before = _counts()
    response = client.post(f"/manage/ledger/household/{world.h1.id}/payouts",
                           data={"amount": typed, "method": "cash", "reference": "R"})
    assert response.status_code == 422 and _counts() == before


def test_other_scripts_digits_are_not_quantities_or_page_numbers(app, world, api):
    from shop.errors import ValidationFailed
    from shop.points.services import parse_quantity

    for typed in ("١٢", "١٢.٥", "12.٥"):
        with pytest.raises(ValidationFailed):
            parse_quantity(typed, world.melon)
    status, body = api.get("manager", "/households", page="١")
    assert status == 422 and "page" in body["error"]["fields"]
    assert api.get("manager", "/households", page="１")[0] == 422  # a page number in a URL is typed by a program
    status, _body = api.call("staff01", "POST", "/orders", json={"lines": [{"product_id": world.eggs.id,
                                                                            "quantity": "١٢"}]})
    assert status == 422


def _huge_sheet(rows: int) -> bytes:
    import io

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["户编号", "户主姓名", "家庭人口", "属性"])
    for n in range(rows):
        sheet.append([f"XXC{n:06d}", "某某", 3, "脱贫户"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_sheet_of_too_many_rows_is_refused_after_reading_only_the_limit(app, client, world, monkeypatch):
    """A sheet past the 20,000-row limit is refused with a row-count message, and no more than the limit's rows
    are ever read (a small file may declare millions)."""
    from io import BytesIO

    from shop import tabular

    read = []
    real = tabular._cell_text
    monkeypatch.setattr(tabular, "_cell_text", lambda value: read.append(1) or real(value))
    monkeypatch.setattr(tabular, "MAX_ROWS", 500)
    data = _huge_sheet(5_000)
    client.login("manager")
    before = _counts()
    response = client.post("/manage/households/import", data={"file": (BytesIO(data), "h.xlsx"),
                                                              "village_id": str(world.village.id)},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "行数过多" in text_of_response(response)
    assert len(read) <= 502 * tabular.MAX_COLUMNS and _counts() == before  # rows read: the limit, not 5,000


def test_a_sheet_that_unpacks_to_gigabytes_is_refused_unread(app, client, world):
    import io
    import zipfile
    from io import BytesIO

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<row/>" * (70 * 2**20 // 6))
    assert len(buffer.getvalue()) < 400_000
    client.login("manager")
    response = client.post("/manage/households/import", data={"file": (BytesIO(buffer.getvalue()), "h.xlsx"),
                                                              "village_id": str(world.village.id)},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "解压后过大" in text_of_response(response)


def text_of_response(response) -> str:
    from tests.conftest import text_of

    return text_of(response)

"""Every page, as every role, in Chromium on a phone (390 × 844) and on a desktop (1366 × 768), over the demo
village as `make run` loads it: no server error, no script error, no sideways scroll of the page, and no table
whose key columns — quantities, amounts, actions — are out of view unless its scroll box says it scrolls.

Each route of the URL map that answers a page to GET is visited by each role the route table allows (and by
nobody, for the public ones), with the ids of that role's own objects in the demo.
"""
from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from shop import create_app, demo, unit_of_work
from shop.extensions import db
from tests.browser.test_journeys import CHROMIUM, PHONE, browser  # noqa: F401 - the browser fixture
from tests.routes_table import ROUTES, allowed

DESKTOP = {"width": 1366, "height": 768}
USERNAMES = {"staff": "staff01", "company": "buyer-jinlv", "manager": "manager", "admin": "admin", "operator": "op01",
             "coordinator": "coordinator"}
NOT_PAGES = {
    "static", "health.healthz", "site.favicon", "site.set_language", "catalog.product_photo",
    "points.service_worker", "points.state", "contracts.contract_scan", "api_docs_asset", "orders.payment_return",
}
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"), pytest.mark.slow]

CHECK = """() => {
  const W = window.innerWidth;
  const found = {overflow: document.documentElement.scrollWidth - W, tables: [], squeezed: [], wide: []};
  if (found.overflow > 1) {  // name what sticks out, to say what to fix
    for (const el of document.querySelectorAll('main *, header *')) {
      const r = el.getBoundingClientRect();
      if (r.right > W + 1 && ![...el.children].some(c => c.getBoundingClientRect().right > W + 1) && !el.closest('.table-wrap')) {
        found.wide.push(el.tagName + '.' + el.className + ' "' + (el.innerText || '').slice(0, 30) + '" ' + Math.round(r.right));
      }
      if (found.wide.length >= 3) break;
    }
  }
  for (const table of document.querySelectorAll('main table')) {
    if (table.offsetParent === null) continue;
    const box = table.closest('.table-wrap');
    const scrolls = !!box && box.scrollWidth > box.clientWidth + 1;
    const hint = box && box.previousElementSibling;
    const hinted = scrolls && box.classList.contains('scrolls') && !!hint && hint.classList.contains('scroll-hint')
                   && hint.offsetParent !== null && hint.getBoundingClientRect().height > 0;
    const keys = [...table.querySelectorAll('td.num, th.num, td button, td input, td select, td a[role=button]')];
    const out = keys.filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && (r.right > W + 1 || r.left < -1); });
    if (out.length && !hinted) {
      found.tables.push({head: (table.querySelector('th, td') || {}).innerText, out: out.length, scrolls, inBox: !!box});
    }
    for (const th of table.querySelectorAll('th')) {
      const text = th.innerText.trim();
      if (text && text.length <= 8 && th.getBoundingClientRect().height > 4.5 * parseFloat(getComputedStyle(th).lineHeight || 20)) {
        found.squeezed.push(text);
      }
    }
  }
  return found;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """The demo village in an SQLite database of its own, served on a free port."""
    from flask_migrate import upgrade

    folder = tmp_path_factory.mktemp("walk")
    port = _free_port()
    app = create_app({"INSTANCE_PATH": folder, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'shop.sqlite3'}",
                      "ENVIRON": {"SECRET_KEY": "walk"}, "WTF_CSRF_SSL_STRICT": False,
                      "SERVER_NAME": f"127.0.0.1:{port}"})
    with app.app_context():
        upgrade()
        unit_of_work.run(demo.load)
        values = {role: _values(role) for role in (None, *USERNAMES)}
        db.session.remove()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per asset of every page says nothing here
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}", values
    server.shutdown()
    thread.join(timeout=10)


def _values(role: str | None) -> dict:
    """URL arguments for a role: its own objects where a role sees only its own, the demo's telling ones else —
    a weighed lot and grower, an order with several suppliers, a company's statement month."""
    from shop.accounts.models import ApiToken, Organization, User
    from shop.catalog.models import PickupPoint, Product
    from shop.contracts.models import Contract
    from shop.inventory.models import Lot
    from shop.notifications.models import Notification
    from shop.orders.models import Order
    from shop.points.models import Permit, PointOperator, PointSale, SalesPoint
    from shop.producers.models import Enterprise, Household, HouseholdCard, Pairing

    s = db.session
    user = s.scalar(select(User).where(User.username == USERNAMES[role])) if role else None
    jinlv = s.scalar(select(Organization).where(Organization.name == "劲旅环卫"))
    orders = select(Order.id).order_by(Order.id.desc())
    if role in ("staff", "company"):
        orders = orders.where(Order.buyer_id == user.id)
    else:
        orders = orders.where(Order.channel == "retail")
    weighed = s.scalar(select(Product).where(Product.quantity_decimals == 1))
    point_lot = s.scalar(select(Lot).where(Lot.sales_point_id.is_not(None)).order_by(Lot.id))
    lot = s.scalar(select(Lot).where(Lot.intake_id.is_not(None)).order_by(Lot.id.desc()))
    point = s.scalar(select(SalesPoint).join(PointOperator).join(User).where(User.username == "op01")
                     .order_by(SalesPoint.id))
    contract = s.scalar(select(Contract).where(Contract.organization_id == jinlv.id).order_by(Contract.id))
    grower = s.scalar(select(Household).where(Household.id == point_lot.household_id)) if point_lot else None
    token = s.scalar(select(ApiToken.id).where(ApiToken.user_id == user.id)) if user else None
    return {
        "user_id": s.scalar(select(User.id).where(User.username == "staff01")),
        "household_id": grower.id if grower else 1, "enterprise_id": s.scalar(select(Enterprise.id)),
        "pairing_id": s.scalar(select(Pairing.id)), "product_id": weighed.id if weighed else 1,
        "catalog_product_id": s.scalar(select(Product.id).where(Product.name == "散养土鸡蛋")),
        "sales_point_id": point.id if point else 1, "pickup_point_id": s.scalar(select(PickupPoint.id)),
        "lot_id": point_lot.id if point_lot else lot.id, "intake_id": lot.intake_id, "kind": "household",
        "supplier_id": grower.id if grower else 1, "lot_token": lot.token,
        "card_token": s.scalar(select(HouseholdCard.token).where(HouseholdCard.revoked_at.is_(None))),
        "permit_token": s.scalar(select(Permit.token)), "order_id": s.scalar(orders) or 1,
        "contract_id": contract.id, "backorder_id": 1, "organization_id": user.organization_id
        if role == "company" else jinlv.id, "month": None, "fmt": "csv", "token_id": token or 1,
        "filename": "swagger-ui.css", "notification_id": s.scalar(
            select(Notification.id).where(Notification.user_id == user.id)) if user else 1,
        "permit_id": s.scalar(select(Permit.id).where(Permit.sales_point_id == point.id)) if point else 1,
        "sale_id": s.scalar(select(PointSale.id)) or 1, "name": "households", "code": "en",
    }


def _url(app, endpoint: str, values: dict) -> str | None:
    from flask import url_for

    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    if "GET" not in rule.methods or endpoint in NOT_PAGES or endpoint.startswith(("api_", "api-docs")):
        return None
    pick = dict(values)
    if endpoint.startswith("catalog."):
        pick["product_id"] = values["catalog_product_id"]
    pick["point_id"] = values["sales_point_id"] if endpoint.startswith("points.") else values["pickup_point_id"]
    pick["token"] = {"inventory.trace": values["lot_token"], "producers.household_card_page": values["card_token"],
                     "points.permit_check": values["permit_token"]}.get(endpoint, values["lot_token"])
    if endpoint == "contracts.statement":
        pick["month"] = _statement_month(pick["organization_id"])
    if endpoint == "welfare.statement":  # the demo's Spring Festival grant is partly spent this month
        from shop import clock

        pick["month"] = clock.month_of(clock.today())
    with app.test_request_context():
        return url_for(endpoint, **{name: pick[name] for name in rule.arguments})


def _statement_month(organization_id: int) -> str:
    from shop.accounts.models import Organization
    from shop.contracts import services as contracts

    statements = contracts.statements(db.session.get(Organization, organization_id))
    return statements[-1].month if statements else "2000-01"


def _pages(app, role: str | None, values: dict) -> list[tuple[str, str]]:
    pages = []
    with app.app_context():
        for endpoint in sorted(ROUTES):
            rule = ROUTES[endpoint]
            if role is None and rule != "public":
                continue
            if role is not None and not allowed(endpoint, role):
                continue
            url = _url(app, endpoint, values)
            if url:
                pages.append((endpoint, url))
    return pages


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("role", [None, "staff", "company", "manager", "admin", "operator", "coordinator"])
def test_every_page_fits_the_screen_for_every_role(demo_site, browser, role, viewport, artifacts_dir):  # noqa: F811
    app, base, values = demo_site
    size = PHONE if viewport == "phone" else DESKTOP
    context = browser.new_context(viewport=size, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text
            else None)
    page.on("dialog", lambda dialog: dialog.accept())
    if role:
        page.goto(base + "/login")
        page.fill("#username", USERNAMES[role])
        page.fill("#password", demo.DEMO_PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_load_state()
    problems = []
    with app.app_context():
        pages = _pages(app, role, values[role])
    for endpoint, url in pages:
        response = page.goto(base + url)
        status = response.status if response else 0
        if status >= 500:
            problems.append(f"{endpoint}: HTTP {status}")
            continue
        found = page.evaluate(CHECK)
        if found["overflow"] > 1:
            problems.append(f"{endpoint} ({url}): the page scrolls sideways by {found['overflow']} px: {found['wide']}")
        for table in found["tables"]:
            problems.append(f"{endpoint} ({url}): a table's key columns are out of view without a scroll hint: {table}")
        if found["squeezed"]:
            problems.append(f"{endpoint} ({url}): squeezed headings {found['squeezed'][:5]}")
        if errors:
            problems.append(f"{endpoint}: script errors {errors[:3]}")
            errors.clear()
    context.close()
    assert problems == [], "\n".join(problems)


IN_VIEW = """(selector) => [...document.querySelectorAll(selector)].filter(el => el.offsetParent !== null)
  .map(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.left >= -1 && r.right <= window.innerWidth + 1; })"""


def test_the_work_done_on_a_phone_keeps_its_key_columns_in_view(demo_site, browser):  # noqa: F811
    """Not merely scrollable: the pick list's quantities and order counts, the bulk order's quantity boxes and the
    refund form's boxes are on screen at 390 px, and the manager's eight counters take less than a screen."""
    app, base, values = demo_site
    seen = {}
    for role, path, selector in (
            ("manager", "/manage/orders/picklist", "table.picklist td.num"),
            ("company", "/company/bulk", "input[name^=qty-]"),
            ("manager", f"/manage/orders/{values['manager']['order_id']}/refund", "input[name^=qty-]")):
        context = browser.new_context(viewport=PHONE, locale="zh-CN")
        page = context.new_page()
        page.goto(base + "/login")
        page.fill("#username", USERNAMES[role])
        page.fill("#password", demo.DEMO_PASSWORD)
        page.click("main form button[type=submit]")
        page.goto(base + path)
        seen[path] = page.evaluate(IN_VIEW, selector)
        if role == "manager" and path.endswith("picklist"):
            page.goto(base + "/manage/today")
            box = page.locator("#today-counters").bounding_box()
            assert box["height"] < PHONE["height"] * 0.6 and page.locator("#today-counters > *").count() == 8
        context.close()
    for path, flags in seen.items():
        assert flags and all(flags), (path, flags)

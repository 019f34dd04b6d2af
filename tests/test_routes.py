"""Every route against every role, generated from the app's URL map."""
import pytest
from werkzeug.routing import BuildError

from shop import create_app
from tests.routes_table import ROLES, ROUTES, allowed

USERNAMES = {"staff": "staff01", "company": "buyer-jinlv", "manager": "manager", "admin": "admin", "operator": "op01",
             "coordinator": "coordinator"}


def _endpoints():
    app = create_app({"ENVIRON": {"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"}})
    return sorted({r.endpoint for r in app.url_map.iter_rules() if r.endpoint != "static"})


ENDPOINTS = _endpoints()


def test_every_route_declares_a_rule_matching_the_table(app):
    declared = {}
    for endpoint in ENDPOINTS:
        rule = getattr(app.view_functions[endpoint], "access_rule", None)
        assert rule is not None, f"{endpoint} has no @allow(...) rule"
        declared[endpoint] = rule
    missing = set(ENDPOINTS) - set(ROUTES)
    assert not missing, f"routes missing from tests/routes_table.py: {sorted(missing)}"
    stale = set(ROUTES) - set(ENDPOINTS)
    assert not stale, f"routes in the table that no longer exist: {sorted(stale)}"
    for endpoint, rule in declared.items():
        expected = ROUTES[endpoint]
        expected = {expected} if isinstance(expected, str) else expected
        assert set(rule) == set(expected), f"{endpoint}: code says {sorted(rule)}, table says {sorted(expected)}"


def _url_for(app, world, endpoint):
    from flask import url_for

    values = {
        "user_id": world.staff.id, "household_id": world.h1.id, "enterprise_id": world.enterprise.id,
        "pairing_id": world.pairing.id, "product_id": world.eggs.id,
        "point_id": world.sales_point.id if "point" in endpoint.split(".")[0] else world.point.id,
        "name": "0" * 32 + ".png", "code": "en", "lot_id": world.lot.id, "intake_id": world.lot.intake_id,
        "kind": "household", "supplier_id": world.h1.id, "token": world.lot.token, "order_id": world.order.id,
        "contract_id": world.contract.id, "backorder_id": 1, "organization_id": world.jinlv.id, "month": "2023-09",
        "fmt": "csv", "token_id": 1, "filename": "swagger-ui.css", "notification_id": 1,
        "permit_id": world.permit.id, "sale_id": 1, "refund_id": 1,
    }
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    values["name"] = "households" if endpoint == "reports.export" else values["name"]
    args = {k: values[k] for k in rule.arguments}
    try:
        return url_for(endpoint, **args), rule.methods
    except BuildError as exc:  # pragma: no cover - a new argument name needs a value above
        pytest.fail(f"no test value for {endpoint}: {exc}")


@pytest.fixture
def contract(world):
    from shop.contracts import services

    world.contract = services.save_contract(None, services.ContractData(
        number="JL-1", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=10, first_month="2023-01", last_month="2023-12", cap_fen=100_000, delivery_address="站",
        delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    from shop.extensions import db

    db.session.commit()
    return world.contract


@pytest.fixture
def sales_point(world):
    """A sales point run by op01, with one grower and a permit."""
    from datetime import timedelta

    from shop import clock
    from shop.extensions import db
    from shop.points import services as points
    from tests import factories

    operator = factories.user("op01", "operator")
    today = clock.today()
    world.sales_point = points.save_point(None, points.PointData(
        code="XG01", name="一号点", address="广场", first_day=today, last_day=today + timedelta(days=9)), user_id=None)
    points.assign_operator(world.sales_point, operator.id)
    points.add_grower(world.sales_point, household_id=world.h1.id)
    world.permit = points.issue_permit(world.sales_point, household_id=world.h1.id, issued_by="县市场监督管理局",
                                       valid_from=today, valid_to=today, user_id=None)
    db.session.commit()
    return world.sales_point


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_route_against_every_role(app, world, pending_order, contract, sales_point, endpoint):
    """Refused roles go first: nothing they try may change anything, so one world serves every role."""
    url, methods = _url_for(app, world, endpoint)
    method = "GET" if "GET" in methods else "POST"
    roles = sorted([None, *ROLES], key=lambda role: allowed(endpoint, role))
    api = endpoint.startswith("api_") and endpoint != "api_docs_asset"
    tokens = _api_tokens(world) if api else {}
    for role in roles:
        client = app.test_client()
        headers = {}
        if role and api:
            headers["Authorization"] = f"Bearer {tokens[role]}"  # the API reads no session, only its token
        elif role:
            client.login(USERNAMES[role])
        if api:
            response = client.open(url, method=method, json={} if method == "POST" else None, headers=headers)
        else:
            response = client.open(url, method=method, data={} if method == "POST" else None)
        if api and role is None:
            assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized", endpoint
            continue
        if allowed(endpoint, role):
            assert response.status_code not in (401, 403), f"{role} should reach {endpoint}"
            assert "/login" not in response.headers.get("Location", "") or endpoint == "accounts.logout"
            assert response.status_code < 500, f"{endpoint} as {role}: {response.status_code}"
        elif role is None:
            assert response.status_code == 302 and "/login" in response.headers["Location"], endpoint
        else:
            assert response.status_code == 403, f"{role} must be refused {endpoint}, got {response.status_code}"


def _api_tokens(world) -> dict[str, str]:
    from shop.accounts.models import User
    from shop.accounts.services import create_api_token
    from shop.extensions import db
    from sqlalchemy import select

    tokens = {}
    for role, username in USERNAMES.items():
        user = db.session.scalar(select(User).where(User.username == username))
        tokens[role] = create_api_token(user, "route test")[1]
    db.session.commit()
    return tokens


def test_route_without_rule_is_refused(app):
    """Deny by default: a view nobody declared a rule for answers 403, even to an admin."""
    from flask import Blueprint

    bp = Blueprint("undeclared", __name__)
    bp.add_url_rule("/undeclared", "page", lambda: "secret")
    fresh = create_app({"ENVIRON": {"SECRET_KEY": "x"}, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                        "INSTANCE_PATH": app.instance_path, "TESTING": True})
    fresh.register_blueprint(bp)
    assert fresh.test_client().get("/undeclared").status_code == 403

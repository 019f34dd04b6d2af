"""A supporting unit's coordinator sees their unit's target, staff, buying and pairings — and no other unit's."""
from __future__ import annotations

import pytest
from shop.producers.models import Pairing
from sqlalchemy import func, select

from shop.extensions import db
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean


@pytest.fixture
def units(world):
    """Two paid orders by the bureau's staff, one by another unit's; the county set the bureau's target."""
    from shop import clock
    from shop.payments import services as payments
    from shop.producers import services as producers
    from shop.reports import figures
    from tests import factories

    other = factories.organization("县YY委", "government")
    world.outsider = factories.user("staff-yy", "staff", other, "欧阳委员")
    producers.set_supported_villages(other.id, {world.village.id})
    producers.pair(world.outsider, world.h3)
    for buyer, eggs in ((world.staff, 10), (world.staff2, 5), (world.outsider, 12)):
        order = factories.order(buyer, world.point, (world.eggs, eggs))
        payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
    figures.set_target(world.bureau, clock.today().year, 6000)
    db.session.commit()
    return other


def test_the_unit_page_shows_its_target_staff_and_sentences(app, world, units):
    client = app.test_client()
    client.login("coordinator")
    response = client.get("/unit")
    page = text_of(response)
    assert response.status_code == 200
    assert "县XX局" in page and "¥18.00" in page and "30%" in page  # 15 eggs × ¥1.20 of a ¥60.00 target
    assert "2 / 2" in page                                              # both staff bought
    assert "康本树" in page and "王秀英" in page and "欧阳委员" not in page
    assert "全年直接消费帮扶采购共计18.00元，其中职工消费18.00元。" in page
    assert "¥14.40" not in page  # the other unit's order is not the bureau's


def test_a_coordinator_reads_their_own_staff_only(app, world, units):
    client = app.test_client()
    client.login("coordinator")
    page = text_of(client.get(f"/unit/staff/{world.staff.id}"))
    assert "康本树" in page and "李**" in page and "李建国" not in page  # the paired household, masked
    assert client.get(f"/unit/staff/{world.outsider.id}").status_code == 404
    assert client.get(f"/unit/staff/{world.manager.id}").status_code == 404


def test_the_unit_export_lists_its_staff_and_is_audited(app, world, units):
    from shop.audit.models import AuditEvent

    client = app.test_client()
    client.login("coordinator")
    csv = client.post("/unit/export.csv", data={}).get_data(as_text=True).replace("\r", "")
    assert "staff01,康本树,1,1,12.00" in csv and "staff02,王秀英,0,1,6.00" in csv and "欧阳" not in csv
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.object_type == "unit")) == 1
    assert client.post("/unit/export.pdf", data={}).status_code == 404


def test_a_coordinator_belongs_to_a_unit(app, world):
    from shop.accounts import services as accounts
    from shop.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="单位协调员必须属于一个单位"):
        accounts.create_user(username="c2", display_name="c2", role="coordinator", password="a-good-password",
                             organization=None)


def test_a_coordinator_reaches_nothing_of_another_unit(app, world, units):
    """Every route a coordinator may use, with another unit's staff and orders: not found, never shown."""
    from flask import url_for

    from tests.routes_table import ROUTES, allowed

    client = app.test_client()
    client.login("coordinator")
    outsider_order = db.session.scalar(select(func.max(db.metadata.tables["shop_order"].c.id)))
    values = {"user_id": world.outsider.id, "order_id": outsider_order, "code": "en", "token_id": 1,
              "notification_id": 1, "filename": "swagger-ui.css", "product_id": world.eggs.id, "fmt": "csv",
              "name": "x.png", "lot_id": world.lot.id, "token": world.lot.token,
              "organization_id": units.id, "month": "2026-01",
              "pairing_id": db.session.scalar(select(Pairing.id).where(Pairing.user_id == world.outsider.id))}
    for endpoint in sorted(e for e in ROUTES if allowed(e, "coordinator") and ROUTES[e] != "public"
                           and e not in ("accounts.logout", "accounts.token_revoke")):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        with app.test_request_context():
            url = url_for(endpoint, **{k: values[k] for k in rule.arguments})
        method = "GET" if "GET" in rule.methods else "POST"
        response = client.open(url, method=method, data={} if method == "POST" else None)
        assert response.status_code < 500, endpoint
        if {"user_id", "pairing_id", "order_id", "organization_id"} & set(rule.arguments) and \
                not endpoint.startswith("api"):  # the API answers a session without a token 401
            assert response.status_code == 404, endpoint
        assert "欧阳委员" not in _text(response), endpoint


def _text(response) -> str:
    """What a response shows: its text, or every cell of a spreadsheet."""
    if response.mimetype.endswith("spreadsheetml.sheet"):
        import io

        import openpyxl

        book = openpyxl.load_workbook(io.BytesIO(response.data))
        return " ".join(str(cell) for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row)
    return response.get_data(as_text=True)


def test_the_coordinator_buys_in_bulk_for_the_unit_and_it_counts_toward_the_target(app, client, world, units):
    """The unit itself buys (its canteen, its holiday gifts): the coordinator orders in bulk on account, the point
    confirms and delivers, the coordinator accepts — the unit's progress and what it owes grow by exactly that,
    and the coordinator still cannot act on a staff member's own order."""
    from shop.contracts import services as contracts
    from shop.orders.models import Order
    from tests import factories

    factories.receive(world.h1, world.manager, (world.eggs, 20))
    db.session.commit()
    staff_order = db.session.scalars(select(Order).where(Order.buyer_id == world.staff.id)).first()
    client.login("coordinator")
    before = text_of(client.get("/unit"))
    assert "¥18.00" in before  # 15 eggs of the unit's staff at ¥1.20
    client.post("/company/bulk", data={f"qty-{world.eggs.id}": "10"})
    order = db.session.scalars(select(Order).where(Order.channel == "bulk")).one()
    assert (order.organization_id, order.status, order.total_fen) == (world.bureau.id, "requested", 1200)
    contracts.confirm_bulk_order(order, user_id=world.manager.id)
    contracts.deliver(order, user_id=world.manager.id)
    db.session.commit()
    assert order.number in text_of(client.get("/company"))  # awaiting its acceptance
    client.post(f"/company/orders/{order.id}/accept", data={f"accepted-{order.lines[0].id}": "10"})
    db.session.refresh(order)
    assert order.status == "accepted" and order.is_paid
    after = text_of(client.get("/unit"))
    assert "¥30.00" in after and "50%" in after  # ¥30 of the ¥60 target
    assert "应付款 ¥12.00" in text_of(client.get("/company"))
    assert order.number in text_of(client.get("/orders"))
    # a staff member's own order is theirs alone
    assert client.get(f"/orders/{staff_order.id}").status_code == 404
    assert client.get(f"/company/orders/{staff_order.id}/accept").status_code == 404
    assert staff_order.number not in text_of(client.get("/orders"))
    client.logout()
    client.login("admin")
    assert world.bureau.name in text_of(client.get("/admin/companies"))  # its receivable, to settle
    assert_books_clean(app)

"""Every change of money, stock, prices, roles and pairings, every login and every export is audited."""
from sqlalchemy import select

from shop.audit.models import AuditEvent
from shop.extensions import db
from tests.conftest import text_of
from tests.factories import PASSWORD


def actions() -> list[str]:
    return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_the_shop_s_changes_are_audited_with_who_and_what(client, world):
    client.post("/login", data={"username": "manager", "password": "wrong-password"})
    client.login("manager")
    client.post(f"/manage/intake/household/{world.h2.id}", data={
        "rows-0-product_id": str(world.eggs.id), "rows-0-quantity": "12", "rows-0-best_before": "", "note": ""})
    client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "damaged", "quantity": "2", "note": ""})
    client.post(f"/manage/products/{world.eggs.id}/edit", data={
        "name": "散养土鸡蛋", "category": "eggs", "unit": "枚", "price": "1.30", "description": "", "active": "y",
        "season_start_month": "", "season_end_month": ""})
    client.logout()
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "3"})
    client.post("/checkout", data={"handover": "pickup", "payment_method": "offline", "pickup_point_id": str(world.point.id)})
    client.logout()
    client.login("manager")
    from shop.orders.models import Order

    order = db.session.scalars(select(Order)).one()
    client.post(f"/manage/orders/{order.id}/offline-payment", data={"reference": "R-77"})
    client.post(f"/manage/ledger/household/{world.h1.id}/payouts", data={"amount": "1.00", "method": "cash",
                                                                          "reference": "P-1"})
    client.logout()
    client.login("admin")
    client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "XXC002"})
    client.post(f"/admin/users/{world.staff2.id}/edit", data={"display_name": "王秀英", "role": "staff",
                                                              "organization_id": str(world.bureau.id)})
    client.post("/admin/report/export/households.csv", data={})
    logged = actions()
    for action in ("login.failed", "login", "stock.intake", "stock.adjust", "product.price", "payment", "payout",
                   "pairing.create", "user.role", "export"):
        assert action in logged, action
    payment = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "payment"))
    assert payment.user.username == "manager" and payment.object_type == "shop_order" and "R-77" in payment.detail
    page = text_of(client.get("/admin/audit?user=manager"))
    assert "stock.adjust" in page and "pairing.create" not in page
    assert "product.price" in text_of(client.get(f"/admin/audit?object=product&id={world.eggs.id}"))


def test_a_refused_change_leaves_no_audit_entry(client, world):
    client.login("manager")
    before = len(actions())
    response = client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "damaged", "quantity": "999"})
    assert response.status_code == 422
    assert len(actions()) == before


def test_the_audit_log_is_append_only(client, world):
    import pytest

    client.post("/login", data={"username": "staff01", "password": PASSWORD})
    event = db.session.scalars(select(AuditEvent)).first()
    event.detail = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()

"""A summer season at one sales point: a weighed melon, a point open today, its operator, two growers with
permits and melons brought to the point."""
from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

from shop import clock
from shop.extensions import db
from shop.points import services as points
from tests import factories


def season(world, *, stock_tenths: int = 1000) -> SimpleNamespace:
    today = clock.today()
    s = SimpleNamespace(world=world)
    s.melon = factories.product("沙瓤西瓜（称重）", "watermelons", "斤", 150)
    s.melon.quantity_decimals = 1
    s.operator = factories.user("op01", "operator", None, "赵大姐")
    s.point = points.save_point(None, points.PointData(
        code="XG01", name="人民广场西瓜临时销售点", address="人民广场东侧", first_day=today - timedelta(days=30),
        last_day=today + timedelta(days=30)), user_id=world.admin.id)
    points.assign_operator(s.point, s.operator.id, by=world.manager.id)
    for household in (world.h1, world.h2):
        points.add_grower(s.point, household_id=household.id, qr_note="微信收款码", user_id=world.manager.id)
        points.issue_permit(s.point, household_id=household.id, issued_by="县市场监督管理局",
                            valid_from=today - timedelta(days=30), valid_to=today + timedelta(days=30),
                            user_id=world.manager.id)
    s.lot = points.record_arrival(s.point, household_id=world.h1.id, product_id=s.melon.id, quantity=stock_tenths,
                                  user_id=s.operator.id)
    s.device = points.register_device(s.point, s.operator)
    db.session.commit()
    s.seq = 0
    return s


def sale(s, tenths: int, *, price: int = 150, household=None, payment="cash", at=None, seq=None, device=None) -> dict:
    """A sale as the phone sends it."""
    if seq is None:
        s.seq += 1
        seq = s.seq
    household = household or s.world.h1
    return {"id": str(uuid.uuid4()), "receipt": f"XG01-{device or s.device.code}-{seq:04d}", "point_id": s.point.id,
            "household_id": household.id, "enterprise_id": None, "product_id": s.melon.id, "quantity": tenths,
            "unit_price_fen": price, "amount_fen": points.value_fen(tenths, price, 10), "payment": payment,
            "sold_at": (at or clock.now()).isoformat() + "Z"}


def send(client, s, *sales):
    """POST a batch to the web sync endpoint the way sell.js does (JSON, CSRF header)."""
    return client.post(f"/op/points/{s.point.id}/sync", json={"sales": list(sales)},
                       headers={"X-CSRFToken": client.csrf_token()})

"""Builders for test data, going through the real services where a rule applies."""
from __future__ import annotations

from types import SimpleNamespace

from shop.accounts import services as accounts
from shop.accounts.models import Organization
from shop.catalog.models import PickupPoint, Product
from shop.extensions import db
from sqlalchemy import func, select
from shop.producers import services as producers
from shop.producers.models import Enterprise, Village

PASSWORD = "correct-horse-battery"


def organization(name: str, kind: str) -> Organization:
    return accounts.create_organization(name, kind)


def user(username: str, role: str, org: Organization | None = None, name: str | None = None):
    return accounts.create_user(username=username, display_name=name or username, role=role,
                                password=PASSWORD, organization=org)


def household(village: Village, code: str, name: str = "康本树", status: str = "alleviated", members: int = 3,
              phone: str | None = "13812341234", risk: bool | None = None):
    return producers.create_household(producers.HouseholdData(
        code=code, head_name=name, members=members, status=status,
        risk_eliminated=risk if status == "monitored" else None, phone=phone, village_id=village.id))


def product(name: str, category: str = "eggs", unit: str = "枚", price_fen: int = 120, active: bool = True,
            season: tuple[int, int] | None = None, village: Village | None = None) -> Product:
    """A product of the given village's point (by default the first village's)."""
    village_id = village.id if village is not None else db.session.scalar(select(func.min(Village.id)))
    item = Product(village_id=village_id, name=name, category=category, unit=unit, price_fen=price_fen, active=active,
                   season_start_month=season[0] if season else None, season_end_month=season[1] if season else None)
    db.session.add(item)
    db.session.flush()
    return item


def world() -> SimpleNamespace:
    bureau = organization("县XX局", "government")
    jinlv = organization("劲旅环卫", "company")
    yonghao = organization("永昊环卫", "company")
    village = producers.create_village("XX村", "XX镇")
    producers.set_supported_villages(bureau.id, {village.id})
    w = SimpleNamespace(bureau=bureau, jinlv=jinlv, yonghao=yonghao, village=village)
    w.admin = user("admin", "admin", bureau, "协调员")
    w.manager = user("manager", "manager", None, "服务点管理员")
    producers.set_managed_villages(w.manager.id, {village.id})
    w.staff = user("staff01", "staff", bureau, "康本树")
    w.staff2 = user("staff02", "staff", bureau, "王秀英")
    w.coordinator = user("coordinator", "coordinator", bureau, "局工会协调员")
    w.buyer = user("buyer-jinlv", "company", jinlv, "劲旅采购")
    w.buyer2 = user("buyer-yonghao", "company", yonghao, "永昊采购")
    w.h1 = household(village, "XXC001", "李建国", phone="13812341234")
    w.h2 = household(village, "XXC002", "张秀英", status="monitored", members=2, phone=None, risk=False)
    w.h3 = household(village, "XXC003", "刘德明", status="ordinary", members=4, phone="13900001111")
    w.pairing = producers.pair(w.staff, w.h1)
    w.enterprise = Enterprise(name="XX县XX种植专业合作社", kind="cooperative", village=village)
    db.session.add(w.enterprise)
    w.eggs = product("散养土鸡蛋", "eggs", "枚", 120)
    w.peanuts = product("花生米", "peanuts", "斤", 900)
    w.brooms = product("环卫扫帚", "brooms", "把", 850)
    w.melon = product("沙地西瓜", "watermelons", "斤", 120, season=(6, 8))
    w.retired = product("旧商品", "other", "个", 100, active=False)
    w.point = PickupPoint(village_id=village.id, name="村电商服务点", address="XX村村委会东侧", active=True)
    w.melon_point = PickupPoint(village_id=village.id, name="西瓜临时销售点01", address="人民广场", active=True,
                                season_start_month=6, season_end_month=8)
    db.session.add_all([w.point, w.melon_point])
    db.session.flush()
    w.lot = receive(w.h1, w.manager, (w.eggs, 30)).lots[0]
    db.session.commit()
    return w


def order(user, point, *items, payment_method="offline", at=None):
    """A placed order (through the real service), committed."""
    from shop.orders import services as orders

    placed = orders.place_order(user, payment_method=payment_method, pickup_point_id=point.id,
                                lines=[(product.id, quantity) for product, quantity in items], at=at)
    db.session.commit()
    return placed


def receive(supplier, manager, *items, best_before=None, received_at=None):
    """An intake visit: items are (product, quantity) or (product, quantity, best_before)."""
    from shop.inventory import services as inventory
    from shop.producers.models import Household

    key = {"household_id": supplier.id} if isinstance(supplier, Household) else {"enterprise_id": supplier.id}
    return inventory.receive(items=[inventory.IntakeItem(i[0].id, i[1], i[2] if len(i) > 2 else best_before)
                                    for i in items], user_id=manager.id, received_at=received_at, **key)

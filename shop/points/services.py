"""Seasonal sales point rules: points and their growers, operators and permits; the goods a grower brings; a sale
recorded on the operator's phone (exactly once, filled from the grower's lot or kept and flagged); the day's cash
count; and the invariants `verify` checks.

The money: a sale's amount is its weight × the price per 斤, rounded half-up to the fen (`value_fen`, the rule
printed on the receipt). Paid in cash, it debits the platform's `point_cash` (the operators' till) and credits the
grower, who is owed it and paid out as usual; paid to the grower's own payment code, it debits `grower_direct`
and is settled at once (a payout of the method grower_qr), so the grower's income is recorded and nothing is
owed. A sales point's sales carry no service fee. Closing a point's day moves the cash sales posted for it from
`point_cash` to the service point's `cash_on_hand` at the counted amount, the difference to `cash_difference`;
a sale posted after its day was closed (sent late, or a flagged sale resolved) debits `cash_difference`, whose
surplus the count already held.

Services flush, never commit: the caller owns the unit of work (one sale, one unit).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import and_, case, func, or_, select

from .. import clock, edge
from ..accounts.models import User
from ..audit.services import record as audit
from ..catalog.models import Product
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import format_fen, format_quantity, mask_name
from ..inventory import services as inventory
from ..inventory.models import Lot
from ..ledger import services as ledger
from ..models_base import COUNTY_WIDE, MAX_FEN, value_fen
from ..orders import services as orders
from ..orders.models import Order
from ..payments import services as payments
from ..producers import services as producers
from ..producers.models import Enterprise, Household
from ..sqlwrite import insert_ignoring_conflicts, lock_row
from .models import PAYMENT_WAYS, Permit, PointDay, PointDevice, PointGrower, PointOperator, PointSale, SalesPoint

MAX_BATCH = 200               # sales in one sync request
LATE_DAYS = 62                # a sale older than this (a phone's clock gone wrong) is refused
CLOCK_SKEW = timedelta(minutes=10)
CODE = re.compile(r"^[A-Z0-9]{2,8}$")
RECEIPT = re.compile(r"^[A-Z0-9]{2,8}-[A-Z0-9]{1,4}-[0-9]{1,6}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class AlreadyClosed(Conflict):
    code = "day_closed"


class SaleDiffers(Conflict):
    code = "sale_differs"


# --- who runs which point -----------------------------------------------------------------------------------

def operated_by(user: User) -> list[SalesPoint]:
    """The points a user may sell at: an operator's own, every point for the back office."""
    query = select(SalesPoint).order_by(SalesPoint.first_day.desc(), SalesPoint.code)
    if user.role == "operator":
        query = query.where(SalesPoint.id.in_(select(PointOperator.sales_point_id)
                                              .where(PointOperator.user_id == user.id)))
    elif user.role not in ("manager", "admin"):
        return []
    return list(db.session.scalars(query))


def may_operate(user: User, point: SalesPoint) -> bool:
    if user.role in ("manager", "admin"):
        return True
    return user.role == "operator" and db.session.scalar(
        select(PointOperator.id).where(PointOperator.sales_point_id == point.id,
                                       PointOperator.user_id == user.id)) is not None


def operator_may_see(user: User, order_id: int) -> bool:
    """An operator sees the receipts of the sales made at their own points."""
    return user.role == "operator" and db.session.scalar(
        select(PointSale.id).join(PointOperator, PointOperator.sales_point_id == PointSale.sales_point_id)
        .where(PointSale.order_id == order_id, PointOperator.user_id == user.id).limit(1)) is not None


def all_points() -> list[SalesPoint]:
    return list(db.session.scalars(select(SalesPoint).order_by(SalesPoint.first_day.desc(), SalesPoint.code)))


# --- managing points ----------------------------------------------------------------------------------------

@dataclass
class PointData:
    code: str
    name: str
    address: str
    first_day: date | None
    last_day: date | None
    map_url: str | None = None
    opens_at: time | None = None
    closes_at: time | None = None
    active: bool = True
    village_id: int | None = None  # the service point that runs it; None: the user's only village


def save_point(point: SalesPoint | None, data: PointData, *, user_id: int | None) -> SalesPoint:
    code, name, address = (data.code or "").strip().upper(), (data.name or "").strip(), (data.address or "").strip()
    map_url = (data.map_url or "").strip() or None
    village_id = data.village_id
    if village_id is None:
        village_id = point.village_id if point is not None else producers.only_village()
    problems: dict[str, str] = producers.check_village(village_id)
    if not CODE.match(code):
        problems["code"] = _("编号为 2–8 位大写字母或数字（印在收据号开头），如 XG01。")
    if not name:
        problems["name"] = _("请填写销售点名称。")
    if not address:
        problems["address"] = _("请填写地址。")
    if map_url and not map_url.startswith(("https://", "http://")):
        problems["map_url"] = _("地图链接应以 https:// 开头。")
    if data.first_day is None or data.last_day is None:
        problems["first_day"] = _("请填写销售季的第一天和最后一天。")
    elif data.last_day < data.first_day:
        problems["last_day"] = _("最后一天不能早于第一天。")
    if (data.opens_at is None) != (data.closes_at is None) or (data.opens_at and data.opens_at >= data.closes_at):
        problems["closes_at"] = _("请同时填写开门和收摊时间，收摊晚于开门。")
    for column, value in (("code", code), ("name", name)):
        clash = db.session.scalar(select(SalesPoint.id).where(getattr(SalesPoint, column) == value),
                                  execution_options=COUNTY_WIDE)  # receipt numbers are the county's
        if clash is not None and (point is None or clash != point.id):
            problems[column] = _("已有同名或同编号的销售点。")
    if problems:
        raise ValidationFailed(_("请检查标出的内容。"), fields=problems)
    if point is None:
        point = SalesPoint()
        db.session.add(point)
    point.village_id, point.code, point.name, point.address, point.map_url = village_id, code, name, address, map_url
    point.first_day, point.last_day, point.opens_at, point.closes_at = (data.first_day, data.last_day,
                                                                        data.opens_at, data.closes_at)
    point.active = data.active
    db.session.flush()
    audit("point.save", point, f"{code} {name}", user_id=user_id)
    return point


def _supplier(household_id: int | None, enterprise_id: int | None) -> Household | Enterprise:
    if (household_id is None) == (enterprise_id is None):
        raise ValidationFailed.on("grower", _("请选择一个农户或村企。"))
    found = db.session.get(Household, household_id) if household_id else db.session.get(Enterprise, enterprise_id)
    if found is None:
        raise ValidationFailed.on("grower", _("未知的农户或村企。"))
    return found


def _supplier_filter(model, household_id: int | None, enterprise_id: int | None):
    return model.household_id == household_id if household_id else model.enterprise_id == enterprise_id


def add_grower(point: SalesPoint, *, household_id: int | None = None, enterprise_id: int | None = None,
               qr_note: str | None = None, user_id: int | None = None) -> PointGrower:
    _supplier(household_id, enterprise_id)
    grower = db.session.scalar(select(PointGrower).where(PointGrower.sales_point_id == point.id,
                                                         _supplier_filter(PointGrower, household_id, enterprise_id)))
    if grower is None:
        grower = PointGrower(sales_point_id=point.id, household_id=household_id, enterprise_id=enterprise_id)
        db.session.add(grower)
    grower.qr_note = (qr_note or "").strip()[:80] or None
    db.session.flush()
    audit("point.grower", point, f"household {household_id} enterprise {enterprise_id}", user_id=user_id)
    return grower


def assign_operator(point: SalesPoint, user_id, *, by: int | None = None) -> PointOperator:
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.role != "operator" or not user.active:
        raise ValidationFailed.on("user_id", _("请选择一位角色为“销售点负责人”的用户。"))
    existing = db.session.scalar(select(PointOperator).where(PointOperator.sales_point_id == point.id,
                                                             PointOperator.user_id == user.id))
    if existing is not None:
        return existing
    assigned = PointOperator(sales_point_id=point.id, user_id=user.id)
    db.session.add(assigned)
    db.session.flush()
    audit("point.operator", point, user.username, user_id=by)
    return assigned


def unassign_operator(point: SalesPoint, user_id: int, *, by: int | None = None) -> None:
    db.session.execute(PointOperator.__table__.delete().where(PointOperator.sales_point_id == point.id,
                                                              PointOperator.user_id == user_id))
    audit("point.operator.remove", point, str(user_id), user_id=by)


def operators(point: SalesPoint) -> list[User]:
    return list(db.session.scalars(select(User).join(PointOperator, PointOperator.user_id == User.id)
                                   .where(PointOperator.sales_point_id == point.id).order_by(User.username)))


def operator_candidates() -> list[User]:
    return list(db.session.scalars(select(User).where(User.role == "operator", User.active.is_(True))
                                   .order_by(User.username)))


# --- permits ------------------------------------------------------------------------------------------------

def issue_permit(point: SalesPoint, *, household_id: int | None = None, enterprise_id: int | None = None,
                 issued_by: str, valid_from: date | None, valid_to: date | None, user_id: int | None) -> Permit:
    """销售许可证 for a grower of the point, numbered point code – year – sequence; issued free, the grower never
    leaves the village for it."""
    _supplier(household_id, enterprise_id)
    issued_by = (issued_by or "").strip()
    problems: dict[str, str] = {}
    if not issued_by or len(issued_by) > 80:
        problems["issued_by"] = _("请填写发证单位。")
    if valid_from is None or valid_to is None:
        problems["valid_from"] = _("请填写有效期。")
    elif valid_to < valid_from:
        problems["valid_to"] = _("有效期结束不能早于开始。")
    grows_here = db.session.scalar(select(PointGrower.id).where(
        PointGrower.sales_point_id == point.id, _supplier_filter(PointGrower, household_id, enterprise_id)))
    if grows_here is None:
        problems["grower"] = _("请先把该农户或村企加入本销售点。")
    if problems:
        raise ValidationFailed(_("请检查标出的内容。"), fields=problems)
    year = valid_from.year
    count = db.session.scalar(select(func.count(Permit.id)).where(Permit.number.like(f"{point.code}-{year}-%")))
    permit = Permit(number=f"{point.code}-{year}-{count + 1:03d}", sales_point_id=point.id, household_id=household_id,
                    enterprise_id=enterprise_id, issued_by=issued_by, valid_from=valid_from, valid_to=valid_to,
                    token=secrets.token_urlsafe(18), created_by_id=user_id)
    db.session.add(permit)
    db.session.flush()
    audit("permit.issue", permit, permit.number, user_id=user_id)
    return permit


def revoke_permit(permit: Permit, *, user_id: int | None) -> None:
    if permit.revoked_at is None:
        permit.revoked_at = clock.now()
        db.session.flush()
        audit("permit.revoke", permit, permit.number, user_id=user_id)


def permits(point: SalesPoint) -> list[Permit]:
    return list(db.session.scalars(select(Permit).where(Permit.sales_point_id == point.id)
                                   .order_by(Permit.valid_from.desc(), Permit.number)))


def permit_by_token(token: str) -> Permit | None:
    if not token or len(token) > 32:
        return None
    return db.session.scalar(select(Permit).where(Permit.token == token))


def valid_permit(point_id: int, household_id: int | None, enterprise_id: int | None, day: date) -> Permit | None:
    return db.session.scalar(select(Permit).where(
        Permit.sales_point_id == point_id, _supplier_filter(Permit, household_id, enterprise_id),
        Permit.revoked_at.is_(None), Permit.valid_from <= day, Permit.valid_to >= day).order_by(Permit.id))


# --- goods brought to the point -----------------------------------------------------------------------------

def parse_quantity(text, product: Product, field_name: str = "quantity") -> int:
    """What the operator typed ("12.3" 斤) as whole smallest units (123) — the edge's one parser — and positive."""
    return inventory.check_quantity(edge.parse_quantity(text, product.quantity_decimals or 0, field_name), field_name)


def record_arrival(point: SalesPoint, *, household_id: int | None = None, enterprise_id: int | None = None,
                   product_id: int, quantity: int, user_id: int, at: datetime | None = None) -> Lot:
    """A grower brings goods to the point: a lot there (quantity in smallest units), sold at this point only."""
    _supplier(household_id, enterprise_id)
    grows_here = db.session.scalar(select(PointGrower.id).where(
        PointGrower.sales_point_id == point.id, _supplier_filter(PointGrower, household_id, enterprise_id)))
    if grows_here is None:
        raise ValidationFailed.on("grower", _("该农户或村企不在本销售点销售。"))
    intake = inventory.receive(household_id=household_id, enterprise_id=enterprise_id, sales_point_id=point.id,
                               items=[inventory.IntakeItem(product_id, quantity)], user_id=user_id, received_at=at,
                               note=point.name)
    return intake.lots[0]


def point_products() -> list[Product]:
    """What growers may bring to a point: active products, by weight or by the piece."""
    return list(db.session.scalars(select(Product).where(Product.active.is_(True))
                                   .order_by(Product.quantity_decimals.desc(), Product.name)))


def selling_products(point: SalesPoint) -> list[Product]:
    """What is sold at a point: the active products its growers brought there (its lots)."""
    brought = select(Lot.product_id).where(Lot.sales_point_id == point.id)
    return list(db.session.scalars(select(Product).where(Product.active.is_(True), Product.id.in_(brought))
                                   .order_by(Product.quantity_decimals.desc(), Product.name)))


# --- the phone -----------------------------------------------------------------------------------------------

def register_device(point: SalesPoint, user: User) -> PointDevice:
    """A phone starts selling at a point: it gets the next two-digit code of the point, once, while online."""
    for _attempt in range(20):
        count = db.session.scalar(select(func.count(PointDevice.id)).where(PointDevice.sales_point_id == point.id))
        code = f"{count + 1:02d}"
        made = db.session.execute(insert_ignoring_conflicts(PointDevice.__table__).values(
            sales_point_id=point.id, code=code, user_id=user.id, created_at=clock.now())
            .returning(PointDevice.id)).first()
        if made is not None:
            return db.session.get(PointDevice, made[0])
    raise Conflict(_("无法分配手机编号，请重试。"))


def grower_key(household_id: int | None, enterprise_id: int | None) -> str:
    return f"h{household_id}" if household_id else f"e{enterprise_id}"


def grower_name(name: str | None, is_household: bool, masked: bool) -> str:
    """A grower as a page shows it: a household's head masked (李**) outside the manager's and admin's pages;
    an enterprise by its name."""
    return mask_name(name) if masked and is_household else (name or "")


def state(point: SalesPoint, on: date | None = None, *, masked: bool = True) -> dict:
    """All a phone needs to sell offline at a point: growers with their permits, products and prices, and
    what each grower has left there (as of now; sales made offline are counted down on the phone). Households'
    names are masked unless `masked` is False (the manager's and admin's eyes)."""
    on = on or clock.today()
    growers = db.session.scalars(select(PointGrower).where(PointGrower.sales_point_id == point.id)
                                 .order_by(PointGrower.id)).all()
    point_permits = [p for p in permits(point) if p.revoked_at is None]
    stock = inventory.point_stock(point.id, on)
    products = selling_products(point)
    return {
        "point": {"id": point.id, "code": point.code, "name": point.name, "address": point.address,
                  "first_day": point.first_day.isoformat(), "last_day": point.last_day.isoformat(),
                  "opens_at": point.opens_at.strftime("%H:%M") if point.opens_at else None,
                  "closes_at": point.closes_at.strftime("%H:%M") if point.closes_at else None},
        "today": on.isoformat(),
        "growers": [{
            "key": grower_key(g.household_id, g.enterprise_id), "household_id": g.household_id,
            "enterprise_id": g.enterprise_id, "qr_note": g.qr_note,
            "name": grower_name(g.supplier.display_name, g.household_id is not None, masked),
            "permits": [{"number": p.number, "from": p.valid_from.isoformat(), "to": p.valid_to.isoformat()}
                        for p in point_permits if (p.household_id, p.enterprise_id) == (g.household_id, g.enterprise_id)],
            "stock": {str(pid): n for (h, e, pid), n in stock.items() if (h, e) == (g.household_id, g.enterprise_id)},
        } for g in growers],
        "products": [{"id": p.id, "name": p.name, "unit": p.unit, "price_fen": p.price_fen,
                      "decimals": p.quantity_decimals, "scale": p.scale} for p in products],
    }


# --- a sale ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SaleIn:
    client_id: str
    receipt_number: str
    point_id: int
    household_id: int | None
    enterprise_id: int | None
    product_id: int
    quantity: int
    unit_price_fen: int
    amount_fen: int
    payment: str
    sold_at: datetime


def _int(value, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > MAX_FEN:
        raise ValidationFailed.on(name, _("应为正整数。"))
    return value


def parse_sale(raw) -> SaleIn:
    """A sale as the phone sent it (JSON), checked for shape; its rules are checked by `record_sale`."""
    if not isinstance(raw, dict):
        raise ValidationFailed(_("每笔销售应为一个对象。"))
    client_id = str(raw.get("id") or "").lower()
    if not UUID.match(client_id):
        raise ValidationFailed.on("id", _("销售编号应为手机生成的 UUID。"))
    receipt = str(raw.get("receipt") or "").upper()
    if not RECEIPT.match(receipt):
        raise ValidationFailed.on("receipt", _("收据号格式应为 销售点编号-手机编号-序号。"))
    payment = raw.get("payment")
    if payment not in PAYMENT_WAYS:
        raise ValidationFailed.on("payment", _("付款方式应为现金或农户收款码。"))
    try:
        sold_at = datetime.fromisoformat(str(raw.get("sold_at") or "").replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed.on("sold_at", _("销售时间格式不对。")) from None
    if sold_at.tzinfo is not None:
        sold_at = sold_at.astimezone(timezone.utc).replace(tzinfo=None)
    household_id = _int(raw.get("household_id"), "household_id", optional=True)
    enterprise_id = _int(raw.get("enterprise_id"), "enterprise_id", optional=True)
    if (household_id is None) == (enterprise_id is None):
        raise ValidationFailed.on("grower", _("请选择一个农户或村企。"))
    return SaleIn(client_id, receipt, _int(raw.get("point_id"), "point_id"), household_id, enterprise_id,
                  _int(raw.get("product_id"), "product_id"), _int(raw.get("quantity"), "quantity"),
                  _int(raw.get("unit_price_fen"), "unit_price_fen"), _int(raw.get("amount_fen"), "amount_fen"),
                  payment, sold_at)


def _same(sale: PointSale, data: SaleIn) -> bool:
    return (sale.receipt_number, sale.sales_point_id, sale.household_id, sale.enterprise_id, sale.product_id,
            sale.quantity, sale.unit_price_fen, sale.amount_fen, sale.payment) == (
        data.receipt_number, data.point_id, data.household_id, data.enterprise_id, data.product_id, data.quantity,
        data.unit_price_fen, data.amount_fen, data.payment)


@dataclass
class Recorded:
    sale: PointSale
    new: bool  # False: this sale was already recorded (a resend); nothing changed


def _check_sale(user: User, data: SaleIn, now: datetime) -> tuple[SalesPoint, Product, Household | Enterprise, date]:
    """The rules a sale must keep to be recorded at all (the phone checks them too)."""
    point = db.session.get(SalesPoint, data.point_id)
    if point is None or not may_operate(user, point):
        raise ValidationFailed.on("point_id", _("您不负责这个销售点。"))
    if not data.receipt_number.startswith(point.code + "-"):
        raise ValidationFailed.on("receipt", _("收据号应以本销售点编号 %(c)s 开头。", c=point.code))
    if data.sold_at > now + CLOCK_SKEW or data.sold_at < now - timedelta(days=LATE_DAYS):
        raise ValidationFailed.on("sold_at", _("销售时间不对（手机时间是否有误？）。"))
    day = clock.local_day(data.sold_at)
    if not point.first_day <= day <= point.last_day:
        raise ValidationFailed.on("sold_at", _("%(d)s 不在本销售点的销售季内。", d=day.isoformat()))
    product = db.session.get(Product, data.product_id)
    if product is None or not product.active:
        raise ValidationFailed.on("product_id", _("该商品已下架或不存在。"))
    supplier = _supplier(data.household_id, data.enterprise_id)
    permit = valid_permit(point.id, data.household_id, data.enterprise_id, day)
    if permit is None:
        raise ValidationFailed.on("grower", _("%(n)s 在 %(d)s 没有本销售点有效的销售许可证，不能销售。",
                                              n=grower_name(supplier.display_name, data.household_id is not None,
                                                            True), d=day.isoformat()))
    if data.quantity > inventory.MAX_QUANTITY:
        raise ValidationFailed.on("quantity", _("数量过大。"))
    expected = value_fen(data.quantity, data.unit_price_fen, product.scale)
    if data.amount_fen != expected:
        raise ValidationFailed.on("amount_fen", _("金额应为重量 × 单价四舍五入到分：%(a)s。", a=format_fen(expected)))
    return point, product, supplier, day


def record_sale(user: User, data: SaleIn, *, now: datetime | None = None) -> Recorded:
    """Record one sale from a phone, exactly once per client id. Refused (nothing written) when it breaks a rule
    that the phone checks too: not this operator's point, no valid permit that day, an amount that is not the
    weight × price rounded half-up. Filled from the grower's lots at the point when they hold enough; otherwise
    kept and flagged for the manager."""
    now = now or clock.now()
    # the point's row first: the sales of one point (a batch, a resend, another phone) and its day's close
    # take their locks in one order — point, sale, lots — so they never deadlock
    lock_row(SalesPoint, data.point_id)
    existing = db.session.scalar(select(PointSale).where(PointSale.client_id == data.client_id))
    if existing is not None:
        if not _same(existing, data):
            raise SaleDiffers(_("编号 %(id)s 的销售已记录，但内容不同。", id=data.client_id))
        return Recorded(existing, False)
    point, product, supplier, day = _check_sale(user, data, now)
    device = db.session.scalar(select(PointDevice.id).where(
        PointDevice.sales_point_id == point.id, PointDevice.code == data.receipt_number.split("-")[1]))
    made = db.session.execute(insert_ignoring_conflicts(PointSale.__table__).values(
        client_id=data.client_id, receipt_number=data.receipt_number, sales_point_id=point.id, device_id=device,
        user_id=user.id, product_id=product.id, household_id=data.household_id, enterprise_id=data.enterprise_id,
        quantity=data.quantity, scale=product.scale, unit_price_fen=data.unit_price_fen, amount_fen=data.amount_fen,
        payment=data.payment, sold_at=data.sold_at, sold_on=day, received_at=now, status="flagged",
        flag_reason=None).returning(PointSale.id)).first()
    if made is None:  # another request recorded the same sale a moment ago
        return record_sale(user, data, now=now)
    sale = db.session.get(PointSale, made[0])
    problems = []
    if data.unit_price_fen != product.price_fen:
        problems.append(_("单价 %(p)s 与商品现价 %(c)s 不同。", p=format_fen(data.unit_price_fen),
                          c=format_fen(product.price_fen)))
    duplicate_receipt = db.session.scalar(select(func.count(PointSale.id)).where(
        PointSale.receipt_number == data.receipt_number, PointSale.id != sale.id))
    if duplicate_receipt:
        problems.append(_("收据号 %(r)s 重复。", r=data.receipt_number))
    if data.payment == "cash" and _day_closed(point.id, day):
        problems.append(_("%(d)s 已经日结，这笔现金不在当天的清点里，已记入现金差额。", d=day.isoformat()))
    if not _fill(sale, user_id=user.id):
        have = inventory.point_stock(point.id, day).get((data.household_id, data.enterprise_id, product.id), 0)
        problems.insert(0, _("库存不足：%(n)s 的 %(p)s 在本点只剩 %(h)s，本笔 %(q)s，未能出库。",
                             n=grower_name(supplier.display_name, data.household_id is not None, True),
                             p=product.name, h=format_quantity(have, product), q=format_quantity(data.quantity, product)))
        sale.status = "flagged"
    if problems:
        sale.flag_reason = "\n".join(problems)
    db.session.flush()
    audit("point.sale", sale, f"{sale.receipt_number} {sale.amount_fen} fen {sale.status}", user_id=user.id)
    return Recorded(sale, True)


def sync(user: User, body) -> list[dict]:
    """A phone's batch `{"sales": [...]}`, in one unit of work: each sale recorded once (a resend answers what was
    recorded), flagged when it could not be filled, or refused with its reason — a refusal writes nothing, so
    it never undoes the batch's other sales. The answer says, per sale id, what the server holds."""
    sales = body.get("sales") if isinstance(body, dict) else None
    if not isinstance(sales, list) or not sales:
        raise ValidationFailed.on("sales", _("请提交要同步的销售（sales 列表）。"))
    if len(sales) > MAX_BATCH:
        raise ValidationFailed.on("sales", _("一次最多同步 %(n)d 笔。", n=MAX_BATCH))
    results = []
    for raw in sales:
        sale_id = str(raw.get("id")) if isinstance(raw, dict) else None
        try:
            outcome = record_sale(user, parse_sale(raw))
        except (ValidationFailed, SaleDiffers) as err:
            results.append({"id": sale_id, "status": "refused", "code": err.code, "message": err.message,
                            "fields": err.fields})
            continue
        results.append(sale_answer(outcome.sale, duplicate=not outcome.new))
    return results


EXPORT_FORMAT = "shop-point-sales"
MAX_IMPORT = 5000             # sales in one file a phone exported


def import_file(user: User, point: SalesPoint, data: bytes) -> list[dict]:
    """The file a phone exported of its waiting sales (when it could not send them), imported by the manager:
    each sale goes exactly the way the phone would have sent it (`record_sale`), so importing the same file
    twice, or a file whose sales the phone sent meanwhile, records each sale once. Answers as `sync` does."""
    try:
        document = edge.parse_json(data)
    except ValueError:
        raise ValidationFailed.on("file", _("这不是手机导出的销售文件。")) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ValidationFailed.on("file", _("这不是手机导出的销售文件。"))
    if document.get("point_id") != point.id:
        raise ValidationFailed.on("file", _("这个文件是另一个销售点的（%(c)s）。", c=str(document.get("point_code"))[:8]))
    sales = document.get("sales")
    if not isinstance(sales, list) or not sales:
        raise ValidationFailed.on("file", _("文件里没有待上传的销售。"))
    if len(sales) > MAX_IMPORT:
        raise ValidationFailed.on("file", _("一个文件最多 %(n)d 笔。", n=MAX_IMPORT))
    results = []
    for raw in sales:
        sale_id = str(raw.get("id")) if isinstance(raw, dict) else None
        if isinstance(raw, dict) and raw.get("point_id") != point.id:
            results.append({"id": sale_id, "status": "refused", "code": "invalid",
                            "message": _("这笔销售不是本销售点的。"), "fields": {}})
            continue
        try:
            outcome = record_sale(user, parse_sale(raw))
        except (ValidationFailed, SaleDiffers) as err:
            results.append({"id": sale_id, "status": "refused", "code": err.code, "message": err.message,
                            "fields": err.fields})
            continue
        results.append(sale_answer(outcome.sale, duplicate=not outcome.new))
    audit("point.import", point, f"{len(sales)} sales from a phone's file", user_id=user.id)
    return results


@dataclass
class ImportSummary:
    new: int
    duplicate: int
    flagged: int
    refused: list[dict]


def import_summary(results: list[dict]) -> ImportSummary:
    """What an imported file did: sales recorded now, already there, flagged for checking, refused (with why)."""
    return ImportSummary(
        new=sum(1 for r in results if r["status"] in ("recorded", "flagged") and not r.get("duplicate")),
        duplicate=sum(1 for r in results if r.get("duplicate")),
        flagged=sum(1 for r in results if r["status"] == "flagged" and not r.get("duplicate")),
        refused=[r for r in results if r["status"] == "refused"])


def sale_answer(sale: PointSale, *, duplicate: bool = False) -> dict:
    order = db.session.get(Order, sale.order_id) if sale.order_id else None
    return {"id": sale.client_id, "receipt": sale.receipt_number, "status": sale.status, "duplicate": duplicate,
            "amount_fen": sale.amount_fen, "order_number": order.number if order else None,
            "order_id": order.id if order else None,
            "message": sale.flag_reason}


def _day_closed(point_id: int, day: date) -> bool:
    return db.session.scalar(select(PointDay.id).where(PointDay.sales_point_id == point_id,
                                                       PointDay.day == day)) is not None


def _fill(sale: PointSale, *, user_id: int) -> bool:
    """Take the sale's goods from the grower's lots at the point and post it; False (nothing taken) when they
    hold too little now."""
    # the point's row first, then its lots: sales of one point and its day's close take their locks in one
    # order (no deadlock), and a close moves exactly the cash sales posted before it
    lock_row(SalesPoint, sale.sales_point_id)
    picks = inventory.take_at_point(sale.sales_point_id, household_id=sale.household_id,
                                    enterprise_id=sale.enterprise_id, product_id=sale.product_id,
                                    quantity=sale.quantity, reference=f"point-sale:{sale.id}", user_id=user_id,
                                    on=sale.sold_on)
    if picks is None:
        return False
    order = orders.create_point_order(seller_id=sale.user_id, product=sale.product, quantity=sale.quantity,
                                      unit_price_fen=sale.unit_price_fen, picks=picks, at=sale.sold_at)
    if order.total_fen != sale.amount_fen:
        raise AssertionError(f"point sale {sale.id}: order total {order.total_fen} ≠ amount {sale.amount_fen}")
    if sale.payment == "cash":
        way = "point_late_cash" if _day_closed(sale.sales_point_id, sale.sold_on) else "point_cash"
    else:
        way = "grower_qr"
    # paid the way every order is paid, then handed over on the spot: the workflow's own moves
    if payments.take_payment(way, amount_fen=sale.amount_fen, currency=order.currency, at=sale.sold_at,
                             order_id=order.id, reference=sale.receipt_number) is None:
        raise AssertionError(f"point sale {sale.id}: its order could not be paid")
    db.session.refresh(order)
    orders.transition(order, "hand_over_on_the_spot", user_id=None, note=sale.receipt_number, at=sale.sold_at,
                      handed_over_to=sale.receipt_number[:80])
    if sale.payment == "grower_qr":
        ledger.settle_direct(ledger.supplier_account(sale.household_id, sale.enterprise_id), sale.amount_fen,
                             reference=sale.receipt_number, user_id=user_id, at=sale.sold_at)
    sale.order_id, sale.status = order.id, "recorded"
    db.session.flush()
    return True


# --- flagged sales ------------------------------------------------------------------------------------------

TO_CHECK = or_(PointSale.status == "flagged",
               and_(PointSale.status == "recorded", PointSale.flag_reason.is_not(None), PointSale.resolved_at.is_(None)))


def flagged(point_id: int | None = None, day: date | None = None) -> list[PointSale]:
    """待核对: sales kept but not posted (the grower's lot could not fill them), and sales posted with a question
    — a price other than the product's, a receipt number used twice, cash that arrived after its day was
    closed — until the manager has looked at them."""
    query = select(PointSale).where(TO_CHECK).order_by(PointSale.sold_at, PointSale.id)
    if point_id is not None:
        query = query.where(PointSale.sales_point_id == point_id)
    if day is not None:
        query = query.where(PointSale.sold_on == day)
    return list(db.session.scalars(query))


def flagged_count() -> int:
    return int(db.session.scalar(select(func.count(PointSale.id)).where(TO_CHECK)))


RESOLUTIONS = {"flagged": ("post", "void"), "recorded": ("ok",)}


def resolve(sale: PointSale, action: str, *, note: str, user_id: int) -> None:
    """The manager settles a sale to check: a flagged one is `post`ed — the grower had more than was recorded,
    so the lot's count is corrected by the shortfall and the sale posted as it happened — or `void`ed (entered
    by mistake); a posted one with a question is marked `ok` (checked: a wrong one is refunded from its order)."""
    note = (note or "").strip()
    if not note or len(note) > 500:
        raise ValidationFailed.on("note", _("请写明核对结果。"))
    lock_row(PointSale, sale.id)
    db.session.refresh(sale)
    if sale.resolved_at is not None or sale.status not in RESOLUTIONS or (sale.status == "recorded"
                                                                          and not sale.flag_reason):
        raise Conflict(_("这笔销售已经处理过了。"))
    if action not in RESOLUTIONS[sale.status]:
        raise ValidationFailed.on("action", _("请选择入账或作废。") if sale.status == "flagged"
                                  else _("这笔销售已入账：核对无误请选“核对无误”，有误请在订单页退款。"))
    if action == "post":
        have = inventory.point_stock(sale.sales_point_id, sale.sold_on).get(
            (sale.household_id, sale.enterprise_id, sale.product_id), 0)
        if have < sale.quantity:
            _correct_count(sale, sale.quantity - have, user_id=user_id, note=note)
        if not _fill(sale, user_id=user_id):
            raise Conflict(_("库存刚刚又有变化，请重试。"))
    elif action == "void":
        sale.status = "voided"
    sale.resolved_by_id, sale.resolved_at, sale.resolution_note = user_id, clock.now(), note
    db.session.flush()
    audit(f"point.sale.{action}", sale, note, user_id=user_id)


def _correct_count(sale: PointSale, shortfall: int, *, user_id: int, note: str) -> None:
    """The grower's lot at the point held more than recorded: a count correction on its latest lot (or, with
    none, the goods recorded as brought)."""
    lot_id = db.session.scalar(select(Lot.id).where(
        Lot.sales_point_id == sale.sales_point_id, Lot.product_id == sale.product_id,
        _supplier_filter(Lot, sale.household_id, sale.enterprise_id)).order_by(Lot.id.desc()).limit(1))
    if lot_id is None:
        inventory.receive(household_id=sale.household_id, enterprise_id=sale.enterprise_id,
                          sales_point_id=sale.sales_point_id, items=[inventory.IntakeItem(sale.product_id, shortfall)],
                          user_id=user_id, received_at=sale.sold_at, note=note)
    else:
        inventory.adjust(lot_id, shortfall, reason="count_correction", user_id=user_id,
                         note=f"{sale.receipt_number}: {note}")


# --- the day's close ----------------------------------------------------------------------------------------

@dataclass
class GrowerLine:
    name: str
    product: str
    quantity: str
    cash_fen: int = 0
    qr_fen: int = 0
    sales: int = 0


@dataclass
class DayFigures:
    point: SalesPoint
    day: date
    cash_fen: int = 0           # every cash sale of the day, flagged ones included: what the till should hold
    posted_cash_fen: int = 0    # of which posted to the ledger
    qr_fen: int = 0
    sales: int = 0
    flagged: list[PointSale] = field(default_factory=list)
    growers: list[GrowerLine] = field(default_factory=list)
    closed: PointDay | None = None

    @property
    def total_fen(self) -> int:
        return self.cash_fen + self.qr_fen


def day_figures(point: SalesPoint, day: date, *, masked: bool = True) -> DayFigures:
    """A point's day: the sums per grower and product (SQL aggregates, voided sales left out), their totals,
    the flagged sales and the close if there is one. Households' names are masked unless `masked` is False."""
    def paid(way: str, *, posted: bool = False):
        condition = and_(PointSale.payment == way, PointSale.status == "recorded") if posted \
            else PointSale.payment == way
        return func.coalesce(func.sum(case((condition, PointSale.amount_fen), else_=0)), 0)

    rows = db.session.execute(
        select(func.coalesce(Household.head_name, Enterprise.name), PointSale.household_id, Product,
               func.sum(PointSale.quantity),
               func.count(PointSale.id), paid("cash"), paid("grower_qr"), paid("cash", posted=True))
        .select_from(PointSale).join(Product, Product.id == PointSale.product_id)
        .outerjoin(Household, Household.id == PointSale.household_id)
        .outerjoin(Enterprise, Enterprise.id == PointSale.enterprise_id)
        .where(PointSale.sales_point_id == point.id, PointSale.sold_on == day, PointSale.status != "voided")
        .group_by(PointSale.household_id, PointSale.enterprise_id, Household.head_name, Enterprise.name, Product.id)
        .order_by(func.coalesce(Household.head_name, Enterprise.name), Product.name)).all()
    growers = [GrowerLine(grower_name(name, household_id is not None, masked), product.name,
                          format_quantity(int(units), product), int(cash), int(qr), int(count))
               for name, household_id, product, units, count, cash, qr, _posted in rows]
    return DayFigures(
        point, day, cash_fen=sum(int(r[5]) for r in rows), posted_cash_fen=sum(int(r[7]) for r in rows),
        qr_fen=sum(int(r[6]) for r in rows), sales=sum(int(r[4]) for r in rows), growers=growers,
        flagged=flagged(point.id, day),
        closed=db.session.scalar(select(PointDay).where(PointDay.sales_point_id == point.id, PointDay.day == day)))


def close_day(point: SalesPoint, day: date, counted_fen, *, note: str | None, user_id: int) -> PointDay:
    """The operator counts the day's cash. The close records the count beside the cash sales recorded (the
    difference shown to operator and manager) and moves the posted cash into the service point's cash."""
    counted_fen = ledger.check_amount(counted_fen, "counted") if counted_fen != 0 else 0
    if day > clock.today():
        raise ValidationFailed.on("day", _("还没到这一天。"))
    lock_row(SalesPoint, point.id)  # cash sales being posted finish first, so the count moves exactly them
    if _day_closed(point.id, day):
        raise AlreadyClosed(_("%(d)s 已经日结过了。", d=day.isoformat()))
    figures = day_figures(point, day)
    note = (note or "").strip() or None
    if counted_fen != figures.cash_fen and not note:
        raise ValidationFailed.on("note", _("清点的现金与记录不符（相差 %(d)s），请写明原因。",
                                            d=format_fen(counted_fen - figures.cash_fen)))
    made = db.session.execute(insert_ignoring_conflicts(PointDay.__table__).values(
        sales_point_id=point.id, day=day, counted_cash_fen=counted_fen, recorded_cash_fen=figures.cash_fen,
        posted_cash_fen=figures.posted_cash_fen, grower_qr_fen=figures.qr_fen, note=note, closed_by_id=user_id,
        closed_at=clock.now()).returning(PointDay.id)).first()
    if made is None:
        raise AlreadyClosed(_("%(d)s 已经日结过了。", d=day.isoformat()))
    closed = db.session.get(PointDay, made[0])
    # the posted cash sales of the day; a sale posted later debits cash_difference instead (see the module)
    posted = figures.posted_cash_fen
    if posted or counted_fen:
        ledger.post("receipt", "point_day", closed.id, [
            ledger.Line(ledger.platform_account("cash_on_hand"), counted_fen),
            ledger.Line(ledger.platform_account("point_cash"), -posted),
            ledger.Line(ledger.platform_account("cash_difference"), posted - counted_fen)],
            user_id=user_id, memo=f"{point.code} {day.isoformat()}")
    audit("point.close", closed, f"{point.code} {day} counted {counted_fen} recorded {figures.cash_fen}",
          user_id=user_id)
    return closed


def closed_days(point_id: int | None = None, limit: int = 200) -> list[PointDay]:
    query = select(PointDay).order_by(PointDay.day.desc(), PointDay.sales_point_id).limit(limit)
    if point_id is not None:
        query = query.where(PointDay.sales_point_id == point_id)
    return list(db.session.scalars(query))


def open_days(point: SalesPoint) -> list[date]:
    """Days with sales that have not been closed yet, oldest first."""
    closed = select(PointDay.day).where(PointDay.sales_point_id == point.id)
    return list(db.session.scalars(select(PointSale.sold_on).where(
        PointSale.sales_point_id == point.id, PointSale.sold_on.not_in(closed)).distinct().order_by(PointSale.sold_on)))


def open_day_counts() -> dict[int, int]:
    """Per point: how many days with sales are not closed yet (one grouped query)."""
    closed = select(PointDay.id).where(PointDay.sales_point_id == PointSale.sales_point_id,
                                       PointDay.day == PointSale.sold_on).exists()
    return dict(db.session.execute(select(PointSale.sales_point_id, func.count(func.distinct(PointSale.sold_on)))
                                   .where(~closed).group_by(PointSale.sales_point_id)).all())


# --- figures ------------------------------------------------------------------------------------------------

def sales_in(start: date, end: date) -> tuple[int, int]:
    """(points with recorded sales, sales) between two local days."""
    row = db.session.execute(select(func.count(func.distinct(PointSale.sales_point_id)), func.count(PointSale.id))
                             .where(PointSale.status == "recorded", PointSale.sold_on >= start,
                                    PointSale.sold_on <= end)).one()
    return int(row[0]), int(row[1])


# --- verification -------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """A recorded sale has its order, of the channel 临时销售点, for exactly its amount; every amount is its weight ×
    price rounded half-up; the operators' till (`point_cash`) holds the posted cash sales of the days not yet
    closed; what was paid to growers' own codes is all settled (`grower_direct` is zero)."""
    problems: list[str] = []
    rows = db.session.execute(select(PointSale.id, PointSale.quantity, PointSale.unit_price_fen, PointSale.scale,
                                     PointSale.amount_fen, PointSale.status, Order.id, Order.total_fen, Order.channel)
                              .outerjoin(Order, Order.id == PointSale.order_id)).all()
    for sale_id, quantity, price, scale, amount, status, order_id, total, channel in rows:
        if amount != value_fen(quantity, price, scale):
            problems.append(f"point sale {sale_id}: amount {amount} is not {quantity}/{scale} × {price} rounded")
        if status == "recorded" and (order_id is None or total != amount or channel != "point"):
            problems.append(f"point sale {sale_id}: recorded but its order {order_id} is not a point order for "
                            f"{amount} fen")
    closed = select(PointDay.id).where(PointDay.sales_point_id == PointSale.sales_point_id,
                                       PointDay.day == PointSale.sold_on).exists()
    open_cash = int(db.session.scalar(select(func.coalesce(func.sum(PointSale.amount_fen), 0)).where(
        PointSale.payment == "cash", PointSale.status == "recorded", ~closed)))
    till = ledger.platform_balance("point_cash")
    if till != open_cash:
        problems.append(f"point_cash holds {till} fen but the posted cash sales of open days are {open_cash} fen")
    direct = ledger.platform_balance("grower_direct")
    if direct != 0:
        problems.append(f"grower_direct is {direct} fen: a sale paid to a grower's code was not settled")
    return problems

"""Order rules: the cart, placing an order, the state machine, fulfilment, refunds.

Every move of an order is one of `workflow.MOVES`, made by `transition`: a guarded UPDATE
(`… WHERE status = :seen`) whose row count is checked, so two hosts, two webhooks or two managers acting
at once cannot both move the same order. Anything that changes an order's money or stock first takes the
order's row lock (`lock`), in a fixed order — the order, then its lots in id order — and changes every
counter by an atomic UPDATE guarded in its WHERE clause: nothing is read, changed in Python and written back.

This module knows nothing of the ledger: it hands its callers what was sold or refunded (`sale_items`,
`RefundOutcome.items`), and they post it. Services flush, never commit; the caller owns the unit of work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import String, bindparam, func, or_, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from .. import clock
from ..accounts.models import User
from ..audit.services import record as audit
from ..catalog.models import PickupPoint, Product
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import format_fen, format_quantity, local_dt, measure
from ..models_base import value_fen
from ..inventory import services as inventory
from ..inventory.models import Lot
from ..notifications import services as notices
from ..glossary import label
from ..producers.models import Enterprise, Household, Pairing
from ..sqlhelpers import lock_row
from . import workflow
from .models import (EXPIRED_NOTE, Allocation, CartItem, Order, OrderEvent, OrderLine, Refund, RefundLine,
                     order_number)

MAX_CART_LINES = 30


class InvalidTransition(Conflict):
    code = "invalid_transition"


# --- cart -----------------------------------------------------------------------------------------

@dataclass
class CartLine:
    item: CartItem
    available: int
    from_my_households: int  # units in stock from the buyer's own paired households

    @property
    def total_fen(self) -> int:
        return value_fen(self.item.quantity, self.item.product.price_fen, self.item.product.scale)

    @property
    def short(self) -> bool:
        return self.item.quantity > self.available


def cart(user: User) -> list[CartLine]:
    items = db.session.scalars(select(CartItem).where(CartItem.user_id == user.id)
                               .options(selectinload(CartItem.product)).order_by(CartItem.id)).all()
    ids = [i.product_id for i in items]
    stock = inventory.available(ids)
    mine = paired_stock(user, ids)
    return [CartLine(i, stock.get(i.product_id, 0), mine.get(i.product_id, 0)) for i in items]


def paired_stock(user: User, product_ids=None) -> dict[int, int]:
    """Units in stock now from the households this staff member is paired with, per product."""
    query = (select(Lot.product_id, func.sum(Lot.remaining))
             .where(Lot.household_id.in_(select(Pairing.household_id).where(Pairing.user_id == user.id)),
                    Lot.remaining > 0, Lot.sales_point_id.is_(None),
                    or_(Lot.best_before.is_(None), Lot.best_before >= clock.today()))
             .group_by(Lot.product_id))
    if product_ids is not None:
        query = query.where(Lot.product_id.in_(list(product_ids)))
    return {pid: int(n) for pid, n in db.session.execute(query).all()}


def sellable(product_id, on: date | None = None) -> Product:
    """A product that may be ordered now: it exists, is on sale and in season."""
    product = db.session.get(Product, product_id) if isinstance(product_id, int) else None
    if product is None or not product.active:
        raise ValidationFailed.on("product_id", _("该商品已下架或不存在。"))
    if not product.in_season(on or clock.today()):
        raise ValidationFailed.on("product_id", _("%(n)s 现在不在销售季。", n=product.name))
    if product.by_weight:
        raise ValidationFailed.on("product_id", _("%(n)s 按重量现场称重销售，只在临时销售点出售。", n=product.name))
    return product


def set_cart_quantity(user: User, product_id, quantity, *, add: bool = False) -> CartItem | None:
    """Put a product in the cart (or change its quantity; 0 removes it)."""
    product = sellable(product_id)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValidationFailed.on("quantity", _("数量必须是正整数。"))
    item = db.session.scalar(select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product.id))
    new = (item.quantity if item and add else 0) + quantity
    if new > inventory.MAX_QUANTITY:
        raise ValidationFailed.on("quantity", _("数量过大（最多 %(n)d）。", n=inventory.MAX_QUANTITY))
    if new == 0:
        if item is not None:
            db.session.delete(item)
            db.session.flush()
        return None
    if item is None:
        count = db.session.scalar(select(func.count(CartItem.id)).where(CartItem.user_id == user.id))
        if count >= MAX_CART_LINES:
            raise ValidationFailed.on("product_id", _("购物车最多放 %(n)d 种商品。", n=MAX_CART_LINES))
        item = CartItem(user_id=user.id, product_id=product.id, quantity=new)
        db.session.add(item)
    else:
        item.quantity = new
    db.session.flush()
    return item


def sync_cart(user: User, wanted: list[tuple[int, int]]) -> None:
    """Make the cart exactly what the buyer sees on the cart page: each shown product at its shown quantity.
    A product in the cart that the page did not show (added meanwhile in another tab) is refused by name, so
    nobody orders what they did not see."""
    shown = {product_id for product_id, _quantity in wanted}
    for product_id, quantity in wanted:
        set_cart_quantity(user, product_id, quantity)
    unseen = db.session.scalars(select(Product.name).join(CartItem, CartItem.product_id == Product.id)
                                .where(CartItem.user_id == user.id, CartItem.product_id.not_in(shown or {0}))
                                .order_by(CartItem.id)).all()
    if unseen:
        raise ValidationFailed(_("购物车在别处有变动：又加入了 %(names)s。请核对购物车后再提交。", names="、".join(unseen)))


# --- who sees an order --------------------------------------------------------------------------------

def visible_to(order: Order, user: User) -> bool:
    """Staff see their own orders; a company's buyers see their company's; the back office sees all."""
    if user.role in ("manager", "admin"):
        return True
    if user.role == "company":
        return order.organization_id is not None and order.organization_id == user.organization_id
    return order.buyer_id == user.id


def whole_order():
    """Loader options for everything an order's pages show, in a fixed number of queries however many
    lines it has."""
    allocations = selectinload(Order.lines).selectinload(OrderLine.allocations).selectinload(Allocation.lot)
    return [selectinload(Order.lines).selectinload(OrderLine.product),
            allocations.selectinload(Lot.household), allocations.selectinload(Lot.enterprise),
            selectinload(Order.events).selectinload(OrderEvent.user), selectinload(Order.refunds),
            selectinload(Order.pickup_point), selectinload(Order.buyer), selectinload(Order.organization)]


def order_list_query():
    """Orders with what a list of them shows (lines, products, pickup point, buyer), in a fixed number of queries."""
    return select(Order).options(selectinload(Order.lines).selectinload(OrderLine.product),
                                 selectinload(Order.pickup_point), selectinload(Order.buyer))


def buyer_orders(user: User):
    """A buyer's orders, newest first: a staff member's own, a company buyer's company's."""
    mine = (Order.organization_id == user.organization_id) if user.role == "company" else (Order.buyer_id == user.id)
    return order_list_query().where(mine).order_by(Order.id.desc())


MANAGE_FILTERS = {"all": Order.id.is_not(None),
                  "flagged": Order.review_reason.is_not(None),
                  "refunds": Order.payment_status.in_(("partially_refunded", "refunded"))}


WORK_TABS = ("paid", "packed")  # queues worked first come, first served; every other tab lists newest first
ORDER_NUMBER = re.compile(r"^([0-9]{8})-?([0-9]{1,9})$")


def manage_query(tab: str, *, q: str = "", start: date | None = None, end: date | None = None,
                 point_id: int | None = None):
    """The service point's orders of one tab (a status, flagged, or with refunds), searched by what people know
    — an order number, the buyer's name, a product — and filtered by placing day and pickup point."""
    query = order_list_query().where(MANAGE_FILTERS.get(tab, Order.status == tab))
    q = (q or "").strip()
    if q:
        number = ORDER_NUMBER.match(q)
        like = f"%{q}%"
        matches = [Order.buyer_id.in_(select(User.id).where(or_(User.display_name.like(like), User.username.like(like)))),
                   Order.id.in_(select(OrderLine.order_id).join(Product).where(Product.name.like(like)))]
        if number:
            matches.append(Order.id == int(number.group(2)))
        elif q.isascii() and q.isdigit() and len(q) <= 9:
            matches.append(Order.id == int(q))
        query = query.where(or_(*matches))
    if start is not None or end is not None:
        since, until = clock.day_bounds(start or date(2000, 1, 1), end or date(2999, 12, 31))
        query = query.where(Order.placed_at >= since, Order.placed_at < until)
    if point_id:
        query = query.where(Order.pickup_point_id == point_id)
    return query.order_by(Order.id if tab in WORK_TABS else Order.id.desc())


def manage_counts() -> dict[str, int]:
    """How many orders each tab of the service point's list holds."""
    counts = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    for name, flag_condition in MANAGE_FILTERS.items():
        counts[name] = db.session.scalar(select(func.count(Order.id)).where(flag_condition))
    return counts


def by_handover(orders: list[Order]) -> dict[str, list[Order]]:
    """Orders grouped by where they are handed over (a pickup point, or delivery to a workplace)."""
    groups: dict[str, list[Order]] = {}
    for order in orders:
        key = order.pickup_point.name if order.pickup_point else _("送到单位：%(a)s", a=order.delivery_address or "")
        groups.setdefault(key, []).append(order)
    return groups


def picklist() -> dict[str, list[tuple]]:
    """What to pack from whose stock: every paid staff order's units by where it is handed over (a pickup point,
    or delivery to a workplace), then product, lot and supplier: {where: [(product, measure, lot id, head, code,
    enterprise, units, orders)]}."""
    held = Allocation.held
    rows = db.session.execute(
        select(PickupPoint.name, Order.delivery_address, Product.name, Product.unit, Product.quantity_decimals, Lot.id,
               Household.head_name, Household.code, Enterprise.name, func.sum(held),
               func.count(func.distinct(Order.id)))
        .select_from(Allocation).join(OrderLine).join(Order).join(Product, Product.id == OrderLine.product_id)
        .join(Lot, Lot.id == Allocation.lot_id).outerjoin(PickupPoint, PickupPoint.id == Order.pickup_point_id)
        .outerjoin(Household, Household.id == Allocation.household_id)
        .outerjoin(Enterprise, Enterprise.id == Allocation.enterprise_id)
        .where(Order.status == "paid", Order.channel == "retail", held > 0)
        .group_by(PickupPoint.name, Order.delivery_address, Product.name, Product.unit, Product.quantity_decimals,
                  Lot.id, Household.head_name, Household.code, Enterprise.name)
        .order_by(PickupPoint.name, Order.delivery_address, Product.name, Lot.id)).all()
    groups: dict[str, list[tuple]] = {}
    for point, address, product, unit, decimals, lot_id, head, code, enterprise, units, count in rows:
        where = point or _("送到单位：%(a)s", a=address or "")
        groups.setdefault(where, []).append((product, measure(unit, decimals), lot_id, head, code, enterprise,
                                             int(units), int(count)))
    return groups


def allowed_actions(order: Order, user: User | None) -> frozenset[str]:
    """What `user` may do with `order` now (the moves its pages offer), from the one transition table."""
    return workflow.allowed(order, user)


# --- the state machine -----------------------------------------------------------------------------

def lock(order: Order) -> Order:
    """Take the order's row lock, then reload it with its lines and allocations: whatever changes an
    order's money or stock starts here, so two such changes of one order go one after the other."""
    lock_row(Order, order.id)
    query = (select(Order).where(Order.id == order.id)
             .options(selectinload(Order.lines).selectinload(OrderLine.allocations))
             .execution_options(populate_existing=True))
    return db.session.scalar(query)


def record_event(order: Order, to: str, *, kind: str = "status", before: str | None = None,
                 user_id: int | None = None, note: str | None = None, at: datetime | None = None) -> None:
    """Add a line to the order's timeline (who, when, from and to)."""
    db.session.add(OrderEvent(order_id=order.id, kind=kind, from_status=before, to_status=to, user_id=user_id,
                              note=note, created_at=at or clock.now()))


def status_label(status: str) -> str:
    return label("order_status", status)


def _actor(user_id: int | None) -> User | None:
    return db.session.get(User, user_id) if user_id is not None else None


def transition(order: Order, name: str, *, user_id: int | None, note: str | None = None,
               at: datetime | None = None, **values) -> None:
    """Make the move `name` of the transition table; `user_id` None is the shop itself. Refused — with a
    clear message and nothing changed — if the table has no such move from where the order is, or not
    for this user."""
    move = workflow.find(order.flow, order.status, name)
    target = workflow.targets(order.flow, name)
    if move is None:
        raise InvalidTransition(_("订单当前状态为“%(s)s”，不能变为“%(t)s”。", s=status_label(order.status),
                                  t=status_label(target) if target else name))
    if not workflow.may(move, workflow.roles_of(order, _actor(user_id))):
        raise InvalidTransition(_("您不能将该订单变为“%(t)s”。", t=status_label(move.target)))
    seen = order.status
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.status == seen)
        .values(status=move.target, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(order)
        raise InvalidTransition(_("订单状态已被他人更新为“%(s)s”，请刷新后重试。", s=status_label(order.status)))
    record_event(order, move.target, before=seen, user_id=user_id, note=note, at=at)
    db.session.flush()
    db.session.refresh(order)


def move_payment(order: Order, to: str, *, user_id: int | None, note: str | None = None,
                 at: datetime | None = None, **values) -> None:
    """Move what was charged and refunded on, guarded like `transition`; never backwards."""
    seen = order.payment_status
    if to not in workflow.PAYMENT_MOVES.get(seen, frozenset()):
        raise InvalidTransition(_("订单的付款状态为“%(s)s”，不能变为“%(t)s”。", s=label("payment_status", seen),
                                  t=label("payment_status", to)))
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.payment_status == seen)
        .values(payment_status=to, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(order)
        raise InvalidTransition(_("订单状态已被他人更新，请刷新后重试。"))
    if to != seen:
        record_event(order, to, kind="payment", before=seen, user_id=user_id, note=note, at=at)
    db.session.flush()
    db.session.refresh(order)


# --- placing an order -----------------------------------------------------------------------------------

@dataclass
class OrderPlan:
    """An order checked and priced, not yet written: what `place_order` creates."""

    user: User
    payment_method: str
    point: PickupPoint | None
    address: str | None
    products: list[tuple[Product, int]]
    from_cart: bool
    today: date

    @property
    def total_fen(self) -> int:
        return sum(value_fen(quantity, product.price_fen, product.scale) for product, quantity in self.products)


def _check_payment_method(payment_method: str) -> None:
    if payment_method not in ("stripe", "offline"):
        raise ValidationFailed.on("payment_method", _("请选择支付方式。"))
    if payment_method == "stripe" and not current_app.config.get("STRIPE_SECRET_KEY"):
        raise ValidationFailed.on("payment_method", _("暂不支持在线支付，请选择到服务点付款。"))


def _lines_or_cart(user: User, lines: list[tuple[int, int]] | None) -> tuple[list[tuple[int, int]], bool]:
    if lines is None:
        lines = [(i.product_id, i.quantity) for i in db.session.scalars(
            select(CartItem).where(CartItem.user_id == user.id).order_by(CartItem.id))]
        from_cart = True
    else:
        from_cart = False
    if not lines:
        raise ValidationFailed.on("cart", _("购物车是空的。"))
    if len(lines) > MAX_CART_LINES:
        raise ValidationFailed.on("cart", _("一个订单最多 %(n)d 种商品。", n=MAX_CART_LINES))
    return lines, from_cart


def _handover(user: User, pickup_point_id, deliver_to_workplace: bool, today: date):
    """(pickup point, delivery address): where the buyer collects, or delivery to their workplace."""
    if deliver_to_workplace:
        if user.organization is None:
            raise ValidationFailed.on("pickup_point_id", _("您没有所属单位，无法送货到单位。"))
        return None, user.organization.name
    point = db.session.get(PickupPoint, pickup_point_id) if isinstance(pickup_point_id, int) else None
    if point is None or not point.active:
        raise ValidationFailed.on("pickup_point_id", _("请选择一个自提点。"))
    if not point.in_season(today):
        raise ValidationFailed.on("pickup_point_id", _("自提点 %(n)s 现在不开放。", n=point.name))
    return point, None


def plan_order(user: User, *, payment_method: str, pickup_point_id: int | None = None,
               deliver_to_workplace: bool = False, lines: list[tuple[int, int]] | None = None,
               at: datetime | None = None) -> OrderPlan:
    """Check and price an order — the cart, or the given (product id, quantity) lines — without writing."""
    _check_payment_method(payment_method)
    lines, from_cart = _lines_or_cart(user, lines)
    today = clock.local_day(at) if at else clock.today()
    point, address = _handover(user, pickup_point_id, deliver_to_workplace, today)
    ids = [product_id for product_id, _q in lines if isinstance(product_id, int) and not isinstance(product_id, bool)]
    loaded = db.session.scalars(select(Product).where(Product.id.in_(ids))).all()  # `sellable` finds them held
    products = [(sellable(product_id, today), inventory.check_quantity(quantity)) for product_id, quantity in lines]
    del loaded
    plan = OrderPlan(user, payment_method, point, address, products, from_cart, today)
    minimum = current_app.config["SHOP_STRIPE_MIN_FEN"]
    if payment_method == "stripe" and plan.total_fen < minimum:
        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请选择到服务点付款。",
                                                      m=format_fen(minimum)))
    return plan


def hold_until(payment_method: str, point: PickupPoint | None, now: datetime) -> datetime:
    """How long a placed, unpaid order holds its stock. Online payment happens at once (Stripe Checkout's
    page lives SHOP_RESERVATION_MINUTES). Paying at the service point means getting there: the hold lasts to
    the closing time of the pickup point's next opening day after today, or SHOP_OFFLINE_HOLD_HOURS when the
    point keeps no schedule (or the goods go to the workplace)."""
    config = current_app.config
    if payment_method == "stripe":
        return now + timedelta(minutes=config["SHOP_RESERVATION_MINUTES"])
    day = point.next_closing(clock.local_day(now)) if point is not None else None
    if day is None:
        return now + timedelta(hours=config["SHOP_OFFLINE_HOLD_HOURS"])
    return clock.at_local_time(day, point.closes_at)


def create_order(plan: OrderPlan, *, at: datetime | None = None) -> Order:
    """Write a checked order: its lines at the server's prices, its stock allocated and held while payment
    is pending (all or nothing)."""
    now = at or clock.now()
    expire_reservations(product_ids={p.id for p, _q in plan.products}, now=now)  # lazily free lapsed holds
    user = plan.user
    order = Order(buyer_id=user.id, organization_id=user.organization_id, channel="retail", status="pending_payment",
                  payment_status="unpaid", payment_method=plan.payment_method,
                  pickup_point_id=plan.point.id if plan.point else None, delivery_address=plan.address,
                  total_fen=plan.total_fen, refunded_fen=0, placed_at=now,
                  reserved_until=hold_until(plan.payment_method, plan.point, now))
    db.session.add(order)
    db.session.flush()
    order_lines = [OrderLine(order_id=order.id, product_id=p.id, quantity=q, unit_price_fen=p.price_fen,
                             refunded_quantity=0) for p, q in plan.products]
    db.session.add_all(order_lines)
    db.session.flush()
    made = allocate_lines(order, order_lines, buyer_id=user.id, user_id=user.id, on=plan.today)
    # the order as written, in memory: its lines, their products and allocations need not be read back
    set_committed_value(order, "lines", order_lines)
    for line, (product, _quantity) in zip(order_lines, plan.products):
        set_committed_value(line, "product", product)
        set_committed_value(line, "allocations", sorted((a for a in made if a.line_id == line.id), key=lambda a: a.id))
    record_event(order, "pending_payment", user_id=user.id, at=now)
    tell_placed(order, user, at=now)
    if plan.from_cart:
        db.session.execute(CartItem.__table__.delete().where(CartItem.user_id == user.id))
    db.session.flush()
    return order


def place_order(user: User, *, payment_method: str, pickup_point_id: int | None = None,
                deliver_to_workplace: bool = False, lines: list[tuple[int, int]] | None = None,
                at: datetime | None = None) -> Order:
    """Place the cart (or the given lines) as an order: checked and priced by the server, then written."""
    plan = plan_order(user, payment_method=payment_method, pickup_point_id=pickup_point_id,
                      deliver_to_workplace=deliver_to_workplace, lines=lines, at=at)
    return create_order(plan, at=at)


def allocate_lines(order: Order, lines: list[OrderLine], *, buyer_id: int | None, user_id: int | None = None,
                   on=None) -> list[Allocation]:
    """Take stock for an order's lines through the allocation policy, all or nothing, and record which
    lot — which supplier — fills each line: the allocations that later say whose income the sale is."""
    picks = inventory.allocate([inventory.LineRequest(line.id, line.product_id, line.quantity) for line in lines],
                               buyer_id=buyer_id, reference=f"order:{order.id}", user_id=user_id, on=on)
    made = [Allocation(line_id=pick.key, lot_id=pick.lot_id, quantity=pick.quantity, refunded_quantity=0,
                       released_quantity=0, household_id=pick.household_id, enterprise_id=pick.enterprise_id)
            for pick in picks]
    db.session.add_all(made)
    db.session.flush()
    return made


def create_point_order(*, seller_id: int, product: Product, quantity: int, unit_price_fen: int, picks,
                       at: datetime) -> Order:
    """A sale made at a seasonal sales point, its stock already taken from the grower's lot there (`picks`): the
    order placed, pending; the caller pays it (the one paying step) and hands it over on the spot — the
    workflow's moves, like any order's. One line; its quantity in the product's smallest unit and its value
    rounded half-up once (`OrderLine.total_fen`)."""
    line = OrderLine(product_id=product.id, quantity=quantity, unit_price_fen=unit_price_fen, refunded_quantity=0,
                     scale=product.scale)
    order = Order(buyer_id=seller_id, organization_id=None, channel="point", status="pending_payment",
                  payment_status="unpaid", payment_method="point", total_fen=line.total_fen, refunded_fen=0,
                  placed_at=at)
    db.session.add(order)
    db.session.flush()
    line.order_id = order.id
    db.session.add(line)
    db.session.flush()
    for pick in picks:
        db.session.add(Allocation(line_id=line.id, lot_id=pick.lot_id, quantity=pick.quantity, refunded_quantity=0,
                                  released_quantity=0, household_id=pick.household_id,
                                  enterprise_id=pick.enterprise_id))
    record_event(order, "pending_payment", user_id=seller_id, at=at)
    db.session.flush()
    return order


# --- holds ------------------------------------------------------------------------------------------------

def _take_back(allocation: Allocation, units: int, *, column: str) -> None:
    """Count `units` of an allocation as released or refunded, atomically and never beyond what it holds."""
    counter = getattr(Allocation, column)
    result = db.session.execute(
        update(Allocation).where(Allocation.id == allocation.id, Allocation.held >= units)
        .values({column: counter + units}).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict(_("该批次可退回的数量已变化，请刷新后重试。"))


def give_back(allocation: Allocation, units: int) -> None:
    """Units of an allocation that were not sold after all (refused at acceptance): counted as released."""
    _take_back(allocation, units, column="released_quantity")


def release_all(order: Order, user_id: int | None) -> None:
    """Give every unit an order still holds back to its lot (the order is under its lock)."""
    for line in order.lines:
        for allocation in sorted(line.allocations, key=lambda a: a.lot_id):
            if allocation.held > 0:
                units = allocation.held
                _take_back(allocation, units, column="released_quantity")
                inventory.release(allocation.lot_id, units, reference=f"order:{order.id}", user_id=user_id)
    db.session.flush()


def cancel(order: Order, *, user_id: int | None, note: str | None = None) -> None:
    """Cancel an order before its goods are paid for or delivered: its stock goes back on the shelf."""
    order = lock(order)
    transition(order, "cancel", user_id=user_id, note=note)
    release_all(order, user_id)
    audit("order.cancel", order, note, user_id=user_id)


def expire_reservations(*, product_ids=None, now: datetime | None = None) -> list[int]:
    """Cancel pending orders whose reservation has run out (not those awaiting an async payment).

    Safe to run from cron on several hosts at once: each cancellation is a guarded transition, so an
    order is cancelled (and its stock released) exactly once.
    """
    now = now or clock.now()
    query = select(Order).where(Order.status == "pending_payment", Order.reserved_until < now,
                                Order.awaiting_async_payment.is_(False))
    if product_ids:
        query = query.where(Order.id.in_(select(OrderLine.order_id).where(OrderLine.product_id.in_(product_ids))))
    expired = []
    for order in db.session.scalars(query.order_by(Order.id)).all():
        try:
            cancel(order, user_id=None, note=EXPIRED_NOTE)
        except InvalidTransition:
            continue  # another host or a payment got there first
        expired.append(order.id)
    return expired


# --- payment --------------------------------------------------------------------------------------------

def flag(order: Order, reason: str) -> None:
    """Put the order on the manager's list of things to check (appended in SQL: nothing is lost)."""
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(review_reason=func.coalesce(Order.review_reason + "\n", "") + reason)
                       .execution_options(synchronize_session=False))
    db.session.flush()
    db.session.refresh(order)


PAY = workflow.find(workflow.RETAIL, "pending_payment", "pay")


@dataclass(frozen=True)
class PaidOrder:
    """An order as the guarded UPDATE that paid it returned it."""

    id: int
    buyer_id: int
    number: str
    total_fen: int
    payment_method: str
    at: datetime


def _pay_statement(by):
    """The move `pay` as one guarded UPDATE … RETURNING (built once; what it is given is bound per use): the
    order, still pending, paid the way it was placed to be paid, for exactly its total and currency."""
    return (update(Order).where(by, Order.status.in_(sorted(PAY.sources)), Order.payment_method == bindparam("b_method"),
                                Order.total_fen == bindparam("b_amount"), Order.currency == bindparam("b_currency"))
            .values(status=PAY.target, paid_at=bindparam("b_at"), payment_status="paid",
                    payment_reference=func.coalesce(bindparam("b_reference", type_=String), Order.payment_reference),
                    stripe_payment_intent_id=func.coalesce(bindparam("b_intent", type_=String),
                                                           Order.stripe_payment_intent_id),
                    awaiting_async_payment=False)
            .returning(Order.id, Order.buyer_id, Order.placed_at, Order.total_fen, Order.payment_method)
            .execution_options(synchronize_session=False))


_PAY = {"order": _pay_statement(Order.id == bindparam("b_order")),
        "session": _pay_statement(Order.stripe_session_id == bindparam("b_session"))}


def pay(*, method: str, amount_fen: int, currency: str, at: datetime, order_id: int | None = None,
        session_id: str | None = None, reference: str | None = None, payment_intent_id: str | None = None,
        user_id: int | None = None) -> PaidOrder | None:
    """The move `pay` of the transition table — the one way any order becomes paid, however it was paid (cash at
    the service point, a Stripe Checkout Session, a sales point's sale): one guarded UPDATE … RETURNING of the
    order (by id, or by its Checkout Session) that is still pending, placed to be paid this way, for exactly this
    amount and currency; it takes the order's row lock, as `lock` would. Then its timeline line, at `at`, and
    its buyer told. None — nothing changed — when the payment does not fit (`payment_problem` says why).
    The caller posts the sale (`sold_units`), at the same `at`."""
    if user_id is not None and not workflow.may(PAY, workflow.back_office_roles(_actor(user_id))):
        raise InvalidTransition(_("您不能登记这笔收款。"))
    if (order_id is None) == (session_id is None):
        raise ValueError("pay() takes an order id or a Checkout Session id")
    params = {"b_method": method, "b_amount": amount_fen, "b_currency": (currency or "").lower(), "b_at": at,
              "b_reference": reference or None, "b_intent": payment_intent_id or None}
    if order_id is not None:
        row = db.session.execute(_PAY["order"], {**params, "b_order": order_id}).first()
    else:
        row = db.session.execute(_PAY["session"], {**params, "b_session": session_id}).first()
    if row is None:
        return None
    paid_id, buyer_id, placed_at, total_fen, paid_method = row
    paid = PaidOrder(paid_id, buyer_id, order_number(placed_at, paid_id), int(total_fen), paid_method, at)
    record_event(paid, PAY.target, before="pending_payment", user_id=user_id, note=reference, at=at)
    if paid_method != "point":  # a sales point's buyer paid and left; the operator is not told of each melon
        _tell_paid(db.session.get(User, buyer_id), paid.id, paid.number, paid.total_fen, at)
    return paid


def payment_problem(order: Order, amount_fen: int, currency: str) -> str | None:
    """Why a payment cannot pay an order (for the manager's list of things to check), or None when it can."""
    if order.is_paid:
        return None
    if amount_fen != order.total_fen or (currency or "").lower() != order.currency:
        return (f"payment of {amount_fen} {currency} does not match the order total {order.total_fen} "
                f"{order.currency}; not marked paid")
    if order.status not in PAY.sources:
        return f"payment of {amount_fen} {currency} received while the order is {order.status}; refund it"
    return None


def sold_units(order_id: int) -> list[SoldUnits]:
    """`sale_items` of an order not loaded: one query, the same units in the same order (line, then
    allocation)."""
    rows = db.session.execute(
        select(Allocation.id, Allocation.line_id, Allocation.household_id, Allocation.enterprise_id, Allocation.sold,
               OrderLine.unit_price_fen, OrderLine.scale)
        .join(OrderLine, OrderLine.id == Allocation.line_id)
        .where(OrderLine.order_id == order_id, Allocation.sold > 0).order_by(OrderLine.id, Allocation.id))
    return [SoldUnits(*row) for row in rows]


def check_offline_payment(order: Order, reference: str) -> str:
    """The manager records cash or a transfer at the service point: the receipt number, for an offline order
    still awaiting payment."""
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写收据号。"))
    if order.payment_method != "offline":
        raise ValidationFailed.on("reference", _("该订单选择了在线支付，不能登记线下收款。"))
    if order.is_paid:
        raise InvalidTransition(_("该订单已付款，不能重复收款。"))
    if order.status != "pending_payment":
        raise InvalidTransition(_("订单当前状态为“%(s)s”，不能收款。", s=status_label(order.status)))
    return reference


@dataclass(frozen=True)
class SoldUnits:
    """What a sale credits: one allocation's units, its supplier and the price (what the ledger posts)."""

    allocation_id: int
    line_id: int
    household_id: int | None
    enterprise_id: int | None
    quantity: int
    unit_price_fen: int
    scale: int = 1  # smallest units per priced unit (10: a weight line in tenths of a 斤)


def sale_items(order: Order) -> list[SoldUnits]:
    """The units an order sold — allocations less what was released before the sale — per supplier."""
    return [SoldUnits(a.id, line.id, a.household_id, a.enterprise_id, a.sold, line.unit_price_fen,
                      line.scale) for line in order.lines for a in line.allocations if a.sold > 0]


# --- fulfilment -------------------------------------------------------------------------------------------

def pack(order: Order, *, user_id: int, at: datetime | None = None) -> None:
    order = lock(order)
    transition(order, "pack", user_id=user_id, at=at)
    if order.pickup_point is not None:
        notices.notify([order.buyer], "ready_for_pickup", f"ready:{order.id}", _("订单 %(n)s 已备好", n=order.number),
                       _("请到 %(p)s 领取（%(a)s）。", p=order.pickup_point.name, a=order.pickup_point.address),
                       order_link(order), at=at)
    else:
        notices.notify([order.buyer], "out_for_delivery", f"ready:{order.id}", _("订单 %(n)s 已备好", n=order.number),
                       _("服务点将把它送到：%(a)s。", a=order.delivery_address or ""), order_link(order), at=at)


# --- telling people -----------------------------------------------------------------------------------------

def order_link(order: Order) -> str:
    return order_path(order.id)


def order_path(order_id: int) -> str:
    return f"/orders/{order_id}"


def tell_placed(order: Order, buyer: User, *, at: datetime | None = None) -> None:
    """A new order, for the service point: its managers and, if set up, its group chat."""
    lines = "、".join(f"{line.product.name} × {line.quantity}" for line in order.lines)
    notices.notify(notices.managers(), "order_placed", f"placed:{order.id}",
                   _("新订单 %(n)s · %(t)s", n=order.number, t=format_fen(order.total_fen)),
                   _("%(b)s：%(l)s（%(m)s）", b=buyer.display_name, l=lines, m=label("payment_method", order.payment_method)),
                   order_link(order), group=True, at=at)


def _tell_paid(buyer: User, order_id: int, number: str, total_fen: int, at: datetime | None) -> None:
    notices.notify([buyer], "payment_recorded", f"paid:{order_id}", _("订单 %(n)s 已收款 %(t)s", n=number,
                                                                      t=format_fen(total_fen)),
                   _("服务点正在为您配货，备好后会通知您。"), order_path(order_id), group=True, at=at)


def tell_holds_ending(now: datetime, within: timedelta = timedelta(hours=1)) -> int:
    """Each unpaid order whose hold ends within the hour: its buyer is told once."""
    ending = db.session.scalars(
        select(Order).where(Order.status == "pending_payment", Order.awaiting_async_payment.is_(False),
                            Order.reserved_until > now, Order.reserved_until <= now + within)
        .options(selectinload(Order.buyer)).order_by(Order.id)).all()
    told = 0
    for order in ending:
        told += notices.notify([order.buyer], "hold_expiring", f"hold:{order.id}",
                               _("订单 %(n)s 的保留即将到期", n=order.number),
                               _("请在 %(t)s 前付款，否则商品会放回库存。", t=local_dt(order.reserved_until, "HH:mm")),
                               order_link(order), at=now)
    return told


def hand_over(order: Order, *, user_id: int, to: str, at: datetime | None = None) -> None:
    """The buyer (or whoever they sent) collected the order: its units leave the service point."""
    to = (to or "").strip()
    if not to or len(to) > 80:
        raise ValidationFailed.on("handed_over_to", _("请填写领取人。"))
    order = lock(order)
    transition(order, "hand_over", user_id=user_id, note=to, at=at, handed_over_to=to)
    dispatch_held(order, user_id=user_id)


def dispatch_held(order: Order, *, user_id: int | None) -> None:
    """Every unit the order still holds leaves its lot's reserve (the order is under its lock)."""
    for line in order.lines:
        for allocation in sorted(line.allocations, key=lambda a: a.lot_id):
            if allocation.held > 0:
                inventory.dispatch(allocation.lot_id, allocation.held, reference=f"order:{order.id}",
                                   user_id=user_id)
    db.session.flush()


# --- refunds -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefundedUnits(SoldUnits):
    refunded_before: int = 0  # units of this allocation refunded by earlier refunds
    value_fen: int = 0        # what these units give back: their share of the line's value refunded


@dataclass
class RefundOutcome:
    refund: Refund
    items: list[RefundedUnits]
    order: Order

    @property
    def method(self) -> str:
        return self.refund.method


@dataclass
class _RefundPlan:
    picks: list[tuple[Allocation, int, int]] = field(default_factory=list)  # (allocation, units, value in fen)
    per_line: dict[int, int] = field(default_factory=dict)
    amount_fen: int = 0


def refund_value(line: OrderLine, held: int, units: int) -> int:
    """What `units` of a line give back when `held` of its units are still sold: the line's value now less its
    value after — so however a weighed line is refunded, in however many steps, what is left is always worth
    exactly its units × price rounded once (`value_fen`), to the fen. By the piece, units × price."""
    return value_fen(held, line.unit_price_fen, line.scale) - value_fen(held - units, line.unit_price_fen, line.scale)


def _pool(line: OrderLine, named: list[int] | None) -> list[Allocation]:
    if named:
        return [a for a in line.allocations if a.id in set(named)]
    return sorted(line.allocations, key=lambda a: a.id, reverse=True)  # the latest-allocated first


def plan_refund(order: Order, wanted: dict[int, int], *, lots: dict[int, list[int]] | None = None,
                extra_fen: int = 0) -> _RefundPlan:
    """Which allocations give back which units, and for how much — or a clear refusal. Writes nothing."""
    if order.payment_status not in workflow.REFUNDABLE:
        raise InvalidTransition(_("只有已付款的订单可以退款。"))
    lines = {line.id: line for line in order.lines}
    plan = _RefundPlan()
    for line_id, quantity in wanted.items():
        line = lines.get(line_id)
        if line is None:
            raise ValidationFailed.on("lines", _("订单中没有这一行。"))
        if quantity == 0:
            continue
        inventory.check_quantity(quantity)
        left = line.quantity - line.refunded_quantity
        if quantity > left:
            raise ValidationFailed.on(f"line_{line_id}", _("%(p)s 最多还能退 %(q)s。", p=line.product.name,
                                                           q=format_quantity(left, line)))
        need, held = quantity, sum(a.held for a in line.allocations)
        for allocation in _pool(line, (lots or {}).get(line_id)):
            take = min(need, allocation.held)
            if take > 0:
                plan.picks.append((allocation, take, refund_value(line, held, take)))
                need, held = need - take, held - take
        if need:
            raise ValidationFailed.on(f"line_{line_id}", _("所选批次中可退的数量不足。"))
        plan.per_line[line_id] = quantity
    if not plan.picks and not extra_fen:
        raise ValidationFailed.on("lines", _("请填写要退的数量。"))
    # the plan's own figure, computed in memory; the order's counters move by guarded UPDATEs (_count_refund)
    plan.amount_fen = sum(value for _allocation, _units, value in plan.picks) + extra_fen
    if order.refunded_fen + plan.amount_fen > order.total_fen:
        raise ValidationFailed.on("lines", _("退款金额不能超过已付金额。"))
    return plan


def _count_refund(order: Order, plan: _RefundPlan) -> None:
    """The order's and its lines' refund counters, each one atomic UPDATE guarded by what was sold."""
    for line_id, quantity in sorted(plan.per_line.items()):
        result = db.session.execute(
            update(OrderLine).where(OrderLine.id == line_id, OrderLine.refunded_quantity + quantity <= OrderLine.quantity)
            .values(refunded_quantity=OrderLine.refunded_quantity + quantity)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise Conflict(_("退款数量已变化，请刷新后重试。"))
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.refunded_fen + plan.amount_fen <= Order.total_fen)
        .values(refunded_fen=Order.refunded_fen + plan.amount_fen).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ValidationFailed.on("lines", _("退款金额不能超过已付金额。"))


def refund(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int | None,
           lots: dict[int, list[int]] | None = None, reason: str | None = None,
           stripe_refund_id: str | None = None, method: str | None = None, extra_fen: int = 0) -> RefundOutcome:
    """Refund units by line. The units come from the lots the manager names (allocation ids per line),
    otherwise the latest-allocated first; spoiled goods are not restocked. `extra_fen` is money refunded
    beyond whole units (only a refund made in Stripe's dashboard has any). The caller posts the outcome's
    items to the ledger."""
    order = lock(order)
    plan = plan_refund(order, wanted, lots=lots, extra_fen=extra_fen)
    if method is None:
        method = order.payment_method if order.payment_method in ("stripe", "account") else "offline"
    # a card refund made here is sent to Stripe once this unit of work commits; one made in Stripe has been
    stripe_status = None if method != "stripe" else "sent" if stripe_refund_id else "to_send"
    record = Refund(order_id=order.id, amount_fen=plan.amount_fen, method=method, restock=restock, reason=reason,
                    user_id=user_id, stripe_refund_id=stripe_refund_id, stripe_status=stripe_status)
    db.session.add(record)
    db.session.flush()
    items = []
    for allocation, quantity, value in sorted(plan.picks, key=lambda pick: pick[0].lot_id):
        before = allocation.refunded_quantity
        _take_back(allocation, quantity, column="refunded_quantity")
        db.session.add(RefundLine(refund_id=record.id, allocation_id=allocation.id, quantity=quantity))
        items.append(RefundedUnits(allocation.id, allocation.line_id, allocation.household_id, allocation.enterprise_id,
                                   quantity, allocation.line.unit_price_fen, allocation.line.scale,
                                   refunded_before=before, value_fen=value))
        _give_back_stock(order, allocation.lot_id, quantity, restock=restock, reference=f"refund:{record.id}",
                         user_id=user_id)
    _count_refund(order, plan)
    db.session.flush()
    order = lock(order)  # the counters as they now are
    everything = all(line.refunded_quantity == line.quantity for line in order.lines)
    move_payment(order, "refunded" if everything else "partially_refunded", user_id=user_id, note=reason)
    if everything and workflow.find(order.flow, order.status, "close"):
        transition(order, "close", user_id=user_id, note=reason)  # nothing left to pack or hand over
    db.session.refresh(record)
    audit("refund", order, f"{record.amount_fen} fen, restock={restock}", user_id=user_id)
    return RefundOutcome(record, items, order)


def _units_worth(line: OrderLine, held: int, most: int, amount_fen: int) -> int:
    """The most units (at most `most`) whose refund is worth no more than `amount_fen` (a bisection: the value
    grows with the units)."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        if refund_value(line, held, mid) <= amount_fen:
            low = mid
        else:
            high = mid - 1
    return low


def _give_back_stock(order: Order, lot_id: int, quantity: int, *, restock: bool, reference: str,
                     user_id: int | None) -> None:
    if order.dispatched:
        if restock:  # the goods had left: sellable ones come back onto their lot
            inventory.restock_returned(lot_id, quantity, reference=reference, user_id=user_id)
    else:  # still at the service point: no longer held (and written off if spoiled)
        inventory.release(lot_id, quantity, reference=reference, user_id=user_id, restock=restock)


def refund_amount_only(order: Order, amount_fen: int, *, stripe_refund_id: str,
                       user_id: int | None = None) -> RefundOutcome:
    """A refund made in Stripe's dashboard: no lines named, so the latest-allocated whole units are
    reversed; anything that is not a whole number of units is flagged and borne by the platform."""
    order = lock(order)
    wanted: dict[int, int] = {}
    left = amount_fen
    held = {line.id: sum(a.held for a in line.allocations) for line in order.lines}
    for allocation in sorted((a for line in order.lines for a in line.allocations), key=lambda a: a.id, reverse=True):
        line = allocation.line
        units = _units_worth(line, held[line.id], min(allocation.held, held[line.id]), left)
        if units > 0:
            wanted[line.id] = wanted.get(line.id, 0) + units
            left -= refund_value(line, held[line.id], units)
            held[line.id] -= units
    if left:
        flag(order, f"Stripe refund {stripe_refund_id}: {left} fen are not a whole number of units; "
                    "the platform bears them")
    return refund(order, wanted, restock=False, user_id=user_id, stripe_refund_id=stripe_refund_id,
                  reason="refunded in Stripe", method="stripe", extra_fen=left)


# --- verification ------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """The orders' own counters agree with the rows behind them: each order's refunded amount is the sum
    of its refunds, each line's and allocation's refunded units those of its refund lines, and each lot's
    reserved units the units held by orders whose goods have not left."""
    problems: list[str] = []
    refunds = select(Refund.order_id, func.sum(Refund.amount_fen).label("total")).group_by(Refund.order_id).subquery()
    for order_id, kept, total in db.session.execute(
            select(Order.id, Order.refunded_fen, func.coalesce(refunds.c.total, 0))
            .outerjoin(refunds, refunds.c.order_id == Order.id)
            .where(Order.refunded_fen != func.coalesce(refunds.c.total, 0))):
        problems.append(f"order {order_id}: refunded {kept} fen but its refunds add up to {total} fen")
    by_allocation = (select(RefundLine.allocation_id, func.sum(RefundLine.quantity).label("units"))
                     .group_by(RefundLine.allocation_id).subquery())
    for allocation_id, kept, units in db.session.execute(
            select(Allocation.id, Allocation.refunded_quantity, func.coalesce(by_allocation.c.units, 0))
            .outerjoin(by_allocation, by_allocation.c.allocation_id == Allocation.id)
            .where(Allocation.refunded_quantity != func.coalesce(by_allocation.c.units, 0))):
        problems.append(f"allocation {allocation_id}: {kept} units refunded but its refund lines say {units}")
    by_line = (select(Allocation.line_id, func.sum(Allocation.refunded_quantity).label("units"))
               .group_by(Allocation.line_id).subquery())
    for line_id, kept, units in db.session.execute(
            select(OrderLine.id, OrderLine.refunded_quantity, func.coalesce(by_line.c.units, 0))
            .outerjoin(by_line, by_line.c.line_id == OrderLine.id)
            .where(OrderLine.refunded_quantity != func.coalesce(by_line.c.units, 0))):
        problems.append(f"order line {line_id}: {kept} units refunded but its refund lines say {units}")
    held = (select(Allocation.lot_id, func.sum(Allocation.held).label("units"))
            .join(OrderLine, OrderLine.id == Allocation.line_id).join(Order, Order.id == OrderLine.order_id)
            .where(Order.status.not_in(workflow.DISPATCHED)).group_by(Allocation.lot_id).subquery())
    for lot_id, reserved, units in db.session.execute(
            select(Lot.id, Lot.reserved, func.coalesce(held.c.units, 0)).outerjoin(held, held.c.lot_id == Lot.id)
            .where(Lot.reserved != func.coalesce(held.c.units, 0)).order_by(Lot.id)):
        problems.append(f"lot {lot_id}: reserved {reserved} but orders not yet handed over hold {units}")
    return problems

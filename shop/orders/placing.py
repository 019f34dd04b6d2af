"""Placing an order: planned and priced by the server from the cart or given lines, then written and its stock
held — for the shop, a company's bulk order, a standing order or a sale at a sales point."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from .. import clock
from ..accounts.models import User
from ..catalog.models import PickupPoint, Product
from ..producers.models import Village
from ..errors import ValidationFailed
from ..extensions import db
from ..formatting import format_fen
from ..models_base import value_fen
from ..inventory import services as inventory
from .cart import MAX_CART_LINES, sellable
from .holds import expire_reservations
from .moves import record_event
from .telling import tell_placed
from .models import Allocation, CartItem, Order, OrderLine


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


def _open_point(pickup_point_id, today: date) -> PickupPoint:
    point = db.session.get(PickupPoint, pickup_point_id) if isinstance(pickup_point_id, int) else None
    if point is None or not point.active:
        raise ValidationFailed.on("pickup_point_id", _("请选择一个自提点。"))
    if not point.in_season(today):
        raise ValidationFailed.on("pickup_point_id", _("自提点 %(n)s 现在不开放。", n=point.name))
    return point


def _by_service_point(products: list[tuple[Product, int]]) -> list[list[tuple[Product, int]]]:
    """The goods split by the village service point that holds them, in the order they were listed: one order
    each, since each point packs and hands over its own."""
    parts: dict[int, list[tuple[Product, int]]] = {}
    for product, quantity in products:
        parts.setdefault(product.village_id, []).append((product, quantity))
    return list(parts.values())


def _handovers(user: User, parts: list[list[tuple[Product, int]]], pickup_point_ids: list, deliver_to_workplace: bool,
               today: date) -> list[tuple[PickupPoint | None, str | None]]:
    """(pickup point, delivery address) for each part: the workplace for all of them, or for each part a pickup
    point of its own service point — one given point per part, none left over."""
    if deliver_to_workplace:
        if user.organization is None:
            raise ValidationFailed.on("pickup_point_id", _("您没有所属单位，无法送货到单位。"))
        return [(None, user.organization.name)] * len(parts)
    points = [_open_point(point_id, today) for point_id in pickup_point_ids] or [_open_point(None, today)]
    by_village = {}
    for point in points:
        if point.village_id in by_village:
            raise ValidationFailed.on("pickup_point_id", _("每个服务点只选一个自提点。"))
        by_village[point.village_id] = point
    chosen = []
    for part in parts:
        village_id = part[0][0].village_id
        point = by_village.pop(village_id, None)
        if point is None:
            if len(parts) == 1 and len(points) == 1:
                raise ValidationFailed.on("pickup_point_id", _("自提点 %(n)s 不是这些商品所在服务点的自提点，请另选一个。",
                                                               n=points[0].name))
            village = db.session.get(Village, village_id)
            raise ValidationFailed.on("pickup_point_id", _("请为%(v)s服务点的商品选择一个它的自提点。",
                                                           v=village.name if village else ""))
        chosen.append((point, None))
    if by_village:
        raise ValidationFailed.on("pickup_point_id", _("自提点 %(n)s 不是购物车里商品所在服务点的自提点。",
                                                       n=next(iter(by_village.values())).name))
    return chosen


def plan_checkout(user: User, *, payment_method: str, pickup_point_id: int | None = None,
                  pickup_point_ids: list[int] | None = None, deliver_to_workplace: bool = False,
                  lines: list[tuple[int, int]] | None = None, at: datetime | None = None,
                  welfare_fen: int = 0) -> list[OrderPlan]:
    """Check and price a checkout — the cart, or the given (product id, quantity) lines — without writing: one
    order per village service point whose goods it holds, each handed over at one of that point's pickup points
    (`pickup_point_id` for a single point, `pickup_point_ids` one per service point) or at the workplace.
    `welfare_fen`: what the buyer's welfare grants will pay of it (the rest is what is paid online)."""
    _check_payment_method(payment_method)
    lines, from_cart = _lines_or_cart(user, lines)
    today = clock.local_day(at) if at else clock.today()
    ids = [product_id for product_id, _q in lines if isinstance(product_id, int) and not isinstance(product_id, bool)]
    loaded = db.session.scalars(select(Product).where(Product.id.in_(ids))).all()  # `sellable` finds them held
    products = [(sellable(product_id, today), inventory.check_quantity(quantity)) for product_id, quantity in lines]
    del loaded
    parts = _by_service_point(products)
    given = list(pickup_point_ids or []) if pickup_point_id is None else [pickup_point_id]
    handovers = _handovers(user, parts, given, deliver_to_workplace, today)
    plans = [OrderPlan(user, payment_method, point, address, part, from_cart, today)
             for part, (point, address) in zip(parts, handovers)]
    minimum = current_app.config["SHOP_STRIPE_MIN_FEN"]
    due = max(sum(plan.total_fen for plan in plans) - welfare_fen, 0)
    if payment_method == "stripe" and 0 < due < minimum:
        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请选择到服务点付款。",
                                                      m=format_fen(minimum)))
    return plans


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


def create_order(plan: OrderPlan, *, at: datetime | None = None, checkout_id: int | None = None) -> Order:
    """Write a checked order: its lines at the server's prices, its stock allocated and held while payment
    is pending (all or nothing); `checkout_id`, the first order of a checkout split across service points."""
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
    if checkout_id is not None:
        order.checkout_id = checkout_id
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


def place_checkout(user: User, *, payment_method: str, pickup_point_id: int | None = None,
                   pickup_point_ids: list[int] | None = None, deliver_to_workplace: bool = False,
                   lines: list[tuple[int, int]] | None = None, at: datetime | None = None,
                   welfare_fen: int = 0) -> list[Order]:
    """Place the cart (or the given lines): checked and priced by the server, then written as one order per
    service point, all or nothing. Parts of one checkout name its first order (`Order.checkout_id`), so an
    online payment pays them at once; each is packed, handed over and paid offline at its own point."""
    plans = plan_checkout(user, payment_method=payment_method, pickup_point_id=pickup_point_id,
                          pickup_point_ids=pickup_point_ids, deliver_to_workplace=deliver_to_workplace, lines=lines,
                          at=at, welfare_fen=welfare_fen)
    first = create_order(plans[0], at=at)
    placed = [first]
    if len(plans) > 1:
        first.checkout_id = first.id
        placed += [create_order(plan, at=at, checkout_id=first.id) for plan in plans[1:]]
        db.session.flush()
    return placed


def place_order(user: User, *, payment_method: str, pickup_point_id: int | None = None,
                deliver_to_workplace: bool = False, lines: list[tuple[int, int]] | None = None,
                at: datetime | None = None) -> Order:
    """Place goods of one service point as one order (a company's, a standing order's, the demo's); goods of
    several service points are refused here — `place_checkout` splits them."""
    plans = plan_checkout(user, payment_method=payment_method, pickup_point_id=pickup_point_id,
                          deliver_to_workplace=deliver_to_workplace, lines=lines, at=at)
    if len(plans) > 1:
        villages = {product.village_id for plan in plans for product, _quantity in plan.products}
        names = db.session.scalars(select(Village.name).where(Village.id.in_(villages)).order_by(Village.name)).all()
        raise ValidationFailed.on("cart", _("这些商品来自 %(v)s 几个村服务点，请分别下单。", v="、".join(names)))
    return create_order(plans[0], at=at)


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

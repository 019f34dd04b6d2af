"""Who sees an order, and the lists the service point works from: its tabs, search, counts and picklist."""
from __future__ import annotations

import re
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from .. import clock
from ..accounts.models import User
from ..catalog.models import PickupPoint, Product
from ..extensions import db
from ..formatting import measure
from ..inventory.models import Lot
from ..producers.models import Enterprise, Household
from . import workflow
from .models import Allocation, Order, OrderEvent, OrderLine


def visible_to(order: Order, user: User) -> bool:
    """Staff see their own orders; a company's buyers see their company's; a unit's coordinator the unit's orders
    on account; the back office sees all."""
    if user.role in ("manager", "admin"):
        return True
    return bool(workflow.roles_of(order, user) & {workflow.BUYER})


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
    """A buyer's orders, newest first: a staff member's own, a company buyer's company's, a unit coordinator's
    unit's orders on account."""
    return order_list_query().where(bought_by(user)).order_by(Order.id.desc())


def bought_by(user: User):
    """The orders `user` is the buyer of (`workflow.roles_of`), as a condition: their own; a company buyer's, the
    company's; a unit coordinator's, also the unit's orders on account."""
    if user.role == "company":
        return Order.organization_id == user.organization_id
    if user.role == "coordinator":
        return or_(Order.buyer_id == user.id, and_(Order.organization_id == user.organization_id,
                                                   Order.payment_method == "account"))
    return Order.buyer_id == user.id


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

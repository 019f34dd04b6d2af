"""Stock an order holds: given back when the order is cancelled or its hold expires."""
from __future__ import annotations

from datetime import datetime

from blinker import Namespace
from flask_babel import gettext as _
from sqlalchemy import bindparam, select, update

from .. import clock
from ..audit.services import record as audit
from ..errors import Conflict
from ..extensions import db
from ..inventory import services as inventory
from .moves import InvalidTransition, lock, transition
from .models import EXPIRED_NOTE, Allocation, Order, OrderLine


def take_back(allocation: Allocation, units: int, *, column: str) -> None:
    """Count `units` of an allocation as released or refunded, atomically and never beyond what it holds."""
    counter = getattr(Allocation, column)
    result = db.session.execute(
        update(Allocation).where(Allocation.id == allocation.id, Allocation.held >= units)
        .values({column: counter + units}).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict(_("该批次可退回的数量已变化，请刷新后重试。"))


def give_back(allocation: Allocation, units: int) -> None:
    """Units of an allocation that were not sold after all (refused at acceptance): counted as released."""
    take_back(allocation, units, column="released_quantity")


def release_all(order: Order, user_id: int | None) -> None:
    """Give every unit an order still holds back to its lot (the order is under its lock)."""
    for line in order.lines:
        for allocation in sorted(line.allocations, key=lambda a: a.lot_id):
            if allocation.held > 0:
                units = allocation.held
                take_back(allocation, units, column="released_quantity")
                inventory.release(allocation.lot_id, units, reference=f"order:{order.id}", user_id=user_id)
    db.session.flush()


# Sent as an unpaid order that drew on its buyer's welfare grants is cancelled, under the order's lock, in the same
# unit of work: the welfare domain (a layer above) gives the grants back what the order drew.
_signals = Namespace()
welfare_released = _signals.signal("order-welfare-released")


def cancel(order: Order, *, user_id: int | None, note: str | None = None) -> None:
    """Cancel an order before its goods are paid for or delivered: its stock goes back on the shelf, and what it
    drew on its buyer's welfare grants goes back to them (`welfare_released`)."""
    order = lock(order)
    was_paid = order.is_paid
    transition(order, "cancel", user_id=user_id, note=note)
    release_all(order, user_id)
    if order.welfare_fen and not was_paid:
        if not welfare_released.receivers:
            raise RuntimeError("an order paid from welfare was cancelled with nothing to give the welfare back")
        welfare_released.send(order, user_id=user_id)
    audit("order.cancel", order, note, user_id=user_id)


def checkout_parts(order: Order) -> list[Order]:
    """The orders of `order`'s checkout, first to last: itself alone unless the checkout was split across
    service points."""
    if order.checkout_id is None:
        return [order]
    return list(db.session.scalars(select(Order).where(Order.checkout_id == order.checkout_id).order_by(Order.id)))


def cancel_checkout(order: Order, *, user_id: int | None, note: str | None = None) -> list[int]:
    """Cancel an order. A checkout paid online is one payment, whichever service points fill it: its other unpaid
    parts are cancelled with it (locked first to last, as every path that takes them locks them), since its one
    Checkout Session can no longer be paid in part. (A village's manager cancels only their own village's part:
    the session is expired after the commit, and Stripe's notice of it cancels the other parts, or they lapse.)
    The ids cancelled."""
    parts = [order]
    if order.payment_method == "stripe" and order.checkout_id is not None:
        parts = [part for part in checkout_parts(order)
                 if part.id == order.id or part.status == "pending_payment"]
    for part in parts:
        cancel(part, user_id=user_id, note=note)
    return [part.id for part in parts]


# Lapsed holds are found from the index on (status, reserved_until) — a few rows — and only then checked for the
# products asked about: driven from the lines instead, the query would read every line ever sold of them.
_LAPSED = select(Order.id).where(Order.status == "pending_payment", Order.reserved_until < bindparam("now"),
                                 Order.awaiting_async_payment.is_(False))
_LAPSED_OF_PRODUCTS = _LAPSED.where(
    select(OrderLine.id).where(OrderLine.order_id == Order.id,
                               OrderLine.product_id.in_(bindparam("product_ids", expanding=True))).exists())


def expire_reservations(*, product_ids=None, now: datetime | None = None) -> list[int]:
    """Cancel pending orders whose reservation has run out (not those awaiting an async payment).

    Safe to run from cron on several hosts at once: each cancellation is a guarded transition, so an
    order is cancelled (and its stock released) exactly once.
    """
    now = now or clock.now()
    if product_ids:
        due = db.session.scalars(_LAPSED_OF_PRODUCTS, {"now": now, "product_ids": sorted(product_ids)}).all()
    else:
        due = db.session.scalars(_LAPSED, {"now": now}).all()
    if not due:  # the usual answer, on the path of every order placed: one light query
        return []
    expired = []
    for order in db.session.scalars(select(Order).where(Order.id.in_(due)).order_by(Order.id)).all():
        if order.id in expired:
            continue  # a part of an online checkout, cancelled with its first part
        try:
            expired += cancel_checkout(order, user_id=None, note=EXPIRED_NOTE)
        except InvalidTransition:
            continue  # another host or a payment got there first
    return expired

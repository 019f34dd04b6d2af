"""The state machine: every move of an order is one of `workflow.MOVES`, made by `transition` as a guarded
UPDATE whose row count is checked; the order's row lock; fulfilment (packing, handing over)."""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from .. import clock
from ..accounts.models import User
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..inventory import services as inventory
from ..glossary import label
from ..sqlwrite import lock_row
from . import workflow
from .telling import tell_ready
from .models import Order, OrderEvent, OrderLine


class InvalidTransition(Conflict):
    code = "invalid_transition"


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


def actor(user_id: int | None) -> User | None:
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
    if not workflow.may(move, workflow.roles_of(order, actor(user_id))):
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


def flag(order: Order, reason: str) -> None:
    """Put the order on the manager's list of things to check (appended in SQL: nothing is lost)."""
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(review_reason=func.coalesce(Order.review_reason + "\n", "") + reason)
                       .execution_options(synchronize_session=False))
    db.session.flush()
    db.session.refresh(order)


# --- fulfilment

def pack(order: Order, *, user_id: int, at: datetime | None = None) -> None:
    order = lock(order)
    transition(order, "pack", user_id=user_id, at=at)
    tell_ready(order, at=at)


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

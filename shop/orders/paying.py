"""An order becoming paid: the one guarded UPDATE every way of paying goes through (`pay`), and the units it
sold, read in one query, for the ledger."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import String, and_, bindparam, func, select, update

from ..errors import ValidationFailed
from ..extensions import db
from ..notifications.services import recipient
from . import workflow
from .moves import InvalidTransition, actor, record_event, status_label
from .telling import tell_paid
from .models import Allocation, Order, OrderLine, order_number


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
    welfare_fen: int = 0  # of the total, paid from the buyer's welfare grants


def _pay_statement(by):
    """The move `pay` as one guarded UPDATE … RETURNING (built once; what it is given is bound per use): the
    order, still pending, paid the way it was placed to be paid, for exactly what is due (its total less what
    welfare grants paid) and its currency."""
    return (update(Order).where(by, Order.status.in_(sorted(PAY.sources)), Order.payment_method == bindparam("b_method"),
                                Order.total_fen - Order.welfare_fen == bindparam("b_amount"), Order.currency == bindparam("b_currency"))
            .values(status=PAY.target, paid_at=bindparam("b_at"), payment_status="paid",
                    payment_reference=func.coalesce(bindparam("b_reference", type_=String), Order.payment_reference),
                    stripe_payment_intent_id=func.coalesce(bindparam("b_intent", type_=String),
                                                           Order.stripe_payment_intent_id),
                    awaiting_async_payment=False)
            .returning(Order.id, Order.buyer_id, Order.placed_at, Order.total_fen, Order.payment_method,
                       Order.welfare_fen)
            .execution_options(synchronize_session=False))


_PAY = {"order": _pay_statement(Order.id == bindparam("b_order")),
        # by session only an order that is its own checkout: a split checkout's parts are paid one by one, together
        "session": _pay_statement(and_(Order.stripe_session_id == bindparam("b_session"), Order.checkout_id.is_(None)))}


def pay(*, method: str, amount_fen: int, currency: str, at: datetime, order_id: int | None = None,
        session_id: str | None = None, reference: str | None = None, payment_intent_id: str | None = None,
        user_id: int | None = None) -> PaidOrder | None:
    """The move `pay` of the transition table — the one way any order becomes paid, however it was paid (cash at
    the service point, a Stripe Checkout Session, a sales point's sale): one guarded UPDATE … RETURNING of the
    order (by id, or by its Checkout Session) that is still pending, placed to be paid this way, for exactly this
    amount and currency; it takes the order's row lock, as `lock` would. Then its timeline line, at `at`, and
    its buyer told. None — nothing changed — when the payment does not fit (`payment_problem` says why).
    The caller posts the sale (`sold_units`), at the same `at`."""
    if user_id is not None and not workflow.may(PAY, workflow.back_office_roles(actor(user_id))):
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
    paid_id, buyer_id, placed_at, total_fen, paid_method, welfare_fen = row
    paid = PaidOrder(paid_id, buyer_id, order_number(placed_at, paid_id), int(total_fen), paid_method, at,
                     int(welfare_fen))
    record_event(paid, PAY.target, before="pending_payment", user_id=user_id, note=reference, at=at)
    if paid_method != "point":  # a sales point's buyer paid and left; the operator is not told of each melon
        tell_paid(recipient(buyer_id), paid.id, paid.number, paid.total_fen, at)
    return paid


def payment_problem(order: Order, amount_fen: int, currency: str) -> str | None:
    """Why a payment cannot pay an order (for the manager's list of things to check), or None when it can."""
    if order.is_paid:
        return None
    if amount_fen != order.due_fen or (currency or "").lower() != order.currency:
        return (f"payment of {amount_fen} {currency} does not match what the order has due, {order.due_fen} "
                f"{order.currency}; not marked paid")
    if order.status not in PAY.sources:
        return f"payment of {amount_fen} {currency} received while the order is {order.status}; refund it"
    return None


def sold_units(order_id: int) -> list[SoldUnits]:
    """The units an order sold — allocations less what was released before the sale — per supplier, in one query,
    line by line then allocation by allocation: the one definition of "units sold" every posting of a sale
    reads."""
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

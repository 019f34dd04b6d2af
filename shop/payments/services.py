"""Payments: money arriving (Stripe's events, cash at the service point) and going back (refunds).

This is where an order's state and the ledger meet: orders decides what was sold or refunded, the ledger
posts exactly that, in the same unit of work. Each Stripe event id takes effect once, in the same
transaction as its effects. Events may arrive late, twice, concurrently or in any order; the order's state
machine only moves forwards, so every ordering ends in the same state.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Callable

import marshmallow as ma

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from .. import clock
from ..audit.services import record as audit
from ..errors import ValidationFailed
from ..edge import MAX_ID as MAX_ORDER_ID
from ..extensions import db
from ..formatting import format_fen
from ..ledger import services as ledger
from ..orders import services as orders
from ..orders.models import Order, Refund
from ..sqlhelpers import insert_ignoring_conflicts
from ..links import absolute_url
from . import stripe_gateway as gateway
from .models import ProcessedStripeEvent


# --- money in -----------------------------------------------------------------------------------------

def post_sale(order: Order, *, debit, user_id: int | None = None, at: datetime | None = None) -> None:
    """Post what the order sold to its suppliers' ledgers, debiting `debit` (cash, Stripe or a company)."""
    ledger.post_sale(order.id, orders.sale_items(order), debit=debit, user_id=user_id, at=at)


def record_payment(order: Order, *, amount_fen: int, currency: str, method: str, user_id: int | None = None,
                   reference: str | None = None, payment_intent_id: str | None = None,
                   at: datetime | None = None) -> bool:
    """The money for an order has arrived: it becomes paid and its sale posts. False (and the order is
    flagged) when the payment does not fit the order."""
    order = orders.lock(order)
    paid = orders.mark_paid(order, amount_fen=amount_fen, currency=currency, user_id=user_id, reference=reference,
                            payment_intent_id=payment_intent_id, at=at)
    if paid:
        post_sale(order, debit=ledger.sale_debit(method), user_id=user_id, at=at)
        audit("payment", order, f"{method} {amount_fen} fen {reference or ''}".strip(), user_id=user_id)
    return paid


def confirm_offline_payment(order: Order, *, reference: str, user_id: int, at: datetime | None = None) -> None:
    """The buyer paid cash or by transfer at the service point; the manager records the receipt number."""
    order = orders.lock(order)
    reference = orders.check_offline_payment(order, reference)
    record_payment(order, amount_fen=order.total_fen, currency=order.currency, method="offline", user_id=user_id,
                   reference=reference, at=at)


# --- money back ------------------------------------------------------------------------------------------

def _refund_credit(outcome: orders.RefundOutcome):
    if outcome.method == "stripe":
        return ledger.platform_account("stripe_cash")
    if outcome.method == "account":
        return ledger.company_account(outcome.order.organization_id)
    return ledger.platform_account("cash_on_hand")


def post_refund(outcome: orders.RefundOutcome, *, user_id: int | None) -> None:
    record = outcome.refund
    try:
        ledger.post_refund(record.id, record.order_id, outcome.items, amount_fen=record.amount_fen,
                           credit=_refund_credit(outcome), user_id=user_id)
    except ledger.ExceedsBalance:
        owed = ledger.kept_balance(ledger.company_account(outcome.order.organization_id))
        raise ledger.ExceedsBalance(_("该企业的应收余额只剩 %(o)s，不能冲减这笔退款；请通过银行转账退还。",
                                      o=format_fen(owed))) from None


def refund_order(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int,
                 lots: dict[int, list[int]] | None = None, reason: str | None = None) -> Refund:
    """Refund units of an order; for a card/wallet payment the money goes back through Stripe."""
    paid_before = orders.lock(order).refunded_fen
    outcome = orders.refund(order, wanted, restock=restock, user_id=user_id, lots=lots, reason=reason)
    post_refund(outcome, user_id=user_id)
    record = outcome.refund
    if record.method == "stripe":
        if not order.stripe_payment_intent_id:
            raise ValidationFailed.on("lines", _("找不到该订单的在线支付记录，无法原路退款。"))
        result = gateway.refund(payment_intent=order.stripe_payment_intent_id, amount_fen=record.amount_fen,
                                idempotency_key=f"order-{order.id}-refund-{paid_before}-{record.amount_fen}",
                                order_id=order.id)
        record.stripe_refund_id = result["id"]
        db.session.flush()
    return record


# --- Stripe's events --------------------------------------------------------------------------------------

MAX_EVENT_FEN = 10**12  # far above any order: an amount beyond it is not an amount of ours
_id_text = dict(validate=ma.validate.Length(1, 255))


class _Session(ma.Schema):
    """The part of a Checkout Session the handlers read; anything else in it is ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    id = ma.fields.String(required=True, **_id_text)
    client_reference_id = ma.fields.String(allow_none=True, validate=ma.validate.Regexp(r"^[0-9]{1,10}$"))
    metadata = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(allow_none=True), allow_none=True)
    payment_status = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=40))
    amount_total = ma.fields.Integer(strict=True, allow_none=True, validate=ma.validate.Range(0, MAX_EVENT_FEN))
    currency = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=3))
    payment_intent = ma.fields.String(allow_none=True, **_id_text)


class _Charge(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    id = ma.fields.String(required=True, **_id_text)
    payment_intent = ma.fields.String(allow_none=True, **_id_text)
    amount = ma.fields.Integer(strict=True, allow_none=True, validate=ma.validate.Range(0, MAX_EVENT_FEN))
    amount_refunded = ma.fields.Integer(strict=True, allow_none=True, validate=ma.validate.Range(0, MAX_EVENT_FEN))
    currency = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=3))


def _object_of(event: dict, schema: ma.Schema) -> dict:
    """The event's object, checked against what its handler reads (ma.ValidationError if it does not fit)."""
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise ma.ValidationError({"data": ["data.object must be an object"]})
    return schema.load(data["object"])


def _reference_order_id(session: dict) -> int | None:
    ref = session.get("client_reference_id") or (session.get("metadata") or {}).get("order_id")
    text = str(ref) if ref is not None else ""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ORDER_ID else None

def _order_for_session(session: dict) -> Order | None:
    order = None
    if session.get("id"):
        order = db.session.scalar(select(Order).where(Order.stripe_session_id == session["id"]))
    ref = _reference_order_id(session)
    if order is None and ref:
        order = db.session.get(Order, ref)
        # only an order whose own session id was never stored (a lost write) may be matched by reference
        if order is not None and (order.stripe_session_id or order.payment_method != "stripe"):
            return None
    return orders.lock(order) if order is not None else None


def _session_completed(session: dict):
    if session.get("payment_status") in ("paid", "no_payment_required") and session.get("id"):
        paid = _paid_at_once(session)
        if paid is not None:
            return paid, "paid"
    order = _order_for_session(session)
    if order is None:
        return None, "unknown order"
    if session.get("payment_status") in ("paid", "no_payment_required"):
        paid = record_payment(order, amount_fen=int(session.get("amount_total") or 0),
                              currency=session.get("currency") or "", method="stripe",
                              payment_intent_id=session.get("payment_intent"), reference=session.get("id"))
        return order, "paid" if paid else f"not paid ({order.status})"
    if order.status == "pending_payment":  # an async method (e.g. a bank debit) is still on its way
        db.session.execute(update(Order).where(Order.id == order.id).values(
            awaiting_async_payment=True, stripe_payment_intent_id=session.get("payment_intent"))
            .execution_options(synchronize_session=False))
        return order, "awaiting async payment"
    return order, f"ignored ({order.status})"


def _paid_at_once(session: dict) -> orders.PaidOrder | None:
    """The common case — a pending order's own session, paid in full — in a few statements: the guarded move to
    paid, the units sold read in one query, the sale posted. Anything else returns None and takes the path
    below, which locks and loads the order and decides (flags, late or repeated events, lost writes)."""
    amount = int(session.get("amount_total") or 0)
    paid = orders.pay_checkout_session(session["id"], amount_fen=amount, currency=session.get("currency") or "",
                                       payment_intent_id=session.get("payment_intent"))
    if paid is None:
        return None
    ledger.post_sale(paid.id, orders.sold_units(paid.id), debit=ledger.sale_debit("stripe"), at=paid.at)
    audit("payment", None, f"stripe {amount} fen {session['id']}", user_id=None, object_type="shop_order",
          object_id=paid.id)
    return paid


def _async_succeeded(session: dict) -> tuple[Order | None, str]:
    order = _order_for_session(session)
    if order is None:
        return None, "unknown order"
    paid = record_payment(order, amount_fen=int(session.get("amount_total") or 0),
                          currency=session.get("currency") or "", method="stripe",
                          payment_intent_id=session.get("payment_intent"), reference=session.get("id"))
    return order, "paid" if paid else f"not paid ({order.status})"


def _ends_unpaid(note: str):
    def handle(session: dict) -> tuple[Order | None, str]:
        order = _order_for_session(session)
        if order is None:
            return None, "unknown order"
        if order.status != "pending_payment":
            return order, f"ignored ({order.status})"  # never backwards: a paid order stays paid
        orders.cancel(order, user_id=None, note=note)
        return order, "cancelled"
    return handle


def _charge_refunded(charge: dict) -> tuple[Order | None, str]:
    intent = charge.get("payment_intent")
    order = db.session.scalar(select(Order).where(Order.stripe_payment_intent_id == intent)) if intent else None
    if order is None and intent:
        order_id = gateway.payment_intent_order_id(intent)
        order = db.session.get(Order, order_id) if order_id else None
        if order is not None and (order.stripe_payment_intent_id or order.payment_method != "stripe"):
            order = None  # that order was paid through another payment: not this charge's
    if order is None:
        return None, "unknown order"
    order = orders.lock(order)
    if order.status == "pending_payment":
        # the refund proves the charge succeeded: its completion notice is late or lost
        record_payment(order, amount_fen=int(charge.get("amount") or 0), currency=charge.get("currency") or "",
                       method="stripe", payment_intent_id=intent, reference=charge.get("id"))
    if not order.is_paid:
        orders.flag(order, f"Stripe refunded charge {charge.get('id')} of an order that is {order.status}")
        return order, "flagged"
    stripe_refunded = int(db.session.scalar(select(func.coalesce(func.sum(Refund.amount_fen), 0))
                                            .where(Refund.order_id == order.id, Refund.method == "stripe")))
    missing = int(charge.get("amount_refunded") or 0) - stripe_refunded
    if missing <= 0:
        return order, "already recorded"
    outcome = orders.refund_amount_only(order, missing,
                                        stripe_refund_id=f"{charge.get('id')}@{charge.get('amount_refunded')}")
    post_refund(outcome, user_id=None)
    return order, f"mirrored refund of {missing} fen"


HANDLERS = {  # event type → (what its object must look like, what to do with it)
    "checkout.session.completed": (_Session(), _session_completed),
    "checkout.session.async_payment_succeeded": (_Session(), _async_succeeded),
    "checkout.session.async_payment_failed": (_Session(), _ends_unpaid("async payment failed")),
    "checkout.session.expired": (_Session(), _ends_unpaid("checkout session expired")),
    "charge.refunded": (_Charge(), _charge_refunded),
}


def event_key(event: dict) -> str:
    """The event's id as it is recorded: Stripe's ids are short; a longer one (never Stripe's) is kept as its
    hash, so it is still recorded once."""
    event_id = str(event.get("id"))
    return event_id if len(event_id) <= 255 else "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def handle_event(event: dict) -> str:
    """Apply one event, once. The event's row is written first (INSERT … ON CONFLICT DO NOTHING): a concurrent
    duplicate waits on it and then finds it there, so it has no effect. An event whose object does not look like
    what its handler reads is recorded as rejected and changes nothing else — answered 200, like every event
    that was received, since Stripe would retry anything else for days and the event will never fit."""
    key = event_key(event)
    claimed = db.session.execute(insert_ignoring_conflicts(ProcessedStripeEvent.__table__).values(
        event_id=key, type=str(event.get("type"))[:80], processed_at=clock.now())
        .returning(ProcessedStripeEvent.event_id)).first()
    if claimed is None:
        return "duplicate"
    order, outcome = None, "ignored"
    if key != event.get("id"):
        outcome = "rejected: the event id is longer than Stripe's"
    elif (known := HANDLERS.get(event.get("type"))) is not None:
        schema, handler = known
        try:
            obj = _object_of(event, schema)
        except ma.ValidationError as err:
            outcome = f"rejected: {json.dumps(err.messages, ensure_ascii=False, sort_keys=True)}"
        else:
            order, outcome = handler(obj)
    db.session.execute(update(ProcessedStripeEvent).where(ProcessedStripeEvent.event_id == key).values(
        order_id=order.id if order is not None else None, outcome=outcome[:200]))
    db.session.flush()
    return outcome


def is_processed(event_id: str) -> bool:
    return db.session.get(ProcessedStripeEvent, event_id) is not None


def start_checkout(order: Order) -> str:
    """The URL of the order's Stripe Checkout page."""
    if not gateway.configured():
        raise ValidationFailed.on("payment_method", _("暂不支持在线支付，请到服务点付款。"))
    if order.payment_method != "stripe":
        raise ValidationFailed.on("payment_method", _("该订单选择了到服务点付款。"))
    if order.status != "pending_payment":
        raise orders.InvalidTransition(_("该订单无需付款（当前状态：%(s)s）。", s=orders.status_label(order.status)))
    minimum = current_app.config["SHOP_STRIPE_MIN_FEN"]
    if order.total_fen < minimum:
        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请到服务点付款。", m=format_fen(minimum)))
    session = gateway.create_checkout_session(
        order_id=order.id,
        # unique per order even if ids were ever reused (a restored backup): id + the moment it was placed
        idempotency_key=f"order-{order.id}-{order.placed_at:%Y%m%d%H%M%S%f}-checkout",
        lines=[(line.product.name, line.unit_price_fen, line.quantity) for line in order.lines],
        expires_at=order.reserved_until,
        success_url=absolute_url("orders.payment_return", order_id=order.id),
        cancel_url=absolute_url("orders.detail", order_id=order.id),
        wallets=current_app.config["SHOP_STRIPE_WALLETS"],
    )
    db.session.execute(update(Order).where(Order.id == order.id).values(stripe_session_id=session["id"])
                       .execution_options(synchronize_session=False))
    return session["url"]


def reconcile(since: datetime, *, unit: Callable) -> dict[str, int]:
    """Apply every event Stripe has since `since` that has not taken effect yet, each in its own unit of work
    (`unit`, the caller's)."""
    counts: dict[str, int] = {}
    for event in gateway.events_since(since):
        outcome = unit(lambda: handle_event(event))
        key = "skipped (already applied)" if outcome == "duplicate" else "applied"
        counts[key] = counts.get(key, 0) + 1
    return counts

"""Payment events: each Stripe event id takes effect once, in the same transaction as its effects.

Events may arrive late, twice, concurrently or in any order; the order's state machine only moves
forwards, so every ordering ends in the same state.
"""
from __future__ import annotations

from datetime import datetime

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import select, update

from ..errors import ValidationFailed
from ..extensions import db
from ..orders import services as orders
from ..orders.models import Order
from . import stripe_gateway as gateway
from .models import ProcessedStripeEvent


def _lock(order: Order) -> Order:
    """Take the order row's write lock first, so a refund being made right now finishes before we look."""
    db.session.execute(update(Order).where(Order.id == order.id).values(id=Order.id)
                       .execution_options(synchronize_session=False))
    db.session.refresh(order)
    return order


def _order_for_session(session: dict) -> Order | None:
    order = None
    if session.get("id"):
        order = db.session.scalar(select(Order).where(Order.stripe_session_id == session["id"]))
    ref = session.get("client_reference_id") or (session.get("metadata") or {}).get("order_id")
    if order is None and ref and str(ref).isdigit():
        order = db.session.get(Order, int(ref))
        # only an order whose own session id was never stored (a lost write) may be matched by reference
        if order is not None and (order.stripe_session_id or order.payment_method != "stripe"):
            return None
    return _lock(order) if order is not None else None


def _session_completed(session: dict) -> tuple[Order | None, str]:
    order = _order_for_session(session)
    if order is None:
        return None, "unknown order"
    if session.get("payment_status") in ("paid", "no_payment_required"):
        paid = orders.mark_paid(order, amount_fen=int(session.get("amount_total") or 0),
                                currency=session.get("currency") or "", method="stripe",
                                payment_intent_id=session.get("payment_intent"), reference=session.get("id"))
        return order, "paid" if paid else f"not paid ({order.status})"
    if order.status == "pending_payment":  # an async method (e.g. a bank debit) is still on its way
        db.session.execute(update(Order).where(Order.id == order.id).values(
            awaiting_async_payment=True, stripe_payment_intent_id=session.get("payment_intent"))
            .execution_options(synchronize_session=False))
        return order, "awaiting async payment"
    return order, f"ignored ({order.status})"


def _async_succeeded(session: dict) -> tuple[Order | None, str]:
    order = _order_for_session(session)
    if order is None:
        return None, "unknown order"
    paid = orders.mark_paid(order, amount_fen=int(session.get("amount_total") or 0),
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
    _lock(order)
    if order.status == "pending_payment":
        # the refund proves the charge succeeded: its completion notice is late or lost
        orders.mark_paid(order, amount_fen=int(charge.get("amount") or 0), currency=charge.get("currency") or "",
                         method="stripe", payment_intent_id=intent, reference=charge.get("id"))
    if not order.is_paid:
        orders.flag(order, f"Stripe refunded charge {charge.get('id')} of an order that is {order.status}")
        return order, "flagged"
    stripe_refunded = sum(r.amount_fen for r in order.refunds if r.method == "stripe")
    missing = int(charge.get("amount_refunded") or 0) - stripe_refunded
    if missing <= 0:
        return order, "already recorded"
    orders.refund_amount_only(order, missing, stripe_refund_id=f"{charge.get('id')}@{charge.get('amount_refunded')}")
    return order, f"mirrored refund of {missing} fen"


HANDLERS = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _async_succeeded,
    "checkout.session.async_payment_failed": _ends_unpaid("async payment failed"),
    "checkout.session.expired": _ends_unpaid("checkout session expired"),
    "charge.refunded": _charge_refunded,
}


def handle_event(event: dict) -> str:
    """Apply one event, once. The event row is written first, so a concurrent duplicate waits on it."""
    event_id = event["id"]
    if db.session.get(ProcessedStripeEvent, event_id) is not None:
        return "duplicate"
    record = ProcessedStripeEvent(event_id=event_id, type=str(event.get("type"))[:80])
    db.session.add(record)
    db.session.flush()
    handler = HANDLERS.get(event.get("type"))
    if handler is None:
        record.outcome = "ignored"
        return "ignored"
    obj = (event.get("data") or {}).get("object") or {}
    order, outcome = handler(obj)
    record.order_id = order.id if order is not None else None
    record.outcome = outcome[:200]
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
        from ..formatting import format_fen

        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请到服务点付款。", m=format_fen(minimum)))
    session = gateway.create_checkout_session(
        order_id=order.id,
        # unique per order even if ids were ever reused (a restored backup): id + the moment it was placed
        idempotency_key=f"order-{order.id}-{order.placed_at:%Y%m%d%H%M%S%f}-checkout",
        lines=[(line.product.name, line.unit_price_fen, line.quantity) for line in order.lines],
        expires_at=order.reserved_until,
        success_url=url_for("orders.payment_return", order_id=order.id, _external=True),
        cancel_url=url_for("orders.detail", order_id=order.id, _external=True),
        wallets=current_app.config["SHOP_STRIPE_WALLETS"],
    )
    db.session.execute(update(Order).where(Order.id == order.id).values(stripe_session_id=session["id"])
                       .execution_options(synchronize_session=False))
    return session["url"]


def reconcile(since: datetime) -> dict[str, int]:
    """Apply every event Stripe has since `since` that has not taken effect yet. Each in its own unit."""
    from ..unit_of_work import commit_with_retry

    counts: dict[str, int] = {}
    for event in gateway.events_since(since):
        outcome = "duplicate" if is_processed(event["id"]) else commit_with_retry(lambda: handle_event(event))
        key = "skipped (already applied)" if outcome == "duplicate" else "applied"
        counts[key] = counts.get(key, 0) + 1
    return counts


def refund_order(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int,
                 lots: dict[int, list[int]] | None = None, reason: str | None = None):
    """Refund units of an order; for a card/wallet payment the money goes back through Stripe."""
    paid_before = order.refunded_fen
    record = orders.refund(order, wanted, restock=restock, user_id=user_id, lots=lots, reason=reason)
    if record.method == "stripe":
        if not order.stripe_payment_intent_id:
            raise ValidationFailed.on("lines", _("找不到该订单的在线支付记录，无法原路退款。"))
        result = gateway.refund(payment_intent=order.stripe_payment_intent_id, amount_fen=record.amount_fen,
                                idempotency_key=f"order-{order.id}-refund-{paid_before}-{record.amount_fen}",
                                order_id=order.id)
        record.stripe_refund_id = result["id"]
        db.session.flush()
    return record

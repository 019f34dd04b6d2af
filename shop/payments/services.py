"""Payments: money arriving (Stripe's events, cash at the service point) and going back (refunds).

This is where an order's state and the ledger meet: orders decides what was sold or refunded, the ledger
posts exactly that, in the same unit of work. Each Stripe event id takes effect once, in the same
transaction as its effects. Events may arrive late, twice, concurrently or in any order; the order's state
machine only moves forwards, so every ordering ends in the same state.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import marshmallow as ma

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from .. import clock, edge
from ..audit.services import record as audit
from ..errors import ValidationFailed
from ..edge import MAX_ID as MAX_ORDER_ID
from ..extensions import db
from ..formatting import format_fen
from ..ledger import services as ledger
from ..orders import services as orders
from ..orders.models import Order, Refund
from ..welfare import services as welfare
from ..sqlwrite import insert_ignoring_conflicts
from ..links import absolute_url
from . import stripe_gateway as gateway
from .models import ProcessedStripeEvent


# --- money in -----------------------------------------------------------------------------------------

# Every way money for an order arrives: how the order was placed to be paid, and where the money now is.
WAYS = {
    "stripe": ("stripe", "stripe_cash"),            # a Stripe Checkout Session
    "offline": ("offline", "cash_on_hand"),         # cash or a transfer at the service point
    "point_cash": ("point", "point_cash"),          # cash into a sales point's till
    "point_late_cash": ("point", "cash_difference"),  # … of a day already closed: the count held it
    "grower_qr": ("point", "grower_direct"),        # paid to the grower's own payment code
    "welfare": (None, "welfare_held"),              # wholly from the buyer's welfare grants: nothing else due
}


def take_payment(way: str, *, amount_fen: int, currency: str, at: datetime | None = None,
                 order_id: int | None = None, session_id: str | None = None, reference: str | None = None,
                 payment_intent_id: str | None = None, user_id: int | None = None,
                 method: str | None = None) -> orders.PaidOrder | None:
    """The one paying step, whichever way an order is paid: the move `pay` (one guarded UPDATE of the order,
    `orders.pay`), the units it sold read in one query, the sale posted to the suppliers' ledgers and the daily
    rollups, and the audit line — all at the one moment `at`. None, having changed nothing, when the payment
    does not fit a pending order (the caller decides what that means). A sales point's sales carry no fee.
    What the buyer's welfare grants paid of the order is taken from the welfare drawn at placing; `amount_fen`
    is what is due beside it (for the way `welfare`, 0 — the order placed to be paid `method`)."""
    way_method, debit = WAYS[way]
    method = way_method or method
    at = at or clock.now()
    paid = orders.pay(method=method, amount_fen=amount_fen, currency=currency, at=at, order_id=order_id,
                      session_id=session_id, reference=reference, payment_intent_id=payment_intent_id, user_id=user_id)
    if paid is None:
        return None
    ledger.post_sale(paid.id, orders.sold_units(paid.id), debit=ledger.platform_account(debit), user_id=user_id,
                     at=at, fee_permille=0 if method == "point" else None, welfare_fen=paid.welfare_fen)
    audit("payment", None, f"{way} {amount_fen} fen {reference or ''}".strip(), user_id=user_id,
          object_type="shop_order", object_id=paid.id)
    return paid


def charge_on_account(order: Order, *, user_id: int | None, at: datetime) -> None:
    """A company's accepted delivery is charged to its account: the same posting as any payment — the units
    sold, in one query, at the moment of acceptance — debiting what the company owes."""
    ledger.post_sale(order.id, orders.sold_units(order.id), debit=ledger.company_account(order.organization_id),
                     user_id=user_id, at=at)


def record_payment(order: Order, *, amount_fen: int, currency: str, way: str, user_id: int | None = None,
                   reference: str | None = None, payment_intent_id: str | None = None,
                   at: datetime | None = None) -> bool:
    """Money for an order known by its row (a late or repeated notice, a manager's receipt): the one paying step;
    when the payment does not fit, the order is flagged for the manager with why, and nothing else changes.
    Returns whether it became paid."""
    order = orders.lock(order)
    paid = take_payment(way, amount_fen=amount_fen, currency=currency, at=at, order_id=order.id,
                        reference=reference, payment_intent_id=payment_intent_id, user_id=user_id)
    if paid is not None:
        db.session.refresh(order)
        return True
    problem = orders.payment_problem(order, amount_fen, currency)
    if problem:
        orders.flag(order, problem)
    return False


def confirm_offline_payment(order: Order, *, reference: str, user_id: int, at: datetime | None = None) -> None:
    """The buyer paid cash or by transfer at the service point; the manager records the receipt number."""
    order = orders.lock(order)
    reference = orders.check_offline_payment(order, reference)
    record_payment(order, amount_fen=order.due_fen, currency=order.currency, way="offline", user_id=user_id,
                   reference=reference, at=at)


# --- money back ------------------------------------------------------------------------------------------

def _refund_credit(outcome: orders.RefundOutcome):
    if outcome.method == "stripe":
        return ledger.platform_account("stripe_cash")
    if outcome.method == "account":
        return ledger.company_account(outcome.order.organization_id)
    return ledger.platform_account("cash_on_hand")


def post_refund(outcome: orders.RefundOutcome, *, user_id: int | None) -> None:
    """A refund in the ledger: the units' credits reversed, the money back the way it was paid — its welfare part
    first, to the buyer's grants or their fund (`welfare.refund_lines`)."""
    record = outcome.refund
    try:
        ledger.post_refund(record.id, record.order_id, outcome.items, amount_fen=record.amount_fen,
                           credit=_refund_credit(outcome), user_id=user_id, welfare=welfare.refund_lines(record))
    except ledger.ExceedsBalance:
        owed = ledger.kept_balance(ledger.company_account(outcome.order.organization_id))
        raise ledger.ExceedsBalance(_("该企业的应收余额只剩 %(o)s，不能冲减这笔退款；请通过银行转账退还。",
                                      o=format_fen(owed))) from None


def refund_order(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int,
                 lots: dict[int, list[int]] | None = None, reason: str | None = None) -> Refund:
    """Refund units of an order: recorded and posted to the ledger now. For a card or wallet payment the money goes
    back through Stripe after this unit of work commits (`send_refund`), never inside it: the refund's own id is
    its idempotency key, so however often the request is retried, Stripe refunds once."""
    orders.lock(order)
    outcome = orders.refund(order, wanted, restock=restock, user_id=user_id, lots=lots, reason=reason)
    post_refund(outcome, user_id=user_id)
    record = outcome.refund
    if record.method == "stripe" and not order.stripe_payment_intent_id:
        raise ValidationFailed.on("lines", _("找不到该订单的在线支付记录，无法原路退款。"))
    return record


@dataclass(frozen=True)
class RefundAsk:
    """A card refund recorded and not yet accepted by Stripe: what Stripe is asked, and the key that makes asking
    again the same request — fixed by the refund's own row, so no retry, of the request or of its unit of
    work, can refund twice."""

    refund_id: int
    order_id: int
    payment_intent: str
    amount_fen: int
    key: str


def refund_to_send(refund_id: int) -> RefundAsk | None:
    row = db.session.execute(
        select(Order.stripe_payment_intent_id, Refund.amount_fen - Refund.welfare_fen, Refund.order_id,
               Refund.created_at)
        .join(Order, Order.id == Refund.order_id).where(Refund.id == refund_id, Refund.stripe_status == "to_send")).first()
    if row is None:
        return None
    intent, amount, order_id, created_at = row
    # unique even if ids were ever reused (a restored backup): the id and the moment it was recorded
    return RefundAsk(refund_id, order_id, intent, amount, f"refund-{refund_id}-{created_at:%Y%m%d%H%M%S%f}")


def send_refund(refund_id: int, *, unit: Callable) -> bool:
    """Ask Stripe to give a recorded refund's money back — outside any database transaction (`unit`, the caller's
    unit of work, runs the read before the call and the write after it). True when Stripe has it; False leaves it
    to send again (the manager's button, or `flask payments send-refunds` from cron); the webhook settles it."""
    ask = unit(lambda: refund_to_send(refund_id))
    if ask is None:
        return True  # sent already, or not a Stripe refund
    try:
        result = gateway.refund(payment_intent=ask.payment_intent, amount_fen=ask.amount_fen, idempotency_key=ask.key,
                                order_id=ask.order_id, refund_id=ask.refund_id)
    except gateway.GatewayError as exc:
        current_app.logger.warning("refund %s not sent to Stripe: %s", refund_id, exc)
        if exc.refused:  # asking again will not help: the manager gives the money back another way
            why = str(exc)
            unit(lambda: refund_refused(refund_id, why))
        return False
    unit(lambda: refund_sent(refund_id, result["id"], result.get("status")))
    return True


def refund_refused(refund_id: int, why: str) -> None:
    _settle(refund_id, "failed", why=f"Stripe refused it: {why[:200]}")


def refund_sent(refund_id: int, stripe_refund_id: str, status: str | None) -> None:
    """Stripe has the refund: its id kept (once — a webhook may have matched it first)."""
    db.session.execute(update(Refund).where(Refund.id == refund_id, Refund.stripe_refund_id.is_(None))
                       .values(stripe_refund_id=stripe_refund_id).execution_options(synchronize_session=False))
    _settle(refund_id, status)


def _settle(refund_id: int, status: str | None, *, why: str = "") -> None:
    """A refund's Stripe state moves forwards only (to_send → sent → succeeded or failed); a failure is flagged
    for the manager once, when it happens."""
    settled = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(status or "", "sent")
    before = ("to_send",) if settled == "sent" else ("to_send", "sent")
    moved = db.session.execute(update(Refund).where(Refund.id == refund_id, Refund.stripe_status.in_(before))
                               .values(stripe_status=settled).execution_options(synchronize_session=False)).rowcount
    if moved and settled == "failed":
        order_id = db.session.scalar(select(Refund.order_id).where(Refund.id == refund_id))
        orders.flag(db.session.get(Order, order_id), f"Stripe did not make refund {refund_id}"
                                                     f"{': ' + why if why else ''}; the money was not returned — "
                                                     "give it back another way")


def refund_order_id(refund_id: int) -> int | None:
    return db.session.scalar(select(Refund.order_id).where(Refund.id == refund_id))


def refund_stripe_status(refund_id: int) -> str | None:
    return db.session.scalar(select(Refund.stripe_status).where(Refund.id == refund_id))


def refunds_to_send() -> list[int]:
    return list(db.session.scalars(select(Refund.id).where(Refund.stripe_status == "to_send").order_by(Refund.id)))


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


class _RefundObject(ma.Schema):
    """A Stripe Refund, as `refund.*` events carry it and a charge's `refunds` list holds it."""

    class Meta:
        unknown = ma.EXCLUDE

    id = ma.fields.String(required=True, **_id_text)
    amount = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(1, MAX_EVENT_FEN))
    payment_intent = ma.fields.String(allow_none=True, **_id_text)
    charge = ma.fields.String(allow_none=True, **_id_text)
    status = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=40))
    metadata = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(allow_none=True), allow_none=True)


class _RefundList(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    data = ma.fields.List(ma.fields.Nested(_RefundObject), validate=ma.validate.Length(max=100))


class _Charge(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    id = ma.fields.String(required=True, **_id_text)
    payment_intent = ma.fields.String(allow_none=True, **_id_text)
    amount = ma.fields.Integer(strict=True, allow_none=True, validate=ma.validate.Range(0, MAX_EVENT_FEN))
    amount_refunded = ma.fields.Integer(strict=True, allow_none=True, validate=ma.validate.Range(0, MAX_EVENT_FEN))
    currency = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=3))
    refunds = ma.fields.Nested(_RefundList, allow_none=True)


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

def _orders_for_session(session: dict) -> list[Order]:
    """The orders a Checkout Session pays — one, or every part of a checkout split across service points — locked
    first to last. By the session kept on them; when that write was lost, by the order id the session carries
    (only orders that never kept a session id)."""
    found: list[Order] = []
    if session.get("id"):
        found = list(db.session.scalars(select(Order).where(Order.stripe_session_id == session["id"])
                                        .order_by(Order.id)))
    ref = _reference_order_id(session)
    if not found and ref:
        order = db.session.get(Order, ref)
        found = paid_online(orders.checkout_parts(order)) if order is not None else []
        if any(part.stripe_session_id or part.payment_method != "stripe" for part in found):
            return []
    return [orders.lock(part) for part in found]


def _pay_parts(parts: list[Order], *, amount_fen: int, currency: str, intent: str | None,
               reference: str | None) -> bool:
    """One online payment for the orders it pays: a single order through the one paying step as ever; the parts
    of a split checkout each for its own total, when the payment is exactly their sum and every part still awaits
    it — otherwise each part is flagged with why and none is paid."""
    if len(parts) == 1:
        return record_payment(parts[0], amount_fen=amount_fen, currency=currency, way="stripe",
                              payment_intent_id=intent, reference=reference)
    due = sum(part.due_fen for part in parts)
    waiting = all(part.status in orders.PAY.sources and not part.is_paid for part in parts)
    if waiting and amount_fen == due and (currency or "").lower() == parts[0].currency:
        return all([record_payment(part, amount_fen=part.due_fen, currency=currency, way="stripe",
                                   payment_intent_id=intent, reference=reference) for part in parts])
    if all(part.is_paid for part in parts):
        return False  # a repeated notice
    numbers = "、".join(str(part.id) for part in parts)
    for part in parts:
        orders.flag(part, f"payment of {amount_fen} {currency} for the checkout of orders {numbers} (total {due} "
                          f"{part.currency}, statuses {', '.join(p.status for p in parts)}): not marked paid")
    return False


def _session_completed(session: dict):
    if session.get("payment_status") in ("paid", "no_payment_required") and session.get("id"):
        paid = _paid_at_once(session)
        if paid is not None:
            return paid, "paid"
    parts = _orders_for_session(session)
    if not parts:
        return None, "unknown order"
    order = parts[0]
    if session.get("payment_status") in ("paid", "no_payment_required"):
        paid = _pay_parts(parts, amount_fen=int(session.get("amount_total") or 0), currency=session.get("currency") or "",
                          intent=session.get("payment_intent"), reference=session.get("id"))
        return order, "paid" if paid else f"not paid ({order.status})"
    waiting = [part.id for part in parts if part.status == "pending_payment"]
    if waiting:  # an async method (e.g. a bank debit) is still on its way
        db.session.execute(update(Order).where(Order.id.in_(waiting)).values(
            awaiting_async_payment=True, stripe_payment_intent_id=session.get("payment_intent"))
            .execution_options(synchronize_session=False))
        return order, "awaiting async payment"
    return order, f"ignored ({order.status})"


def _paid_at_once(session: dict, at: datetime | None = None) -> orders.PaidOrder | None:
    """The common case — a pending order's own session, paid in full — straight through the one paying step,
    found by its session. Anything else returns None and takes the path below, which locks and loads the order
    and decides (flags, late or repeated events, lost writes) — through the same step when it pays."""
    return take_payment("stripe", amount_fen=int(session.get("amount_total") or 0),
                        currency=session.get("currency") or "", session_id=session["id"], reference=session["id"],
                        payment_intent_id=session.get("payment_intent"), at=at)


def _async_succeeded(session: dict) -> tuple[Order | None, str]:
    parts = _orders_for_session(session)
    if not parts:
        return None, "unknown order"
    paid = _pay_parts(parts, amount_fen=int(session.get("amount_total") or 0), currency=session.get("currency") or "",
                      intent=session.get("payment_intent"), reference=session.get("id"))
    return parts[0], "paid" if paid else f"not paid ({parts[0].status})"


def _ends_unpaid(note: str):
    def handle(session: dict) -> tuple[Order | None, str]:
        parts = _orders_for_session(session)
        if not parts:
            return None, "unknown order"
        waiting = [part for part in parts if part.status == "pending_payment"]
        if not waiting:
            return parts[0], f"ignored ({parts[0].status})"  # never backwards: a paid order stays paid
        for part in waiting:
            orders.cancel(part, user_id=None, note=note)
        return parts[0], "cancelled"
    return handle


def _orders_for_intent(intent: str | None, hint: Hint) -> list[Order]:
    """The orders a payment intent paid — one, or the parts of a split checkout — locked first to last: by the
    intent kept on them, or — when that write was lost — by the order id Stripe keeps in the intent's metadata
    (`hint`, looked up before the transaction began)."""
    found = list(db.session.scalars(select(Order).where(Order.stripe_payment_intent_id == intent)
                                    .order_by(Order.id))) if intent else []
    if not found and hint.order_id:
        order = db.session.get(Order, hint.order_id)
        found = paid_online(orders.checkout_parts(order)) if order is not None else []
        if any(part.stripe_payment_intent_id or part.payment_method != "stripe" for part in found):
            found = []  # that order was paid through another payment: not this charge's
    return [orders.lock(part) for part in found]


def _charge_refunded(charge: dict, hint: Hint) -> tuple[Order | None, str]:
    """Refunds of a charge — made by the shop, or in Stripe's dashboard. Each refund is matched by its own id (or
    the shop's refund id it carries), as the event lists them or Stripe listed them just before: the shop's are
    confirmed, any other is mirrored at once. Only when Stripe could not list them is the cumulative amount
    matched instead."""
    intent = charge.get("payment_intent")
    parts = _orders_for_intent(intent, hint)
    if not parts:
        return None, "unknown order"
    order = parts[0]
    if any(part.status == "pending_payment" for part in parts):
        # the refund proves the charge succeeded: its completion notice is late or lost
        _pay_parts(parts, amount_fen=int(charge.get("amount") or 0), currency=charge.get("currency") or "",
                   intent=intent, reference=charge.get("id"))
    if not all(part.is_paid for part in parts):
        for part in parts:
            orders.flag(part, f"Stripe refunded charge {charge.get('id')} of an order that is {part.status}")
        return order, "flagged"
    listed = (charge.get("refunds") or {}).get("data")
    if listed is None and hint.refunds is not None:
        listed = [r for r in hint.refunds if r.get("charge") in (None, charge.get("id"))]
    if listed is not None:
        outcomes = [_one_refund(parts, refund) for refund in sorted(listed, key=lambda r: r["id"])]
        return order, "; ".join(outcomes) or "no refunds listed"
    kept = int(db.session.scalar(select(func.coalesce(func.sum(Refund.amount_fen), 0))
                                 .where(Refund.order_id.in_([part.id for part in parts]), Refund.method == "stripe")))
    missing = int(charge.get("amount_refunded") or 0) - kept
    if missing <= 0:
        return order, "already recorded"
    return order, _mirror(parts, missing, f"{charge.get('id')}@{charge.get('amount_refunded')}", "succeeded")


def _mirror(parts: list[Order], amount_fen: int, stripe_refund_id: str, status: str | None) -> str:
    """A refund made in Stripe's dashboard, recorded now, once: on the order it paid — for a split checkout, on
    the first part that can take it whole (a dashboard refund is one sum; the manager is asked to check)."""
    target = parts[0] if len(parts) == 1 else next(
        (part for part in parts if part.total_fen - part.refunded_fen >= amount_fen), None)
    if target is None:
        for part in parts:
            orders.flag(part, f"Stripe refund {stripe_refund_id} of {amount_fen} fen is more than any order of this "
                              "payment has left: record it by hand")
        return f"flagged a refund of {amount_fen} fen"
    outcome = orders.refund_amount_only(target, amount_fen, stripe_refund_id=stripe_refund_id)
    post_refund(outcome, user_id=None)
    _settle(outcome.refund.id, status)
    if len(parts) > 1:
        orders.flag(target, f"Stripe refund {stripe_refund_id} of {amount_fen} fen, made outside the shop on a payment "
                            "of several orders, was recorded on this one: check it belongs here")
    return f"mirrored refund of {amount_fen} fen"


def _refund_changed(refund: dict, hint: Hint) -> tuple[Order | None, str]:
    """`refund.created` / `refund.updated`: one refund, matched by its id."""
    parts = _orders_for_intent(refund.get("payment_intent"), hint)
    if not parts:
        return None, "unknown order"
    if not all(part.is_paid for part in parts):
        for part in parts:
            orders.flag(part, f"Stripe refund {refund['id']} of an order that is {part.status}")
        return parts[0], "flagged"
    return parts[0], _one_refund(parts, refund)


def _one_refund(parts: list[Order], refund: dict) -> str:
    """One Stripe refund of a paid order (or of a split checkout's parts): the shop's own (by its Stripe id, or
    the refund id it carries) is confirmed; an unknown one — made in Stripe's dashboard — is mirrored now, once
    (its id is kept)."""
    ours = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == refund["id"]))
    shop_id = edge.optional_id((refund.get("metadata") or {}).get("refund_id"))
    if ours is None and shop_id:
        ours = db.session.scalar(select(Refund).where(Refund.id == shop_id,
                                                      Refund.order_id.in_([part.id for part in parts]),
                                                      Refund.method == "stripe"))
        if ours is not None:
            refund_sent(ours.id, refund["id"], refund.get("status"))
            return f"refund {ours.id} {refund.get('status') or 'sent'}"
    if ours is not None:
        _settle(ours.id, refund.get("status"))
        return f"refund {ours.id} {refund.get('status') or 'sent'}"
    if refund.get("status") in ("failed", "canceled"):
        return f"ignored a {refund.get('status')} refund"
    return _mirror(parts, refund["amount"], refund["id"], refund.get("status"))


HANDLERS = {  # event type → (what its object must look like, what to do with it)
    "checkout.session.completed": (_Session(), _session_completed),
    "checkout.session.async_payment_succeeded": (_Session(), _async_succeeded),
    "checkout.session.async_payment_failed": (_Session(), _ends_unpaid("async payment failed")),
    "checkout.session.expired": (_Session(), _ends_unpaid("checkout session expired")),
    "charge.refunded": (_Charge(), _charge_refunded),
    "refund.created": (_RefundObject(), _refund_changed),
    "refund.updated": (_RefundObject(), _refund_changed),
}


def event_key(event: dict) -> str:
    """The event's id as it is recorded: Stripe's ids are short; a longer one (never Stripe's) is kept as its
    hash, so it is still recorded once."""
    event_id = str(event.get("id"))
    return event_id if len(event_id) <= 255 else "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


REFUND_EVENTS = ("charge.refunded", "refund.created", "refund.updated")


@dataclass(frozen=True)
class Hint:
    """What a refund event's handler needs from Stripe itself, asked before its unit of work begins (no network
    call inside a transaction): the order id Stripe keeps in the payment intent's metadata, when no order kept the
    intent (a lost write); and a charge's refunds, one by one, when the event does not list them (Stripe's
    current API leaves them out)."""

    order_id: int | None = None
    refunds: tuple[dict, ...] | None = None


def event_hint(event: dict, *, read: Callable) -> Hint | None:
    """Ask Stripe what `event`'s handler will need. `read` runs the database look-up and closes its transaction."""
    if event.get("type") not in REFUND_EVENTS or not gateway.configured():
        return None
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    intent = obj.get("payment_intent") if isinstance(obj, dict) else None
    if not isinstance(intent, str) or not 0 < len(intent) <= 255:
        return None
    known = read(lambda: db.session.scalar(select(Order.id).where(Order.stripe_payment_intent_id == intent)))
    order_id = gateway.payment_intent_order_id(intent) if known is None else None
    refunds = None
    if event["type"] == "charge.refunded" and not isinstance(obj.get("refunds"), dict):
        listed = gateway.refunds_of(intent)  # None when Stripe cannot say: the cumulative amount decides then
        if listed is not None:
            try:
                refunds = tuple(_RefundObject().load(r) for r in listed)
            except ma.ValidationError:
                refunds = None
    return Hint(order_id, refunds)


def handle_event(event: dict, *, hint: Hint | None = None) -> str:
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
            order, outcome = handler(obj, hint or Hint()) if event.get("type") in REFUND_EVENTS else handler(obj)
    db.session.execute(update(ProcessedStripeEvent).where(ProcessedStripeEvent.event_id == key).values(
        order_id=order.id if order is not None else None, outcome=outcome[:200]))
    db.session.flush()
    return outcome


@dataclass(frozen=True)
class CheckoutAsk:
    """What Stripe is asked for an order's Checkout Session, read and checked before the call."""

    order_id: int
    key: str
    lines: list[tuple[str, int, int]]
    expires_at: datetime
    success_url: str
    cancel_url: str
    wallets: tuple[str, ...]


def checkout_ask(order_id: int) -> CheckoutAsk:
    """An order that may be paid online now, and what its Checkout Session is — or a clear refusal. A checkout
    split across service points is paid at once: the session holds every part's lines, for their sum."""
    order = db.session.get(Order, order_id)
    if not gateway.configured():
        raise ValidationFailed.on("payment_method", _("暂不支持在线支付，请到服务点付款。"))
    if order is None or order.payment_method != "stripe":
        raise ValidationFailed.on("payment_method", _("该订单选择了到服务点付款。"))
    if order.status != "pending_payment":
        raise orders.InvalidTransition(_("该订单无需付款（当前状态：%(s)s）。", s=orders.status_label(order.status)))
    parts = paid_online(orders.checkout_parts(order))
    unpaid = [part for part in parts if part.status != "pending_payment"]
    if unpaid:
        raise orders.InvalidTransition(_("同一次结算的订单 %(n)s 已是“%(s)s”，这笔在线支付不能再付；请到服务点付款。",
                                         n=unpaid[0].number, s=orders.status_label(unpaid[0].status)))
    minimum = current_app.config["SHOP_STRIPE_MIN_FEN"]
    if sum(part.due_fen for part in parts) < minimum:
        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请到服务点付款。", m=format_fen(minimum)))
    first = parts[0]
    return CheckoutAsk(
        first.id,
        # unique per order even if ids were ever reused (a restored backup): id + the moment it was placed
        f"order-{first.id}-{first.placed_at:%Y%m%d%H%M%S%f}-checkout",
        [line for part in parts for line in _session_lines(part)],
        min(part.reserved_until for part in parts),
        absolute_url("orders.payment_return", order_id=order.id), absolute_url("orders.detail", order_id=order.id),
        current_app.config["SHOP_STRIPE_WALLETS"])


def paid_online(parts: list[Order]) -> list[Order]:
    """The parts of a checkout that an online payment pays: not those its welfare grants paid whole."""
    return [part for part in parts if part.due_fen > 0]


def _session_lines(order: Order) -> list[tuple[str, int, int]]:
    """An order's lines as its Checkout Session lists them: the goods at their prices; for an order partly paid
    from welfare grants, one line of what is left to pay (a session has no negative lines)."""
    if order.welfare_fen:
        name = _("订单 %(n)s（福利已付 %(w)s）", n=order.number, w=format_fen(order.welfare_fen))
        return [(name, order.due_fen, 1)]
    return [(line.product.name, line.unit_price_fen, line.quantity) for line in order.lines]


def checkout(user, *, payment_method: str, welfare_fen: int = 0, grant_ids: list[int] | None = None,
             pickup_point_id: int | None = None, pickup_point_ids: list[int] | None = None,
             deliver_to_workplace: bool = False, lines: list[tuple[int, int]] | None = None,
             at: datetime | None = None) -> list[Order]:
    """A staff member's checkout: placed (`orders.place_checkout`, one order per service point), up to
    `welfare_fen` of it paid from their own welfare grants (`welfare.spend`), and every part the grants paid
    whole paid now — the rest is paid the chosen way. All or nothing."""
    welfare_fen = welfare.check_spend(welfare_fen)
    placed = orders.place_checkout(user, payment_method=payment_method, pickup_point_id=pickup_point_id,
                                   pickup_point_ids=pickup_point_ids, deliver_to_workplace=deliver_to_workplace,
                                   lines=lines, at=at, welfare_fen=welfare_fen)
    if welfare_fen or grant_ids:
        at = at or clock.now()
        welfare.spend(placed, user, welfare_fen, grant_ids=grant_ids, at=at)
        for part in placed:
            if part.welfare_fen == part.total_fen:
                take_payment("welfare", amount_fen=0, currency=part.currency, order_id=part.id,
                             reference="福利支付", method=part.payment_method, user_id=None, at=at)
                db.session.refresh(part)
    return placed


def start_checkout(order_id: int, *, unit: Callable) -> str:
    """The URL of an order's Stripe Checkout page. The order is read and checked in one unit of work, Stripe is
    asked with no transaction open, and the session kept in another (`unit`, the caller's). The idempotency key
    is the checkout's own, so asking again — a retry, a second tab, another part of it — gets the same session."""
    ask = unit(lambda: checkout_ask(order_id))
    session = gateway.create_checkout_session(order_id=ask.order_id, idempotency_key=ask.key, lines=ask.lines,
                                              expires_at=ask.expires_at, success_url=ask.success_url,
                                              cancel_url=ask.cancel_url, wallets=ask.wallets)
    unit(lambda: _keep_session(ask.order_id, session["id"]))
    return session["url"]


def _keep_session(order_id: int, session_id: str) -> None:
    """The session on the order — on every part of its checkout — that still awaits payment."""
    db.session.execute(update(Order).where(or_(Order.id == order_id, Order.checkout_id == order_id),
                                           Order.status == "pending_payment")
                       .values(stripe_session_id=session_id).execution_options(synchronize_session=False))


def reconcile(since: datetime, *, unit: Callable) -> dict[str, int]:
    """Apply every event Stripe has since `since` that has not taken effect yet, each in its own unit of work
    (`unit`, the caller's)."""
    counts: dict[str, int] = {}
    for event in gateway.events_since(since):
        hint = event_hint(event, read=unit)
        outcome = unit(lambda: handle_event(event, hint=hint))
        key = "skipped (already applied)" if outcome == "duplicate" else "applied"
        counts[key] = counts.get(key, 0) + 1
    return counts

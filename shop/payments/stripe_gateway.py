"""The only module that talks to Stripe. It returns plain dicts and raises GatewayError."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Iterator

import stripe
from flask import current_app

from ..extensions import db


class GatewayError(Exception):
    """Stripe refused or could not be reached."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused  # Stripe understood the request and said no: asking again will not help


def _error(exc: stripe.StripeError) -> GatewayError:
    return GatewayError(str(exc), refused=isinstance(exc, (stripe.InvalidRequestError, stripe.CardError)))


class InvalidWebhook(Exception):
    """Unsigned, forged or stale webhook payload."""


def configured() -> bool:
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


class CalledInsideTransaction(RuntimeError):
    """A call to Stripe was about to be made while a database transaction was open: it would hold the
    transaction (and its locks) for as long as Stripe takes, and a retry of that transaction would call again."""


def _client() -> stripe.StripeClient:
    if db.session().in_transaction():
        raise CalledInsideTransaction("Stripe is called only with no database transaction open: read in one unit of "
                                      "work, call, then write in another")
    base = current_app.config.get("STRIPE_API_BASE")
    return stripe.StripeClient(current_app.config["STRIPE_SECRET_KEY"],
                               base_addresses={"api": base} if base else None, max_network_retries=2)


def _plain(obj) -> dict:
    return json.loads(json.dumps(obj.to_dict() if hasattr(obj, "to_dict") else obj))


def create_checkout_session(*, order_id: int, idempotency_key: str, lines: list[tuple[str, int, int]],
                            expires_at: datetime, success_url: str, cancel_url: str,
                            wallets: tuple[str, ...] = ()) -> dict:
    """A Stripe Checkout session in CNY for an order; the same key always gets the same session."""
    params = {
        "mode": "payment",
        "currency": "cny",
        "line_items": [{"price_data": {"currency": "cny", "unit_amount": price, "product_data": {"name": name}},
                        "quantity": quantity} for name, price, quantity in lines],
        "payment_method_types": ["card", *wallets],
        "client_reference_id": str(order_id),
        "metadata": {"order_id": str(order_id)},
        "payment_intent_data": {"metadata": {"order_id": str(order_id)}},
        "expires_at": int(expires_at.replace(tzinfo=timezone.utc).timestamp()),
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if "wechat_pay" in wallets:
        params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
    try:
        session = _client().v1.checkout.sessions.create(params, {"idempotency_key": idempotency_key})
    except stripe.StripeError as exc:
        raise GatewayError(str(exc)) from exc
    return _plain(session)


def expire_checkout_session(session_id: str) -> None:
    """Best effort: a cancelled order's session should not be payable any more."""
    try:
        _client().v1.checkout.sessions.expire(session_id)
    except stripe.StripeError:
        current_app.logger.warning("could not expire checkout session %s", session_id)


def refund(*, payment_intent: str, amount_fen: int, idempotency_key: str, order_id: int, refund_id: int) -> dict:
    """A refund of part of a payment; the shop's refund id rides along (metadata), so a webhook can match it even
    when this answer was lost."""
    try:
        result = _client().v1.refunds.create(
            {"payment_intent": payment_intent, "amount": amount_fen,
             "metadata": {"order_id": str(order_id), "refund_id": str(refund_id)}},
            {"idempotency_key": idempotency_key})
    except stripe.StripeError as exc:
        raise _error(exc) from exc
    return _plain(result)


def refunds_of(payment_intent: str) -> list[dict] | None:
    """Every refund of a payment intent, oldest first; None when Stripe cannot be asked."""
    try:
        page = _client().v1.refunds.list({"payment_intent": payment_intent, "limit": 100})
        return sorted((_plain(r) for r in page.auto_paging_iter()), key=lambda r: (r.get("created", 0), r["id"]))
    except stripe.StripeError:
        current_app.logger.warning("could not list the refunds of %s", payment_intent)
        return None


def payment_intent_order_id(payment_intent: str) -> int | None:
    try:
        intent = _client().v1.payment_intents.retrieve(payment_intent)
    except stripe.StripeError:
        return None
    value = (_plain(intent).get("metadata") or {}).get("order_id")
    return _order_id(value)


def _order_id(value) -> int | None:
    """An order id as Stripe echoes it back (metadata, client_reference_id): digits within the database's ids."""
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= 2**31 - 1 else None


WEBHOOK_TOLERANCE = 300  # seconds a signature may be old — or, with a clock a little ahead, young


def _signed_at(signature: str) -> int | None:
    for item in signature.split(","):
        name, _sep, value = item.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            return int(value)
    return None


def parse_webhook(payload: bytes, signature: str | None) -> dict:
    """Verify the signature on the raw body (at most 5 minutes old, and not from the future) and return the
    event."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret or not signature:
        raise InvalidWebhook("missing signature or secret")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=WEBHOOK_TOLERANCE)
        event = json.loads(text)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidWebhook(str(exc)) from exc
    signed_at = _signed_at(signature)
    if signed_at is None or signed_at > time.time() + WEBHOOK_TOLERANCE:
        raise InvalidWebhook("timestamp in the future")
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidWebhook("not an event")
    return event


def events_since(since: datetime) -> Iterator[dict]:
    """Every event Stripe has from `since` on (for reconciling missed webhooks), oldest first."""
    params = {"created": {"gte": int(since.replace(tzinfo=timezone.utc).timestamp())}, "limit": 100}
    try:
        page = _client().v1.events.list(params)
        events = [_plain(e) for e in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise GatewayError(str(exc)) from exc
    return iter(sorted(events, key=lambda e: (e.get("created", 0), e["id"])))

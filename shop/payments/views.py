"""Stripe's webhook: the only route exempt from CSRF; Stripe's signature is checked instead."""
from flask import Blueprint, current_app, jsonify, request

from .. import unit_of_work
from ..access import PUBLIC, allow
from ..extensions import csrf
from . import services, stripe_gateway

bp = Blueprint("payments", __name__)


@bp.post("/stripe/webhook")
@allow(PUBLIC)
@csrf.exempt
def webhook():
    """Stripe's notices: verified, then applied once in one unit of work (a repeat is answered "duplicate")."""
    try:
        event = stripe_gateway.parse_webhook(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except stripe_gateway.InvalidWebhook as exc:
        current_app.logger.warning("refused a webhook: %s", exc)
        return jsonify(error={"code": "invalid_signature", "message": "invalid signature"}), 400
    hint = services.event_hint(event, read=unit_of_work.read_only)  # Stripe asked first, outside any transaction
    outcome = unit_of_work.run(lambda: services.handle_event(event, hint=hint))
    return jsonify(received=True, outcome=outcome)

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError

from ..access import PUBLIC, allow
from ..extensions import csrf, db
from ..unit_of_work import commit_with_retry
from . import services, stripe_gateway

bp = Blueprint("payments", __name__)


@bp.post("/stripe/webhook")
@allow(PUBLIC)
@csrf.exempt
def webhook():
    """Stripe's notices. The only route exempt from CSRF: its signature is checked instead."""
    try:
        event = stripe_gateway.parse_webhook(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except stripe_gateway.InvalidWebhook as exc:
        current_app.logger.warning("refused a webhook: %s", exc)
        return jsonify(error={"code": "invalid_signature", "message": "invalid signature"}), 400
    try:
        outcome = commit_with_retry(lambda: services.handle_event(event))
    except IntegrityError:
        db.session.rollback()
        if not services.is_processed(event["id"]):
            raise
        outcome = "duplicate"  # delivered twice at once: the other delivery took effect
    return jsonify(received=True, outcome=outcome)

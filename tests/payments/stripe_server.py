"""localstripe on 127.0.0.1 with its state in memory, plus a small stand-in for Checkout Sessions.

localstripe (a fake but real Stripe server) covers PaymentIntents, charges, refunds and the event
list; it has no Checkout Sessions, so this test-only stand-in adds just enough of them: create,
retrieve, expire, and test-only endpoints that *pay* a session (through a real localstripe
PaymentIntent, so refunds hit localstripe for real) and return the event Stripe would send.

Run as: python -m tests.payments.stripe_server PORT
"""
from __future__ import annotations

import asyncio
import sys
import time

import localstripe.resources as resources

# keep state in memory: localstripe pickles its store to a fixed file by default
resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None

from aiohttp import web  # noqa: E402
from localstripe import server  # noqa: E402
from localstripe.resources import Charge, Event, PaymentIntent, PaymentMethod, Refund, random_id  # noqa: E402

SESSIONS: dict[str, dict] = {}
IDEMPOTENT: dict[str, str] = {}


class Payload:
    """Anything localstripe's Event can wrap."""

    def __init__(self, data: dict):
        self.data = data

    def _export(self, expand=None):
        return dict(self.data)


def _event(kind: str, obj: dict) -> dict:
    return Event(kind, Payload(obj))._export()


async def create_session(request):
    key = request.headers.get("Idempotency-Key")
    if key and key in IDEMPOTENT:
        return server.json_response(SESSIONS[IDEMPOTENT[key]])
    data = await server.get_post_data(request) or {}
    items = data.get("line_items") or []
    if isinstance(items, dict):
        items = [items[k] for k in sorted(items, key=int)]
    total = sum(int(i["price_data"]["unit_amount"]) * int(i["quantity"]) for i in items)
    session_id = "cs_test_" + random_id(24)
    host = request.headers.get("Host", "127.0.0.1")
    session = {
        "id": session_id, "object": "checkout.session", "mode": data.get("mode"), "currency": data.get("currency"),
        "amount_total": total, "payment_status": "unpaid", "status": "open", "payment_intent": None,
        "client_reference_id": data.get("client_reference_id"), "metadata": data.get("metadata") or {},
        "payment_intent_data": data.get("payment_intent_data") or {},
        "payment_method_types": data.get("payment_method_types"),
        "payment_method_options": data.get("payment_method_options"),
        "expires_at": int(data.get("expires_at") or 0), "success_url": data.get("success_url"),
        "cancel_url": data.get("cancel_url"), "created": int(time.time()),
        "url": f"http://{host}/pay/{session_id}", "line_items_data": items,
    }
    SESSIONS[session_id] = session
    if key:
        IDEMPOTENT[key] = session_id
    return server.json_response(session)


def _session(request) -> dict:
    session = SESSIONS.get(request.match_info["id"])
    if session is None:
        raise web.HTTPNotFound(text='{"error": {"message": "No such checkout.session"}}', content_type="application/json")
    return session


async def retrieve_session(request):
    return server.json_response(_session(request))


async def expire_session(request):
    session = _session(request)
    if session["status"] == "open":
        session["status"] = "expired"
        _event("checkout.session.expired", session)
    return server.json_response(session)


async def test_pay(request):
    """The buyer pays on the Checkout page. ?async=1: an async method, still processing.
    ?amount=N: the amount Stripe reports (to test mismatches)."""
    session = _session(request)
    amount = int(request.query.get("amount", session["amount_total"]))
    method = PaymentMethod(type="card", card={"number": "4242424242424242", "exp_month": "12", "exp_year": "2030",
                                              "cvc": "123"})
    metadata = (session.get("payment_intent_data") or {}).get("metadata") or {}
    intent = PaymentIntent._api_create(amount=amount, currency=session["currency"], payment_method=method.id,
                                       metadata=metadata, capture_method="automatic", confirm=True)
    session["payment_intent"] = intent.id
    session["status"] = "complete"
    session["amount_total"] = amount
    session["payment_status"] = "unpaid" if request.query.get("async") == "1" else "paid"
    return server.json_response(_event("checkout.session.completed", session))


async def test_async_result(request):
    session = _session(request)
    outcome = request.match_info["outcome"]
    if outcome == "succeeded":
        session["payment_status"] = "paid"
    return server.json_response(_event(f"checkout.session.async_payment_{outcome}", session))


async def test_expire(request):
    session = _session(request)
    session["status"] = "expired"
    return server.json_response(_event("checkout.session.expired", session))


async def test_refund_event(request):
    """What Stripe sends after refunds of a payment intent (made through the API or its dashboard).
    POST amount=N first makes a dashboard refund of N. ?listed=1: the charge lists its refunds, as API versions
    before 2022-11-15 did; otherwise, as now, it does not."""
    intent = PaymentIntent._api_retrieve(request.match_info["pi"])
    data = await server.get_post_data(request) or {}
    if data.get("amount"):
        Refund._api_create(payment_intent=intent.id, amount=int(data["amount"]))
    charge: Charge = intent.latest_charge
    refunds = Refund._api_list_all("/v1/refunds", charge=charge.id)._list
    refunded = sum(r.amount for r in refunds)
    body = {"id": charge.id, "object": "charge", "payment_intent": intent.id, "amount": charge.amount,
            "amount_refunded": refunded, "currency": charge.currency, "refunded": refunded >= charge.amount}
    if request.query.get("listed") == "1":
        body["refunds"] = {"object": "list", "data": [_refund(r) for r in refunds]}
    return server.json_response(_event("charge.refunded", body))


def _refund(refund) -> dict:
    return {"id": refund.id, "object": "refund", "amount": refund.amount, "charge": refund.charge,
            "payment_intent": PaymentIntent._api_retrieve(refund.payment_intent).id if refund.payment_intent
            else Charge._api_retrieve(refund.charge).payment_intent,
            "status": request_status(refund), "metadata": dict(refund.metadata or {}), "currency": refund.currency}


def request_status(refund) -> str:
    return STATUS.get(refund.id, refund.status)


STATUS: dict[str, str] = {}  # a refund's status as a test set it (localstripe's refunds all succeed at once)


async def test_refund_status_event(request):
    """`refund.created` or `refund.updated` for one refund; POST status=failed first sets its status."""
    refund = Refund._api_retrieve(request.match_info["id"])
    data = await server.get_post_data(request) or {}
    if data.get("status"):
        STATUS[refund.id] = data["status"]
    return server.json_response(_event(request.match_info["kind"], _refund(refund)))


@web.middleware
async def idempotent_refunds(request, handler):
    """Stripe answers a repeated Idempotency-Key with the first answer; localstripe does not keep keys."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or request.path != "/v1/refunds" or not key:
        return await handler(request)
    async with KEY_LOCKS.setdefault(key, asyncio.Lock()):  # a request already in flight with the key is waited on
        if key in IDEMPOTENT_REFUNDS:
            return web.Response(body=IDEMPOTENT_REFUNDS[key], content_type="application/json")
        response = await handler(request)
        if response.status == 200:
            IDEMPOTENT_REFUNDS[key] = response.body
        return response


IDEMPOTENT_REFUNDS: dict[str, bytes] = {}
KEY_LOCKS: dict[str, asyncio.Lock] = {}


def main(port: int) -> None:
    app = server.app
    app.router.add_post("/v1/checkout/sessions", create_session)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve_session)
    app.router.add_post("/v1/checkout/sessions/{id}/expire", expire_session)
    app.router.add_post("/_test/checkout/sessions/{id}/pay", test_pay)
    app.router.add_post("/_test/checkout/sessions/{id}/async/{outcome}", test_async_result)
    app.router.add_post("/_test/checkout/sessions/{id}/expire", test_expire)
    app.router.add_post("/_test/payment_intents/{pi}/refund-event", test_refund_event)
    app.router.add_post("/_test/refunds/{id}/{kind}", test_refund_status_event)
    app.middlewares.append(idempotent_refunds)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))

"""pytest fixtures: a running localstripe, and events signed exactly as Stripe signs them."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe

API_KEY = "sk_test_shop"
WEBHOOK_SECRET = "whsec_test_shop"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.payments.stripe_server", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90  # a busy machine starts it slowly
    while True:
        try:
            requests.get(url + "/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("localstripe did not start: " + proc.stderr.read().decode(errors="replace"))
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


class StripeTestDriver:
    """Plays the buyer on Stripe's side and Stripe's webhook deliveries, against localstripe."""

    def __init__(self, base: str, client):
        self.base = base
        self.client = client

    def _post(self, path: str, **params) -> dict:
        response = requests.post(self.base + path, data=params, headers={"Authorization": f"Bearer {API_KEY}"},
                                 timeout=10)
        response.raise_for_status()
        return response.json()

    def forget_everything(self) -> None:
        """Empty localstripe's store (it lives for the whole test session)."""
        requests.delete(self.base + "/_config/data", timeout=10).raise_for_status()

    def pay(self, session_id: str, **query) -> dict:
        suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        return self._post(f"/_test/checkout/sessions/{session_id}/pay{suffix}")

    def async_result(self, session_id: str, outcome: str) -> dict:
        return self._post(f"/_test/checkout/sessions/{session_id}/async/{outcome}")

    def expire(self, session_id: str) -> dict:
        return self._post(f"/_test/checkout/sessions/{session_id}/expire")

    def refund_event(self, payment_intent: str, dashboard_amount: int | None = None) -> dict:
        params = {"amount": dashboard_amount} if dashboard_amount else {}
        return self._post(f"/_test/payment_intents/{payment_intent}/refund-event", **params)

    def session(self, session_id: str) -> dict:
        return requests.get(f"{self.base}/v1/checkout/sessions/{session_id}",
                            headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).json()

    def refunds(self, payment_intent: str) -> list[dict]:
        response = requests.get(f"{self.base}/v1/refunds", params={"payment_intent": payment_intent},
                                headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
        return response.json()["data"]

    @staticmethod
    def signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
        return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}

    def deliver(self, event: dict, **kwargs):
        payload, headers = self.signed(event, **kwargs)
        return self.client.post("/stripe/webhook", data=payload, headers=headers, csrf=False)


@pytest.fixture
def stripe_app(app, localstripe_url):
    app.config.update(STRIPE_SECRET_KEY=API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=localstripe_url)
    return app


@pytest.fixture
def stripe_driver(stripe_app, client, localstripe_url) -> StripeTestDriver:
    return StripeTestDriver(localstripe_url, client)

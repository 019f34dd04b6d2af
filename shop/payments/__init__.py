"""Stripe Checkout (behind stripe_gateway.py, the only module that imports stripe), webhooks, offline payment."""

"""Carts, checkout, the order state machine, fulfilment, cancellations and refunds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import utcnow


class ProcessedStripeEvent(db.Model):
    """A Stripe event that has taken effect. Stored in the same transaction as its effects, so
    each event id takes effect exactly once, however often or concurrently it is delivered."""

    __tablename__ = "processed_stripe_event"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), index=True)
    outcome: Mapped[str | None] = mapped_column(String(200))
    processed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

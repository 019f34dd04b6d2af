"""Notifications: what each user is told in the shop (the bell), and the outbox of messages to send through
the channels an operator configured (email, 企业微信 and 钉钉 group robots)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..extensions import db
from ..models_base import one_of, utcnow

CHANNELS = ("email", "wecom", "dingtalk")
OUTBOX_STATES = ("pending", "sent", "failed")
EVENTS = ("order_placed", "payment_recorded", "ready_for_pickup", "out_for_delivery", "hold_expiring",
          "awaiting_acceptance", "statement_issued", "backorder_filled", "watch_digest", "test",
          "login_failures")


class Notification(db.Model):
    """One thing a user is told, in the shop's own list. `key` makes each event tell each user once."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("user_id", "key"), one_of("event", EVENTS),
                      Index("ix_notification_unread", "user_id", "read_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    event: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class ChannelSetting(db.Model):
    """An outbound channel as the admin configured it: SMTP server and sender, or a group robot's webhook."""

    __tablename__ = "notification_channel"
    __table_args__ = (one_of("kind", CHANNELS),)

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class OutboxMessage(db.Model):
    """A message to send after the commit that wrote it: written in the same transaction as its event, so
    none is lost; claimed by one sender at a time (a guarded UPDATE), so none is sent twice by two senders."""

    __tablename__ = "outbox_message"
    __table_args__ = (UniqueConstraint("key", "channel", "recipient"), one_of("channel", CHANNELS),
                      one_of("state", OUTBOX_STATES), Index("ix_outbox_due", "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120))
    event: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(12))
    recipient: Mapped[str] = mapped_column(String(200))  # an email address; "group" for a robot
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

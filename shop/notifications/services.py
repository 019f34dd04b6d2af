"""Telling people: an in-shop notification per user and, for the channels an operator enabled, a message in
the outbox — both written in the caller's transaction, so an event and its messages exist together or not at
all. `sender.send_due` sends the outbox after the commit (`flask --app shop notify send`, from cron)."""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update

from .. import clock
from ..accounts.models import User
from ..extensions import db
from ..sqlhelpers import insert_ignoring_conflicts
from .models import CHANNELS, ChannelSetting, Notification, OutboxMessage

ROBOTS = ("wecom", "dingtalk")
MAX_ATTEMPTS = 8        # then the message is given up as failed (and listed on the settings page)
LEASE = timedelta(minutes=5)  # a claimed message is another sender's again after this, if its sender died
KEEP_DAYS = 90


# --- who is told ------------------------------------------------------------------------------------------

def managers() -> list[User]:
    return list(db.session.scalars(select(User).where(User.role == "manager", User.active.is_(True))))


def company_buyers(organization_id: int | None) -> list[User]:
    if organization_id is None:
        return []
    return list(db.session.scalars(select(User).where(User.role == "company", User.active.is_(True),
                                                      User.organization_id == organization_id)))


# --- telling ----------------------------------------------------------------------------------------------

def enabled_channels() -> dict[str, dict]:
    return {c.kind: c.settings or {} for c in db.session.scalars(select(ChannelSetting)
                                                                  .where(ChannelSetting.enabled.is_(True)))}


def notify(users: Iterable[User], event: str, key: str, title: str, body: str = "", link: str | None = None,
           *, group: bool = False, at: datetime | None = None) -> int:
    """Tell each user once per `key` (a repeated event tells no one again), by email too when they gave an
    address and email is enabled; and the service point's group robots when `group`. Returns how many users
    were told now."""
    at = at or clock.now()
    channels = enabled_channels()
    told = 0
    seen: set[int] = set()
    for user in users:
        if user.id in seen:
            continue
        seen.add(user.id)
        made = db.session.execute(insert_ignoring_conflicts(Notification.__table__).values(
            user_id=user.id, event=event, key=key, title=title[:200], body=body or None, link=link, created_at=at)
            .returning(Notification.id)).first()
        if made is None:
            continue
        told += 1
        if "email" in channels and user.email:
            _queue(key, event, "email", user.email, title, _with_link(body, link), at)
    if group:
        for kind in ROBOTS:
            if kind in channels:
                _queue(key, event, kind, "group", title, _with_link(body, link), at)
    return told


def _with_link(body: str, link: str | None) -> str:
    """The message's text with its link — absolute when SHOP_BASE_URL says where the shop is served."""
    if not link:
        return body
    base = current_app.config.get("SHOP_BASE_URL") or ""
    return f"{body}\n{base.rstrip('/')}{link}"


def _queue(key: str, event: str, channel: str, recipient: str, subject: str, body: str, at: datetime) -> None:
    db.session.execute(insert_ignoring_conflicts(OutboxMessage.__table__).values(
        key=key, event=event, channel=channel, recipient=recipient[:200], subject=subject[:200], body=body,
        state="pending", attempts=0, next_attempt_at=at, created_at=at))


def queue_test(kind: str, recipient: str, title: str, body: str) -> int:
    """A test message for one channel, queued now (and sent by the caller right after the commit)."""
    key = f"test:{secrets.token_hex(8)}"
    _queue(key, "test", kind, recipient, title, body, clock.now())
    return db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key))


# --- the bell -----------------------------------------------------------------------------------------------

def unread_count(user_id: int) -> int:
    return db.session.scalar(select(func.count(Notification.id))
                             .where(Notification.user_id == user_id, Notification.read_at.is_(None)))


def inbox(user_id: int):
    return select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc())


def mark_read(user_id: int, notification_id: int | None = None) -> int:
    """Mark one of the user's notifications read (or all of them)."""
    statement = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    return db.session.execute(statement.values(read_at=clock.now()).execution_options(synchronize_session=False)).rowcount


# --- the outbox ---------------------------------------------------------------------------------------------

def due_ids(now: datetime, limit: int = 200, only: Iterable[int] | None = None) -> list[int]:
    query = (select(OutboxMessage.id).where(OutboxMessage.state == "pending", OutboxMessage.next_attempt_at <= now,
                                            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
             .order_by(OutboxMessage.id).limit(limit))
    if only is not None:
        query = query.where(OutboxMessage.id.in_(list(only)))
    return list(db.session.scalars(query))


def claim(message_id: int, sender: str, now: datetime) -> OutboxMessage | None:
    """Take a due message for this sender: a guarded UPDATE, so of two senders exactly one gets it."""
    taken = db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.state == "pending",
                                    OutboxMessage.next_attempt_at <= now,
                                    or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .values(claimed_by=sender, claimed_until=now + LEASE).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        return None
    return db.session.get(OutboxMessage, message_id, populate_existing=True)


def settings_for(kind: str) -> dict | None:
    channel = db.session.get(ChannelSetting, kind)
    return (channel.settings or {}) if channel is not None and channel.enabled else None


def mark_sent(message_id: int, sender: str, now: datetime) -> None:
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.claimed_by == sender)
                       .values(state="sent", sent_at=now, attempts=OutboxMessage.attempts + 1, claimed_until=None,
                               last_error=None).execution_options(synchronize_session=False))


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after each failure, at most six hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def mark_failed(message_id: int, sender: str, error: str, now: datetime, *, give_up: bool = False) -> None:
    """A send failed: try again after a back-off, or give up after MAX_ATTEMPTS (or at once when `give_up`)."""
    message = db.session.get(OutboxMessage, message_id, populate_existing=True)
    attempts = message.attempts + 1
    final = give_up or attempts >= MAX_ATTEMPTS
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.claimed_by == sender)
                       .values(state="failed" if final else "pending", attempts=attempts, claimed_until=None,
                               next_attempt_at=now + backoff(attempts), last_error=error[:1000])
                       .execution_options(synchronize_session=False))


def outbox_summary() -> dict[str, int]:
    return dict(db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())


def recent_failures(limit: int = 20) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.last_error.is_not(None))
                                   .order_by(OutboxMessage.id.desc()).limit(limit)))


def save_channel(kind: str, *, enabled: bool, settings: dict) -> ChannelSetting:
    if kind not in CHANNELS:
        raise ValueError(kind)
    channel = db.session.get(ChannelSetting, kind)
    if channel is None:
        channel = ChannelSetting(kind=kind)
        db.session.add(channel)
    channel.enabled, channel.settings = enabled, settings
    db.session.flush()
    return channel


def channel_settings() -> dict[str, ChannelSetting]:
    return {c.kind: c for c in db.session.scalars(select(ChannelSetting))}

"""Telling people: an in-shop notification per user and, for the channels an operator enabled, a message in
the outbox — both written in the caller's transaction, so an event and its messages exist together or not at
all. `sender.send_due` sends the outbox after the commit (`flask --app shop notify send`, from cron)."""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import bindparam, case, column, func, or_, select, table, update

from .. import clock, outbound, vault
from ..errors import ValidationFailed
from ..links import absolute_link
from ..accounts.models import User
from ..extensions import db
from ..sqlwrite import insert_ignoring_conflicts
from .models import CHANNELS, ChannelSetting, Notification, OutboxMessage

ROBOTS = ("wecom", "dingtalk")
MAX_ATTEMPTS = 8        # then the message is given up as failed (and listed on the settings page)
LEASE = timedelta(minutes=5)  # a claimed message is another sender's again after this, if its sender died
KEEP_DAYS = 90


# --- who is told ------------------------------------------------------------------------------------------

class Recipient(Protocol):
    """Whom `notify` tells: a user's id and email address (a `User`, or a row of the two)."""

    id: int
    email: str | None


_RECIPIENTS = select(User.id, User.email)
_USER = _RECIPIENTS.where(User.id == bindparam("user_id"))
_ACTIVE = _RECIPIENTS.where(User.active.is_(True)).order_by(User.id)
# the grants of shop.producers.models.PointManager, named here as a table (the producers sit above the notices)
_POINT_MANAGER = table("point_manager", column("user_id"), column("village_id"))
_MANAGERS = _ACTIVE.where(User.role == "manager", User.id.in_(
    select(_POINT_MANAGER.c.user_id).where(_POINT_MANAGER.c.village_id == bindparam("village_id"))))
# who buys for a unit on account and is told of its deliveries and statements: a company's buyers, a unit's
# coordinators
_COMPANY_BUYERS = _ACTIVE.where(User.role.in_(("company", "coordinator")),
                                User.organization_id == bindparam("organization_id"))


def recipient(user_id: int) -> Recipient:
    """One user, as the two columns telling needs (a payment tells its buyer)."""
    return db.session.execute(_USER, {"user_id": user_id}).one()


def managers(village_id: int) -> list[Recipient]:
    """The managers of this village's service point, as the two columns telling needs (a new order tells them:
    this is on the path of every order placed). Another village's managers are not told."""
    return list(db.session.execute(_MANAGERS, {"village_id": village_id}))


def company_buyers(organization_id: int | None) -> list[Recipient]:
    if organization_id is None:
        return []
    return list(db.session.execute(_COMPANY_BUYERS, {"organization_id": organization_id}))


# --- telling ----------------------------------------------------------------------------------------------

_ENABLED = select(ChannelSetting.kind).where(ChannelSetting.enabled.is_(True))


def enabled_channels() -> set[str]:
    """The kinds of channel an operator enabled (their settings are read, and opened, only when sending)."""
    return set(db.session.scalars(_ENABLED))


def notify(users: Iterable[Recipient], event: str, key: str, title: str, body: str = "", link: str | None = None,
           *, group: bool = False, at: datetime | None = None) -> int:
    """Tell each user once per `key` (a repeated event tells no one again), by email too when they gave an
    address and email is enabled; and the service point's group robots when `group`. Returns how many users
    were told now."""
    at = at or clock.now()
    channels = enabled_channels()
    told = 0
    unique = {user.id: user for user in users}
    for user in (unique[user_id] for user_id in sorted(unique)):  # in id order: the counters' locks never cross
        made = db.session.execute(insert_ignoring_conflicts(Notification.__table__).values(
            user_id=user.id, event=event, key=key, title=title[:200], body=body or None, link=link, created_at=at)
            .returning(Notification.id)).first()
        if made is None:
            continue
        _count_unread(user.id, 1)
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
    return f"{body}\n{absolute_link(link)}" if link else body


def _queue(key: str, event: str, channel: str, recipient: str, subject: str, body: str, at: datetime) -> None:
    db.session.execute(insert_ignoring_conflicts(OutboxMessage.__table__).values(
        key=key, event=event, channel=channel, recipient=recipient[:200], subject=subject[:200], body=body,
        state="pending", attempts=0, next_attempt_at=at, created_at=at))


def queue_test(kind: str, recipient: str, title: str, body: str) -> int:
    """A test message for one channel, queued now (and sent by the caller right after the commit)."""
    key = f"test:{secrets.token_hex(8)}"
    _queue(key, "test", kind, recipient, title, body, clock.now())
    return db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key))


def login_failures(user: User, failures: int) -> None:
    """Guessing at a user's password is being slowed: tell the user (change your password if it was not you)
    and the admins, once per quarter of an hour."""
    window = int(clock.now().timestamp()) // 900
    key = f"login-failures:{user.id}:{window}"
    title = _("账号 %(u)s 近期密码错误 %(n)d 次", u=user.username, n=failures)
    notify([user], "login_failures", key, title,
           _("此后从出错的设备再试需要等待，且每错一次等待加倍；从其他设备用正确的密码登录不受影响。"
             "如果不是您本人在尝试，请立即修改密码。"), url_for("accounts.change_password"))
    admins = db.session.scalars(select(User).where(User.role == "admin", User.active.is_(True),
                                                   User.id != user.id))
    notify(admins, "login_failures", key, title,
           _("有人在反复尝试这个账号的密码。从出错的设备再试需要等待；正确的密码不受影响。审计日志中可查看来源地址。"),
           url_for("audit.log"))


# --- the bell -----------------------------------------------------------------------------------------------

def _count_unread(user_id: int, change: int) -> None:
    """The user's bell count, changed by exactly the notifications made or read: one atomic UPDATE (never read
    and written back)."""
    db.session.execute(update(User).where(User.id == user_id)
                       .values(unread_notifications=User.unread_notifications + change)
                       .execution_options(synchronize_session=False))


def unread_count(user_id: int) -> int:
    return db.session.scalar(select(User.unread_notifications).where(User.id == user_id)) or 0


def inbox(user_id: int):
    return select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc())


def mark_read(user_id: int, notification_id: int | None = None) -> int:
    """Mark one of the user's notifications read (or all of them)."""
    statement = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    read = db.session.execute(statement.values(read_at=clock.now()).execution_options(synchronize_session=False)).rowcount
    if read:  # the rows this statement marked, and no other statement's: the count falls by exactly them
        _count_unread(user_id, -read)
    return read


def verify() -> list[str]:
    """Each user's bell count is the number of their unread notifications."""
    unread = (select(Notification.user_id, func.count(Notification.id).label("n")).where(Notification.read_at.is_(None))
              .group_by(Notification.user_id).subquery())
    return [f"user {user_id}: the bell says {kept} unread, there are {actual}" for user_id, kept, actual in
            db.session.execute(select(User.id, User.unread_notifications, func.coalesce(unread.c.n, 0))
                               .outerjoin(unread, unread.c.user_id == User.id)
                               .where(User.unread_notifications != func.coalesce(unread.c.n, 0)))]


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
    """A send failed: try again after a back-off, or give up after MAX_ATTEMPTS (or at once when `give_up`).
    The attempt is counted in SQL, by the sender that holds the message's claim."""
    seen = db.session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == message_id))
    attempts = OutboxMessage.attempts + 1
    state = "failed" if give_up else case((attempts >= MAX_ATTEMPTS, "failed"), else_="pending")
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.claimed_by == sender)
                       .values(state=state, attempts=attempts, claimed_until=None,
                               next_attempt_at=now + backoff((seen or 0) + 1), last_error=error[:200])
                       .execution_options(synchronize_session=False))


def outbox_summary() -> dict[str, int]:
    return dict(db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())


def recent_failures(limit: int = 20) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.last_error.is_not(None))
                                   .order_by(OutboxMessage.id.desc()).limit(limit)))


SECRETS = ("password", "secret")


def save_channel(kind: str, *, enabled: bool, settings: dict) -> ChannelSetting:
    """Save a channel as the admin set it: its hosts checked against the allowed ones, its password or signing
    secret sealed (left blank: the one saved before is kept)."""
    if kind not in CHANNELS:
        raise ValueError(kind)
    channel = db.session.get(ChannelSetting, kind)
    previous = dict(channel.settings or {}) if channel is not None else {}
    values = dict(settings)
    for name in SECRETS:
        if name in values:
            values[name] = vault.seal(values[name], name) if values[name] else previous.get(name)
    if enabled or values.get("host") or values.get("webhook_url"):
        _check_channel(kind, values)
    if channel is None:
        channel = ChannelSetting(kind=kind)
        db.session.add(channel)
    channel.enabled, channel.settings = enabled, values
    db.session.flush()
    return channel


def _check_channel(kind: str, values: dict) -> None:
    hosts = "、".join(outbound.allowed_hosts())
    try:
        if kind == "email":
            if values.get("host"):
                values["host"] = outbound.check_host(values["host"])
            if values.get("username") and (values.get("security") or "none") == "none":
                raise ValidationFailed.on("security", _("用账号登录邮件服务器时请选择 STARTTLS 或 SSL/TLS，"
                                                        "否则密码会以明文传出。"))
        elif values.get("webhook_url"):
            outbound.check_url(values["webhook_url"])
    except outbound.OutboundError as err:
        field = "host" if kind == "email" else "webhook_url"
        if err.reason == "host_not_allowed":
            raise ValidationFailed.on(field, _("这个主机不在允许外发的主机中（%(h)s）。如确需使用，请运维在 "
                                               "SHOP_OUTBOUND_HOSTS 中加入它。", h=hosts)) from None
        raise ValidationFailed.on(field, _("请填写主机名，如 smtp.example.cn。") if kind == "email"
                                  else _("请填写完整的网址（https://…）。")) from None


def latest_tests() -> dict[str, OutboxMessage]:
    """Each channel's latest test message, for the settings page to say how it went."""
    latest = select(func.max(OutboxMessage.id)).where(OutboxMessage.event == "test").group_by(OutboxMessage.channel)
    return {m.channel: m for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(latest)))}


def reseal_secrets() -> int:
    """Seal every channel's stored secrets again under the first key (`flask secrets rotate`); returns how
    many were sealed."""
    done = 0
    for channel in db.session.scalars(select(ChannelSetting).order_by(ChannelSetting.kind)):
        values = dict(channel.settings or {})
        changed = False
        for name in SECRETS:
            if values.get(name):
                values[name] = vault.reseal(values[name])
                changed = True
                done += 1
        if changed:
            channel.settings = values
    db.session.flush()
    return done


def plain_secrets() -> list[str]:
    """Channels that still hold a secret stored before secrets were sealed."""
    return sorted(c.kind for c in db.session.scalars(select(ChannelSetting))
                  if any((c.settings or {}).get(n) and not vault.is_sealed((c.settings or {}).get(n)) for n in SECRETS))


def channel_settings() -> dict[str, ChannelSetting]:
    return {c.kind: c for c in db.session.scalars(select(ChannelSetting))}

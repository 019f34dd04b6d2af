"""The service point's day: what to confirm, pack and hand over, holds about to end, lots near their
best-before, refused units to handle, sales point sales to check."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .. import clock
from ..contracts import services as contracts
from ..extensions import db
from ..inventory import services as inventory
from ..inventory.models import Lot
from ..orders.models import Order
from ..points import services as points


@dataclass
class ManagerToday:
    """What the service point has to do today, each with how many and the first few."""

    to_pack: int
    to_hand_over: int
    to_confirm: list[Order]       # company bulk orders waiting for a yes or no
    to_deliver: int               # company orders confirmed, not yet delivered
    awaiting_payment: int
    holds_ending: list[Order]     # unpaid orders whose hold ends within the next day
    expiring: list[Lot]           # lots near their best-before
    refused: list[Order]          # units refused at acceptance, not yet restocked or written off
    open_backorders: int
    flagged: int
    sold_today_fen: int
    point_flagged: int = 0        # sales point sales kept for the manager to check


def manager_today(now, within_days: int) -> ManagerToday:
    today = clock.local_day(now)
    queue = contracts.service_point_queue()
    count = lambda condition: db.session.scalar(select(func.count(Order.id)).where(condition))  # noqa: E731
    holds = list(db.session.scalars(
        select(Order).where(Order.status == "pending_payment", Order.reserved_until.is_not(None),
                            Order.reserved_until <= now + timedelta(days=1))
        .options(selectinload(Order.buyer)).order_by(Order.reserved_until).limit(20)))
    since, until = clock.day_bounds(today, today)
    sold = db.session.scalar(select(func.coalesce(func.sum(Order.total_fen), 0))
                             .where(Order.paid_at >= since, Order.paid_at < until))
    return ManagerToday(
        to_pack=count(Order.status == "paid"), to_hand_over=count(Order.status == "packed"),
        to_confirm=queue.by_status.get("requested", []), to_deliver=len(queue.by_status.get("confirmed", [])),
        awaiting_payment=count(Order.status == "pending_payment"), holds_ending=holds,
        expiring=inventory.expiring_lots(within_days, today)[:20], refused=queue.rejected,
        open_backorders=len(queue.backorders), flagged=count(Order.review_reason.is_not(None)),
        sold_today_fen=int(sold or 0), point_flagged=points.flagged_count())

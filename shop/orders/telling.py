"""Telling people about orders: the service point of a new one, a buyer that theirs is paid, ready or about
to lose its hold."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..accounts.models import User
from ..extensions import db
from ..formatting import format_fen, local_dt
from ..notifications import services as notices
from ..glossary import label
from .models import Order


def order_link(order: Order) -> str:
    return order_path(order.id)


def order_path(order_id: int) -> str:
    return f"/orders/{order_id}"


def tell_ready(order: Order, *, at: datetime | None = None) -> None:
    """The order is packed: its buyer is told where to collect it, or that it is on its way."""
    if order.pickup_point is not None:
        notices.notify([order.buyer], "ready_for_pickup", f"ready:{order.id}", _("订单 %(n)s 已备好", n=order.number),
                       _("请到 %(p)s 领取（%(a)s）。", p=order.pickup_point.name, a=order.pickup_point.address),
                       order_link(order), at=at)
    else:
        notices.notify([order.buyer], "out_for_delivery", f"ready:{order.id}", _("订单 %(n)s 已备好", n=order.number),
                       _("服务点将把它送到：%(a)s。", a=order.delivery_address or ""), order_link(order), at=at)


def tell_placed(order: Order, buyer: User, *, at: datetime | None = None) -> None:
    """A new order, for the service point: its managers and, if set up, its group chat."""
    lines = "、".join(f"{line.product.name} × {line.quantity}" for line in order.lines)
    notices.notify(notices.managers(order.lines[0].product.village_id), "order_placed", f"placed:{order.id}",
                   _("新订单 %(n)s · %(t)s", n=order.number, t=format_fen(order.total_fen)),
                   _("%(b)s：%(l)s（%(m)s）", b=buyer.display_name, l=lines, m=label("payment_method", order.payment_method)),
                   order_link(order), group=True, at=at)


def tell_paid(buyer: notices.Recipient, order_id: int, number: str, total_fen: int, at: datetime | None) -> None:
    notices.notify([buyer], "payment_recorded", f"paid:{order_id}", _("订单 %(n)s 已收款 %(t)s", n=number,
                                                                      t=format_fen(total_fen)),
                   _("服务点正在为您配货，备好后会通知您。"), order_path(order_id), group=True, at=at)


def tell_holds_ending(now: datetime, within: timedelta = timedelta(hours=1)) -> int:
    """Each unpaid order whose hold ends within the hour: its buyer is told once."""
    ending = db.session.scalars(
        select(Order).where(Order.status == "pending_payment", Order.awaiting_async_payment.is_(False),
                            Order.reserved_until > now, Order.reserved_until <= now + within)
        .options(selectinload(Order.buyer)).order_by(Order.id)).all()
    told = 0
    for order in ending:
        told += notices.notify([order.buyer], "hold_expiring", f"hold:{order.id}",
                               _("订单 %(n)s 的保留即将到期", n=order.number),
                               _("请在 %(t)s 前付款，否则商品会放回库存。", t=local_dt(order.reserved_until, "HH:mm")),
                               order_link(order), at=now)
    return told

"""Order rules: the cart, placing an order, the state machine, payment, fulfilment, refunds.

Every change of state is a guarded UPDATE (`… WHERE status = :from`), so two hosts, two webhooks
or two managers acting at once cannot both move the same order; the loser sees that the order has
moved on. Services flush, never commit; the caller owns the unit of work.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from ..accounts.models import User
from ..catalog.models import PickupPoint, Product
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import today_local
from ..inventory import services as inventory
from ..ledger import services as ledger
from ..models_base import utcnow
from ..producers.models import Pairing
from .models import TRANSITIONS, Allocation, CartItem, Order, OrderEvent, OrderLine, Refund, RefundLine
from ..audit.services import record as audit

MAX_CART_LINES = 30


class InvalidTransition(Conflict):
    code = "invalid_transition"


# --- cart -----------------------------------------------------------------------------------------

@dataclass
class CartLine:
    item: CartItem
    available: int
    from_my_households: int  # units in stock from the buyer's own paired households

    @property
    def total_fen(self) -> int:
        return self.item.quantity * self.item.product.price_fen

    @property
    def short(self) -> bool:
        return self.item.quantity > self.available


def cart(user: User) -> list[CartLine]:
    items = db.session.scalars(select(CartItem).where(CartItem.user_id == user.id)
                               .options(selectinload(CartItem.product)).order_by(CartItem.id)).all()
    ids = [i.product_id for i in items]
    stock = inventory.available(ids)
    mine = paired_stock(user, ids)
    return [CartLine(i, stock.get(i.product_id, 0), mine.get(i.product_id, 0)) for i in items]


def paired_stock(user: User, product_ids=None) -> dict[int, int]:
    """Units in stock now from the households this staff member is paired with, per product."""
    from ..inventory.models import Lot
    from sqlalchemy import or_

    query = (select(Lot.product_id, func.sum(Lot.remaining))
             .where(Lot.household_id.in_(select(Pairing.household_id).where(Pairing.user_id == user.id)),
                    Lot.remaining > 0, or_(Lot.best_before.is_(None), Lot.best_before >= today_local()))
             .group_by(Lot.product_id))
    if product_ids is not None:
        query = query.where(Lot.product_id.in_(list(product_ids)))
    return {pid: int(n) for pid, n in db.session.execute(query).all()}


def _sellable(product_id) -> Product:
    product = db.session.get(Product, product_id) if isinstance(product_id, int) else None
    if product is None or not product.active:
        raise ValidationFailed.on("product_id", _("该商品已下架或不存在。"))
    if not product.in_season(today_local()):
        raise ValidationFailed.on("product_id", _("%(n)s 现在不在销售季。", n=product.name))
    return product


def set_cart_quantity(user: User, product_id, quantity, *, add: bool = False) -> CartItem | None:
    """Put a product in the cart (or change its quantity; 0 removes it)."""
    product = _sellable(product_id)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValidationFailed.on("quantity", _("数量必须是正整数。"))
    item = db.session.scalar(select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product.id))
    new = (item.quantity if item and add else 0) + quantity
    if new > inventory.MAX_QUANTITY:
        raise ValidationFailed.on("quantity", _("数量过大（最多 %(n)d）。", n=inventory.MAX_QUANTITY))
    if new == 0:
        if item is not None:
            db.session.delete(item)
        db.session.flush()
        return None
    if item is None:
        count = db.session.scalar(select(func.count(CartItem.id)).where(CartItem.user_id == user.id))
        if count >= MAX_CART_LINES:
            raise ValidationFailed.on("product_id", _("购物车最多放 %(n)d 种商品。", n=MAX_CART_LINES))
        item = CartItem(user_id=user.id, product_id=product.id, quantity=new)
        db.session.add(item)
    else:
        item.quantity = new
    db.session.flush()
    return item


# --- who sees an order --------------------------------------------------------------------------------

def visible_to(order: Order, user: User) -> bool:
    """Staff see their own orders; a company's buyers see their company's; the back office sees all."""
    if user.role in ("manager", "admin"):
        return True
    if user.role == "company":
        return order.organization_id is not None and order.organization_id == user.organization_id
    return order.buyer_id == user.id


def whole_order():
    """Loader options for everything an order's pages show, in a fixed number of queries however many
    lines it has."""
    from ..inventory.models import Lot

    allocations = selectinload(Order.lines).selectinload(OrderLine.allocations).selectinload(Allocation.lot)
    return [selectinload(Order.lines).selectinload(OrderLine.product),
            allocations.selectinload(Lot.household), allocations.selectinload(Lot.enterprise),
            selectinload(Order.events).selectinload(OrderEvent.user), selectinload(Order.refunds),
            selectinload(Order.pickup_point), selectinload(Order.buyer), selectinload(Order.organization)]


# --- placing an order -----------------------------------------------------------------------------------

def _record(order: Order, from_status: str | None, to_status: str, user_id: int | None, note: str | None = None,
            at: datetime | None = None):
    db.session.add(OrderEvent(order_id=order.id, from_status=from_status, to_status=to_status, user_id=user_id,
                              note=note, created_at=at or utcnow()))


def transition(order: Order, to_status: str, *, user_id: int | None, note: str | None = None,
               allowed_from: tuple[str, ...] | None = None, at: datetime | None = None, **values) -> None:
    """Move an order on, guarded in the database; never backwards."""
    sources = allowed_from or tuple(s for s, targets in TRANSITIONS.items() if to_status in targets)
    if order.status not in sources:
        raise InvalidTransition(_("订单当前状态为“%(s)s”，不能变为“%(t)s”。", s=status_label(order.status),
                                  t=status_label(to_status)))
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.status == order.status)
        .values(status=to_status, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.refresh(order)
        raise InvalidTransition(_("订单状态已被他人更新为“%(s)s”，请刷新后重试。", s=status_label(order.status)))
    _record(order, order.status, to_status, user_id, note, at)
    db.session.flush()
    db.session.refresh(order)


def status_label(status: str) -> str:
    from ..labels import label

    return label("order_status", status)


def place_order(user: User, *, payment_method: str, pickup_point_id: int | None = None,
                deliver_to_workplace: bool = False, lines: list[tuple[int, int]] | None = None,
                at: datetime | None = None) -> Order:
    """Place the cart (or the given lines) as an order: prices from the server, stock allocated now.

    The stock is held for the reservation time while payment is pending.
    """
    if payment_method not in ("stripe", "offline"):
        raise ValidationFailed.on("payment_method", _("请选择支付方式。"))
    if payment_method == "stripe" and not current_app.config.get("STRIPE_SECRET_KEY"):
        raise ValidationFailed.on("payment_method", _("暂不支持在线支付，请选择到服务点付款。"))
    if lines is None:
        lines = [(i.product_id, i.quantity) for i in db.session.scalars(
            select(CartItem).where(CartItem.user_id == user.id).order_by(CartItem.id))]
        from_cart = True
    else:
        from_cart = False
    if not lines:
        raise ValidationFailed.on("cart", _("购物车是空的。"))
    if len(lines) > MAX_CART_LINES:
        raise ValidationFailed.on("cart", _("一个订单最多 %(n)d 种商品。", n=MAX_CART_LINES))
    today = (at + timedelta(hours=8)).date() if at else today_local()
    point = None
    address = None
    if deliver_to_workplace:
        if user.organization is None:
            raise ValidationFailed.on("pickup_point_id", _("您没有所属单位，无法送货到单位。"))
        address = user.organization.name
    else:
        point = db.session.get(PickupPoint, pickup_point_id) if isinstance(pickup_point_id, int) else None
        if point is None or not point.active:
            raise ValidationFailed.on("pickup_point_id", _("请选择一个自提点。"))
        if not point.in_season(today):
            raise ValidationFailed.on("pickup_point_id", _("自提点 %(n)s 现在不开放。", n=point.name))
    products = []
    for product_id, quantity in lines:
        product = _sellable(product_id)
        inventory.check_quantity(quantity)
        products.append((product, quantity))
    total = sum(p.price_fen * q for p, q in products)
    minimum = current_app.config["SHOP_STRIPE_MIN_FEN"]
    if payment_method == "stripe" and total < minimum:
        from ..formatting import format_fen

        raise ValidationFailed.on("payment_method", _("在线支付的最低金额为 %(m)s，请选择到服务点付款。", m=format_fen(minimum)))
    now = at or utcnow()
    expire_reservations(product_ids={p.id for p, _ in products}, now=now)  # lazily free stock whose hold ran out
    order = Order(buyer_id=user.id, organization_id=user.organization_id, channel="retail", status="pending_payment",
                  payment_method=payment_method, pickup_point_id=point.id if point else None,
                  delivery_address=address, total_fen=total, refunded_fen=0,
                  placed_at=now,
                  reserved_until=now + timedelta(minutes=current_app.config["SHOP_RESERVATION_MINUTES"]))
    db.session.add(order)
    db.session.flush()
    order_lines = [OrderLine(order_id=order.id, product_id=p.id, quantity=q, unit_price_fen=p.price_fen,
                             refunded_quantity=0) for p, q in products]
    db.session.add_all(order_lines)
    db.session.flush()
    allocate_lines(order, order_lines, buyer_id=user.id, user_id=user.id, on=today)
    _record(order, None, "pending_payment", user.id, at=now)
    if from_cart:
        db.session.execute(CartItem.__table__.delete().where(CartItem.user_id == user.id))
    db.session.flush()
    return order


def allocate_lines(order: Order, lines: list[OrderLine], *, buyer_id: int | None, user_id: int | None = None,
                   on=None) -> None:
    """Take stock for an order's lines through the allocation service, all or nothing, and record which
    lot — which supplier — fills each line: the allocations that later say whose income the sale is."""
    picks = inventory.allocate([inventory.LineRequest(line.id, line.product_id, line.quantity) for line in lines],
                               buyer_id=buyer_id, reference=f"order:{order.id}", user_id=user_id, on=on)
    for pick in picks:
        db.session.add(Allocation(line_id=pick.key, lot_id=pick.lot_id, quantity=pick.quantity, refunded_quantity=0,
                                  released_quantity=0, household_id=pick.household_id,
                                  enterprise_id=pick.enterprise_id))
    db.session.flush()


def _release_all(order: Order, user_id: int | None) -> None:
    for line in order.lines:
        for allocation in line.allocations:
            held = allocation.quantity - allocation.released_quantity
            if held > 0:
                inventory.release(allocation.lot_id, held, reference=f"order:{order.id}", user_id=user_id)
                allocation.released_quantity = allocation.quantity
    db.session.flush()


def cancel(order: Order, *, user_id: int | None, note: str | None = None) -> None:
    """Cancel a pending order: its stock goes back on the shelf."""
    transition(order, "cancelled", user_id=user_id, note=note, allowed_from=("pending_payment",))
    _release_all(order, user_id)
    audit("order.cancel", order, note, user_id=user_id)


def expire_reservations(*, product_ids=None, now: datetime | None = None) -> list[int]:
    """Cancel pending orders whose reservation has run out (not those awaiting an async payment).

    Safe to run from cron on several hosts at once: each cancellation is a guarded transition, so an
    order is cancelled (and its stock released) exactly once.
    """
    now = now or utcnow()
    query = select(Order).where(Order.status == "pending_payment", Order.reserved_until < now,
                                Order.awaiting_async_payment.is_(False))
    if product_ids:
        query = query.where(Order.id.in_(select(OrderLine.order_id).where(OrderLine.product_id.in_(product_ids))))
    expired = []
    for order in db.session.scalars(query.order_by(Order.id)).all():
        try:
            cancel(order, user_id=None, note="reservation expired")
        except InvalidTransition:
            continue  # another host or a payment got there first
        expired.append(order.id)
    return expired


# --- payment --------------------------------------------------------------------------------------------

def flag(order: Order, reason: str) -> None:
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(review_reason=(order.review_reason + "\n" if order.review_reason else "") + reason)
                       .execution_options(synchronize_session=False))
    db.session.flush()
    db.session.refresh(order)


def mark_paid(order: Order, *, amount_fen: int, currency: str, method: str, user_id: int | None = None,
              reference: str | None = None, payment_intent_id: str | None = None, at: datetime | None = None) -> bool:
    """The money has arrived: the order becomes paid and its sale posts to the suppliers' ledgers.

    A payment that does not match the order (amount or currency), or that arrives for an order that
    can no longer be paid, flags the order for the manager instead. Returns whether it became paid.
    """
    if order.is_paid:
        return False  # already paid: a repeated notice changes nothing
    if amount_fen != order.total_fen or (currency or "").lower() != order.currency:
        flag(order, f"payment of {amount_fen} {currency} does not match the order total {order.total_fen} "
                    f"{order.currency}; not marked paid")
        return False
    if order.status != "pending_payment":
        flag(order, f"payment of {amount_fen} {currency} received while the order is {order.status}; refund it")
        return False
    transition(order, "paid", user_id=user_id, note=reference, allowed_from=("pending_payment",), at=at,
               paid_at=at or utcnow(),
               payment_reference=reference or order.payment_reference,
               stripe_payment_intent_id=payment_intent_id or order.stripe_payment_intent_id,
               awaiting_async_payment=False)
    ledger.post_sale(order, debit="stripe_cash" if method == "stripe" else "cash_on_hand", user_id=user_id, at=at)
    audit("payment", order, f"{method} {amount_fen} fen {reference or ''}".strip(), user_id=user_id)
    return True


def confirm_offline_payment(order: Order, *, reference: str, user_id: int, at: datetime | None = None) -> None:
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写收据号。"))
    if order.payment_method != "offline":
        raise ValidationFailed.on("reference", _("该订单选择了在线支付，不能登记线下收款。"))
    if order.is_paid:
        raise InvalidTransition(_("该订单已付款，不能重复收款。"))
    if order.status != "pending_payment":
        raise InvalidTransition(_("订单当前状态为“%(s)s”，不能收款。", s=status_label(order.status)))
    mark_paid(order, amount_fen=order.total_fen, currency=order.currency, method="offline", user_id=user_id,
              reference=reference, at=at)


# --- fulfilment -------------------------------------------------------------------------------------------

def pack(order: Order, *, user_id: int, at: datetime | None = None) -> None:
    transition(order, "packed", user_id=user_id, allowed_from=("paid", "partially_refunded"), at=at)


def hand_over(order: Order, *, user_id: int, to: str, at: datetime | None = None) -> None:
    to = (to or "").strip()
    if not to or len(to) > 80:
        raise ValidationFailed.on("handed_over_to", _("请填写领取人。"))
    transition(order, "handed_over", user_id=user_id, note=to, allowed_from=("packed", "partially_refunded"),
               at=at, handed_over_to=to)
    for line in order.lines:
        for allocation in line.allocations:
            units = allocation.quantity - allocation.released_quantity - allocation.refunded_quantity
            if units > 0:
                inventory.dispatch(allocation.lot_id, units)


def was_handed_over(order: Order) -> bool:
    return any(e.to_status == "handed_over" for e in order.events)


# --- refunds -----------------------------------------------------------------------------------------------

def refundable(allocation: Allocation) -> int:
    return allocation.quantity - allocation.released_quantity - allocation.refunded_quantity


def refund(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int | None,
           lots: dict[int, list[int]] | None = None, reason: str | None = None,
           stripe_refund_id: str | None = None, method: str | None = None, extra_fen: int = 0) -> Refund:
    """Refund units by line. The units come from the lots the manager names (allocation ids per line),
    otherwise the latest-allocated first; spoiled goods are not restocked. `extra_fen` is money
    refunded beyond whole units (only a refund made in Stripe's dashboard has any)."""
    if not order.is_paid or order.status in ("refunded",):
        raise InvalidTransition(_("只有已付款的订单可以退款。"))
    lines = {line.id: line for line in order.lines}
    picks: list[tuple[Allocation, int]] = []
    for line_id, quantity in wanted.items():
        line = lines.get(line_id)
        if line is None:
            raise ValidationFailed.on("lines", _("订单中没有这一行。"))
        if quantity == 0:
            continue
        inventory.check_quantity(quantity)
        left = line.quantity - line.refunded_quantity
        if quantity > left:
            raise ValidationFailed.on(f"line_{line_id}", _("%(p)s 最多还能退 %(n)d %(u)s。", p=line.product.name, n=left,
                                                           u=line.product.unit))
        named = (lots or {}).get(line_id)
        pool = ([a for a in line.allocations if a.id in set(named)] if named
                else sorted(line.allocations, key=lambda a: a.id, reverse=True))
        need = quantity
        for allocation in pool:
            take = min(need, refundable(allocation))
            if take > 0:
                picks.append((allocation, take))
                need -= take
        if need:
            raise ValidationFailed.on(f"line_{line_id}", _("所选批次中可退的数量不足。"))
        line.refunded_quantity += quantity
    if not picks and not extra_fen:
        raise ValidationFailed.on("lines", _("请填写要退的数量。"))
    amount = sum(a.line.unit_price_fen * q for a, q in picks) + extra_fen
    if order.refunded_fen + amount > order.total_fen:
        raise ValidationFailed.on("lines", _("退款金额不能超过已付金额。"))
    if method is None:
        method = order.payment_method if order.payment_method in ("stripe", "account") else "offline"
    record = Refund(order_id=order.id, amount_fen=amount, method=method, restock=restock, reason=reason,
                    user_id=user_id, stripe_refund_id=stripe_refund_id)
    db.session.add(record)
    db.session.flush()
    handed_over = was_handed_over(order)
    for allocation, quantity in picks:
        allocation.refunded_quantity += quantity
        db.session.add(RefundLine(refund_id=record.id, allocation_id=allocation.id, quantity=quantity))
        reference = f"refund:{record.id}"
        if handed_over:
            if restock:
                inventory.restock_returned(allocation.lot_id, quantity, reference=reference, user_id=user_id)
        else:
            inventory.release(allocation.lot_id, quantity, reference=reference, user_id=user_id, restock=restock)
    db.session.flush()
    all_back = all(line.refunded_quantity == line.quantity for line in order.lines)
    target = "refunded" if all_back else "partially_refunded"
    transition(order, target, user_id=user_id, note=reason,
               allowed_from=("paid", "packed", "handed_over", "partially_refunded", "accepted"),
               refunded_fen=order.refunded_fen + amount)
    db.session.refresh(record)
    credit = {"stripe": "stripe_cash", "offline": "cash_on_hand"}.get(record.method) \
        or ledger.receivables_code(order.organization_id)
    ledger.post_refund(record, credit=credit, user_id=user_id)
    audit("refund", order, f"{record.amount_fen} fen, restock={restock}", user_id=user_id)
    return record


def refund_amount_only(order: Order, amount_fen: int, *, stripe_refund_id: str, user_id: int | None = None) -> Refund:
    """A refund made in Stripe's dashboard: no lines named, so the latest-allocated whole units are
    reversed; anything that is not a whole number of units is flagged and borne by the platform."""
    wanted: dict[int, int] = {}
    left = amount_fen
    for allocation in sorted((a for line in order.lines for a in line.allocations), key=lambda a: a.id, reverse=True):
        price = allocation.line.unit_price_fen
        units = min(refundable(allocation), left // price)
        if units > 0:
            wanted[allocation.line_id] = wanted.get(allocation.line_id, 0) + units
            left -= units * price
    if left:
        flag(order, f"Stripe refund {stripe_refund_id}: {left} fen are not a whole number of units; "
                    "the platform bears them")
    return refund(order, wanted, restock=False, user_id=user_id, stripe_refund_id=stripe_refund_id,
                  reason="refunded in Stripe", method="stripe", extra_fen=left)

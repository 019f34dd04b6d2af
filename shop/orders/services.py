"""Order rules, in one place for their callers: the cart (`cart`), the lists the service point works from
(`lists`), placing an order (`placing`), the stock it holds (`holds`), its moves (`moves`), its payment
(`paying`), its refunds (`refunds`) and who is told (`telling`) — each in its own module, gathered here — and
the check that the orders' own counters agree with the rows behind them (`verify`).

Every move of an order is one of `workflow.MOVES`, made by `transition`: a guarded UPDATE
(`… WHERE status = :seen`) whose row count is checked, so two hosts, two webhooks or two managers acting
at once cannot both move the same order. Anything that changes an order's money or stock first takes the
order's row lock (`lock`), in a fixed order — the order, then its lots in id order — and changes every
counter by an atomic UPDATE guarded in its WHERE clause: nothing is read, changed in Python and written back.

This module knows nothing of the ledger: it hands its callers what was sold or refunded (`sold_units`,
`RefundOutcome.items`), and they post it. Services flush, never commit; the caller owns the unit of work.
"""
from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..inventory.models import Lot
from . import workflow
from .cart import (CartLine, MAX_CART_LINES, cart, paired_stock, sellable, service_points, set_cart_quantity,
                   sync_cart)
from .lists import (MANAGE_FILTERS, ORDER_NUMBER, WORK_TABS, allowed_actions, bought_by, buyer_orders, by_handover,
                    manage_counts, manage_query, order_list_query, picklist, visible_to, whole_order)
from .moves import (InvalidTransition, actor, dispatch_held, flag, hand_over, lock, move_payment, pack, record_event,
                    status_label, transition)
from .placing import (OrderPlan, allocate_lines, create_order, create_point_order, hold_until, place_checkout, place_order,
                      plan_checkout)
from .holds import cancel, cancel_checkout, checkout_parts, expire_reservations, give_back, release_all, take_back
from .paying import PAY, PaidOrder, SoldUnits, check_offline_payment, pay, payment_problem, sold_units
from .telling import order_link, order_path, tell_holds_ending, tell_paid, tell_placed
from .refunds import RefundOutcome, RefundedUnits, plan_refund, refund, refund_amount_only, refund_value
from .models import Allocation, Order, OrderLine, Refund, RefundLine

UNIT_BUYERS = workflow.UNIT_BUYERS  # who buys for a whole unit, on account


# --- verification ------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """The orders' own counters agree with the rows behind them: each order's refunded amount is the sum
    of its refunds, each line's and allocation's refunded units those of its refund lines, and each lot's
    reserved units the units held by orders whose goods have not left."""
    problems: list[str] = []
    refunds = select(Refund.order_id, func.sum(Refund.amount_fen).label("total")).group_by(Refund.order_id).subquery()
    for order_id, kept, total in db.session.execute(
            select(Order.id, Order.refunded_fen, func.coalesce(refunds.c.total, 0))
            .outerjoin(refunds, refunds.c.order_id == Order.id)
            .where(Order.refunded_fen != func.coalesce(refunds.c.total, 0))):
        problems.append(f"order {order_id}: refunded {kept} fen but its refunds add up to {total} fen")
    by_allocation = (select(RefundLine.allocation_id, func.sum(RefundLine.quantity).label("units"))
                     .group_by(RefundLine.allocation_id).subquery())
    for allocation_id, kept, units in db.session.execute(
            select(Allocation.id, Allocation.refunded_quantity, func.coalesce(by_allocation.c.units, 0))
            .outerjoin(by_allocation, by_allocation.c.allocation_id == Allocation.id)
            .where(Allocation.refunded_quantity != func.coalesce(by_allocation.c.units, 0))):
        problems.append(f"allocation {allocation_id}: {kept} units refunded but its refund lines say {units}")
    by_line = (select(Allocation.line_id, func.sum(Allocation.refunded_quantity).label("units"))
               .group_by(Allocation.line_id).subquery())
    for line_id, kept, units in db.session.execute(
            select(OrderLine.id, OrderLine.refunded_quantity, func.coalesce(by_line.c.units, 0))
            .outerjoin(by_line, by_line.c.line_id == OrderLine.id)
            .where(OrderLine.refunded_quantity != func.coalesce(by_line.c.units, 0))):
        problems.append(f"order line {line_id}: {kept} units refunded but its refund lines say {units}")
    held = (select(Allocation.lot_id, func.sum(Allocation.held).label("units"))
            .join(OrderLine, OrderLine.id == Allocation.line_id).join(Order, Order.id == OrderLine.order_id)
            .where(Order.status.not_in(workflow.DISPATCHED)).group_by(Allocation.lot_id).subquery())
    for lot_id, reserved, units in db.session.execute(
            select(Lot.id, Lot.reserved, func.coalesce(held.c.units, 0)).outerjoin(held, held.c.lot_id == Lot.id)
            .where(Lot.reserved != func.coalesce(held.c.units, 0)).order_by(Lot.id)):
        problems.append(f"lot {lot_id}: reserved {reserved} but orders not yet handed over hold {units}")
    return problems


__all__ = [
    'CartLine', 'InvalidTransition', 'MANAGE_FILTERS', 'MAX_CART_LINES', 'ORDER_NUMBER', 'OrderPlan', 'PAY',
    'PaidOrder', 'RefundOutcome', 'RefundedUnits', 'SoldUnits', 'UNIT_BUYERS', 'WORK_TABS', 'actor', 'allocate_lines',
    'allowed_actions', 'bought_by', 'buyer_orders', 'by_handover', 'cancel', 'cancel_checkout', 'cart', 'checkout_parts', 'check_offline_payment', 'create_order',
    'create_point_order', 'dispatch_held', 'expire_reservations', 'flag', 'give_back', 'hand_over', 'hold_until',
    'lock', 'manage_counts', 'manage_query', 'move_payment', 'order_link', 'order_list_query', 'order_path',
    'pack', 'paired_stock', 'pay', 'payment_problem', 'picklist', 'place_checkout', 'place_order', 'plan_checkout',
    'plan_refund',
    'record_event', 'refund', 'refund_amount_only', 'refund_value', 'release_all', 'sellable', 'service_points',
    'set_cart_quantity', 'sold_units', 'status_label', 'sync_cart', 'take_back', 'tell_holds_ending', 'tell_paid',
    'tell_placed', 'transition', 'visible_to', 'whole_order', 'verify', 'workflow'
]

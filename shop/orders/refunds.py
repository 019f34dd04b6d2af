"""Refunds: units of an order given back, line by line, from the lots named (or the latest allocated), with
their value to the fen; the caller posts the outcome to the ledger."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from ..audit.services import record as audit
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import format_quantity
from ..models_base import value_fen
from ..inventory import services as inventory
from . import workflow
from .holds import take_back
from .moves import InvalidTransition, flag, lock, move_payment, transition
from .paying import SoldUnits
from .models import Allocation, Order, OrderLine, Refund, RefundLine


@dataclass(frozen=True)
class RefundedUnits(SoldUnits):
    refunded_before: int = 0  # units of this allocation refunded by earlier refunds
    value_fen: int = 0        # what these units give back: their share of the line's value refunded


@dataclass
class RefundOutcome:
    refund: Refund
    items: list[RefundedUnits]
    order: Order

    @property
    def method(self) -> str:
        return self.refund.method


@dataclass
class _RefundPlan:
    picks: list[tuple[Allocation, int, int]] = field(default_factory=list)  # (allocation, units, value in fen)
    per_line: dict[int, int] = field(default_factory=dict)
    amount_fen: int = 0


def refund_value(line: OrderLine, held: int, units: int) -> int:
    """What `units` of a line give back when `held` of its units are still sold: the line's value now less its
    value after — so however a weighed line is refunded, in however many steps, what is left is always worth
    exactly its units × price rounded once (`value_fen`), to the fen. By the piece, units × price."""
    return value_fen(held, line.unit_price_fen, line.scale) - value_fen(held - units, line.unit_price_fen, line.scale)


def _pool(line: OrderLine, named: list[int] | None) -> list[Allocation]:
    if named:
        return [a for a in line.allocations if a.id in set(named)]
    return sorted(line.allocations, key=lambda a: a.id, reverse=True)  # the latest-allocated first


def plan_refund(order: Order, wanted: dict[int, int], *, lots: dict[int, list[int]] | None = None,
                extra_fen: int = 0) -> _RefundPlan:
    """Which allocations give back which units, and for how much — or a clear refusal. Writes nothing."""
    if order.payment_status not in workflow.REFUNDABLE:
        raise InvalidTransition(_("只有已付款的订单可以退款。"))
    lines = {line.id: line for line in order.lines}
    plan = _RefundPlan()
    for line_id, quantity in wanted.items():
        line = lines.get(line_id)
        if line is None:
            raise ValidationFailed.on("lines", _("订单中没有这一行。"))
        if quantity == 0:
            continue
        inventory.check_quantity(quantity)
        left = line.quantity - line.refunded_quantity
        if quantity > left:
            raise ValidationFailed.on(f"line_{line_id}", _("%(p)s 最多还能退 %(q)s。", p=line.product.name,
                                                           q=format_quantity(left, line)))
        need, held = quantity, sum(a.held for a in line.allocations)
        for allocation in _pool(line, (lots or {}).get(line_id)):
            take = min(need, allocation.held)
            if take > 0:
                plan.picks.append((allocation, take, refund_value(line, held, take)))
                need, held = need - take, held - take
        if need:
            raise ValidationFailed.on(f"line_{line_id}", _("所选批次中可退的数量不足。"))
        plan.per_line[line_id] = quantity
    if not plan.picks and not extra_fen:
        raise ValidationFailed.on("lines", _("请填写要退的数量。"))
    # the plan's own figure, computed in memory; the order's counters move by guarded UPDATEs (_count_refund)
    plan.amount_fen = sum(value for _allocation, _units, value in plan.picks) + extra_fen
    if order.refunded_fen + plan.amount_fen > order.total_fen:
        raise ValidationFailed.on("lines", _("退款金额不能超过已付金额。"))
    return plan


def _count_refund(order: Order, plan: _RefundPlan) -> None:
    """The order's and its lines' refund counters, each one atomic UPDATE guarded by what was sold."""
    for line_id, quantity in sorted(plan.per_line.items()):
        result = db.session.execute(
            update(OrderLine).where(OrderLine.id == line_id, OrderLine.refunded_quantity + quantity <= OrderLine.quantity)
            .values(refunded_quantity=OrderLine.refunded_quantity + quantity)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise Conflict(_("退款数量已变化，请刷新后重试。"))
    result = db.session.execute(
        update(Order).where(Order.id == order.id, Order.refunded_fen + plan.amount_fen <= Order.total_fen)
        .values(refunded_fen=Order.refunded_fen + plan.amount_fen).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ValidationFailed.on("lines", _("退款金额不能超过已付金额。"))


def welfare_left(order: Order) -> int:
    """What of an order's welfare payment no refund has given back yet (read under the order's lock)."""
    if not order.welfare_fen:
        return 0
    given = db.session.scalar(select(func.coalesce(func.sum(Refund.welfare_fen), 0)).where(Refund.order_id == order.id))
    return order.welfare_fen - int(given)


def refund(order: Order, wanted: dict[int, int], *, restock: bool, user_id: int | None,
           lots: dict[int, list[int]] | None = None, reason: str | None = None,
           stripe_refund_id: str | None = None, method: str | None = None, extra_fen: int = 0) -> RefundOutcome:
    """Refund units by line. The units come from the lots the manager names (allocation ids per line),
    otherwise the latest-allocated first; spoiled goods are not restocked. `extra_fen` is money refunded
    beyond whole units (only a refund made in Stripe's dashboard has any). The caller posts the outcome's
    items to the ledger.

    Of an order paid partly from welfare grants, the welfare part is given back first (`Refund.welfare_fen`), so a
    refund never turns welfare money into cash; the rest goes back the way it was paid. A refund made in Stripe's
    dashboard (`stripe_refund_id` given) gave back card money only."""
    order = lock(order)
    plan = plan_refund(order, wanted, lots=lots, extra_fen=extra_fen)
    welfare_part = 0 if stripe_refund_id else min(plan.amount_fen, welfare_left(order))
    if method is None:
        if welfare_part == plan.amount_fen:
            method = "welfare"
        else:
            method = order.payment_method if order.payment_method in ("stripe", "account") else "offline"
    # a card refund made here is sent to Stripe once this unit of work commits; one made in Stripe has been
    stripe_status = None if method != "stripe" else "sent" if stripe_refund_id else "to_send"
    record = Refund(order_id=order.id, amount_fen=plan.amount_fen, method=method, restock=restock, reason=reason,
                    user_id=user_id, stripe_refund_id=stripe_refund_id, stripe_status=stripe_status,
                    welfare_fen=welfare_part)
    db.session.add(record)
    db.session.flush()
    items = []
    for allocation, quantity, value in sorted(plan.picks, key=lambda pick: pick[0].lot_id):
        before = allocation.refunded_quantity
        take_back(allocation, quantity, column="refunded_quantity")
        db.session.add(RefundLine(refund_id=record.id, allocation_id=allocation.id, quantity=quantity))
        items.append(RefundedUnits(allocation.id, allocation.line_id, allocation.household_id, allocation.enterprise_id,
                                   quantity, allocation.line.unit_price_fen, allocation.line.scale,
                                   refunded_before=before, value_fen=value))
        _give_back_stock(order, allocation.lot_id, quantity, restock=restock, reference=f"refund:{record.id}",
                         user_id=user_id)
    _count_refund(order, plan)
    db.session.flush()
    order = lock(order)  # the counters as they now are
    everything = all(line.refunded_quantity == line.quantity for line in order.lines)
    move_payment(order, "refunded" if everything else "partially_refunded", user_id=user_id, note=reason)
    if everything and workflow.find(order.flow, order.status, "close"):
        transition(order, "close", user_id=user_id, note=reason)  # nothing left to pack or hand over
    db.session.refresh(record)
    audit("refund", order, f"{record.amount_fen} fen, restock={restock}", user_id=user_id)
    return RefundOutcome(record, items, order)


def _units_worth(line: OrderLine, held: int, most: int, amount_fen: int) -> int:
    """The most units (at most `most`) whose refund is worth no more than `amount_fen` (a bisection: the value
    grows with the units)."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        if refund_value(line, held, mid) <= amount_fen:
            low = mid
        else:
            high = mid - 1
    return low


def _give_back_stock(order: Order, lot_id: int, quantity: int, *, restock: bool, reference: str,
                     user_id: int | None) -> None:
    if order.dispatched:
        if restock:  # the goods had left: sellable ones come back onto their lot
            inventory.restock_returned(lot_id, quantity, reference=reference, user_id=user_id)
    else:  # still at the service point: no longer held (and written off if spoiled)
        inventory.release(lot_id, quantity, reference=reference, user_id=user_id, restock=restock)


def refund_amount_only(order: Order, amount_fen: int, *, stripe_refund_id: str,
                       user_id: int | None = None) -> RefundOutcome:
    """A refund made in Stripe's dashboard: no lines named, so the latest-allocated whole units are
    reversed; anything that is not a whole number of units is flagged and borne by the platform."""
    order = lock(order)
    wanted: dict[int, int] = {}
    left = amount_fen
    held = {line.id: sum(a.held for a in line.allocations) for line in order.lines}
    for allocation in sorted((a for line in order.lines for a in line.allocations), key=lambda a: a.id, reverse=True):
        line = allocation.line
        units = _units_worth(line, held[line.id], min(allocation.held, held[line.id]), left)
        if units > 0:
            wanted[line.id] = wanted.get(line.id, 0) + units
            left -= refund_value(line, held[line.id], units)
            held[line.id] -= units
    if left:
        flag(order, f"Stripe refund {stripe_refund_id}: {left} fen are not a whole number of units; "
                    "the platform bears them")
    return refund(order, wanted, restock=False, user_id=user_id, stripe_refund_id=stripe_refund_id,
                  reason="refunded in Stripe", method="stripe", extra_fen=left)

"""Stock rules: intake, the allocation policy, releases, adjustments, availability, verification.

`allocate` is the one place that takes stock. Every change of a lot's `remaining` goes through
`_move`, a guarded UPDATE whose WHERE clause keeps the quantity from going below zero
(on SQLite, where FOR UPDATE does nothing, as on PostgreSQL), and writes the movement beside it.
Services flush, never commit: the caller owns the unit of work (see `commit_with_retry`).
"""
from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Hashable, Iterable

from flask_babel import gettext as _
from sqlalchemy import bindparam, case, func, insert, or_, select, true, update
from sqlalchemy.orm import selectinload

from .. import clock
from ..catalog.models import Product
from ..catalog.services import category_order
from ..errors import Conflict, ValidationFailed
from ..extensions import db

from ..producers import services as producers
from ..producers.models import Enterprise, Household, Pairing
from ..unit_of_work import RetryTransaction
from .models import ADJUSTMENT_REASONS, Intake, Lot, StockMovement
from ..audit.services import record as audit

MAX_QUANTITY = 1_000_000  # more than any lot or order line could hold: anything above is a typo


# --- errors ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shortage:
    product_id: int
    product_name: str
    requested: int
    available: int

    @property
    def missing(self) -> int:
        return self.requested - self.available


class InsufficientStock(Conflict):
    """Not enough stock for one or more lines; names every short line and by how much."""

    code = "insufficient_stock"

    def __init__(self, shortages: list[Shortage]):
        self.shortages = shortages
        parts = "；".join(
            _("%(p)s 需要 %(r)d，现有 %(a)d，缺 %(m)d", p=s.product_name, r=s.requested, a=s.available, m=s.missing)
            for s in shortages)
        super().__init__(_("库存不足：%(parts)s。", parts=parts),
                         fields={f"product_{s.product_id}": str(s.missing) for s in shortages})


# --- quantities --------------------------------------------------------------------------------

def check_quantity(value, field_name: str = "quantity") -> int:
    """A positive whole number of sale units, not absurdly large."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed.on(field_name, _("数量必须是正整数。"))
    if value <= 0:
        raise ValidationFailed.on(field_name, _("数量必须大于 0。"))
    if value > MAX_QUANTITY:
        raise ValidationFailed.on(field_name, _("数量过大（最多 %(n)d）。", n=MAX_QUANTITY))
    return value


def _move(lot_id: int, *, kind: str, delta: int = 0, reserved_delta: int = 0, reference: str | None = None,
          reason: str | None = None, note: str | None = None, user_id: int | None = None) -> bool:
    """Change a lot's remaining and reserved quantities by signed deltas, in one guarded UPDATE that keeps
    both from going below zero, and record the movement beside it. False if either would go below zero."""
    guard = Lot.remaining >= -delta if delta < 0 else true()
    reserved_guard = Lot.reserved >= -reserved_delta if reserved_delta < 0 else true()
    result = db.session.execute(
        update(Lot).where(Lot.id == lot_id, guard, reserved_guard)
        .values(remaining=Lot.remaining + delta, reserved=Lot.reserved + reserved_delta)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.add(StockMovement(lot_id=lot_id, kind=kind, quantity=delta, reserved_delta=reserved_delta,
                                 reason=reason, note=note, reference=reference, user_id=user_id))
    return True


# --- intake -------------------------------------------------------------------------------------

@dataclass
class IntakeItem:
    product_id: int
    quantity: int
    best_before: date | None = None
    note: str | None = None


def intake_items(rows) -> list[IntakeItem]:
    """An intake form's rows of (product id, quantity, best-before) as items; empty rows are ignored, a row
    with only one of product and quantity is refused by its number."""
    items = []
    for number, (product_id, quantity, best_before) in enumerate(rows, start=1):
        if product_id is None and quantity is None:
            continue
        if product_id is None or quantity is None:
            raise ValidationFailed(_("第 %(n)d 行：请同时选择商品并填写数量。", n=number))
        items.append(IntakeItem(product_id, quantity, best_before))
    return items


def set_low_stock_threshold(product: Product, threshold: int | None) -> None:
    """Below this many units available the manager is warned (None: never)."""
    if threshold is not None and not 0 <= threshold <= MAX_QUANTITY:
        raise ValidationFailed.on("low_stock_threshold", _("低库存提醒应为不小于 0 的整数。"))
    product.low_stock_threshold = threshold
    db.session.flush()


def receive(*, household_id: int | None = None, enterprise_id: int | None = None, items: Iterable[IntakeItem],
            user_id: int, received_at: datetime | None = None, note: str | None = None,
            sales_point_id: int | None = None) -> Intake:
    """One visit: a supplier brings one or more products. Every item becomes a lot. With `sales_point_id` the
    goods were brought to a seasonal sales point and are sold there only (quantities in the product's smallest
    unit: tenths of a 斤 for what is weighed)."""
    items = list(items)
    if (household_id is None) == (enterprise_id is None):
        raise ValidationFailed.on("supplier", _("请选择一个供货方（农户或村企）。"))
    supplier = db.session.get(Household, household_id) if household_id is not None else (
        db.session.get(Enterprise, enterprise_id))
    if supplier is None:
        raise ValidationFailed.on("supplier", _("未知的农户。") if household_id is not None else _("未知的村企。"))
    if not items:
        raise ValidationFailed.on("items", _("请至少填写一种商品的数量。"))
    received_at = received_at or clock.now()
    received_on = clock.local_day(received_at)
    for index, item in enumerate(items):
        product = db.session.get(Product, item.product_id) if isinstance(item.product_id, int) else None
        if product is None:
            raise ValidationFailed.on(f"items-{index}-product_id", _("未知的商品。"))
        if product.village_id != supplier.village_id:  # a village's point holds its own villagers' goods
            raise ValidationFailed.on(f"items-{index}-product_id", _(
                "%(n)s 是另一个村服务点的商品，不能收这个供货方的货。", n=product.name))
        if not product.active:
            raise ValidationFailed.on(f"items-{index}-product_id", _("商品 %(n)s 已下架，不能入库。", n=product.name))
        if product.by_weight and sales_point_id is None:
            raise ValidationFailed.on(f"items-{index}-product_id",
                                      _("%(n)s 按重量在临时销售点出售，请在销售点登记到货。", n=product.name))
        check_quantity(item.quantity, f"items-{index}-quantity")
        if item.best_before is not None and item.best_before < received_on:
            raise ValidationFailed.on(f"items-{index}-best_before", _("保质期不能早于入库日期。"))
    intake = Intake(household_id=household_id, enterprise_id=enterprise_id, received_at=received_at,
                    user_id=user_id, note=(note or "").strip() or None)
    db.session.add(intake)
    db.session.flush()
    for item in items:
        lot = Lot(product_id=item.product_id, intake_id=intake.id, household_id=household_id,
                  enterprise_id=enterprise_id, quantity_received=item.quantity, remaining=item.quantity, reserved=0,
                  received_at=received_at, best_before=item.best_before, note=(item.note or "").strip() or None,
                  token=secrets.token_urlsafe(18), sales_point_id=sales_point_id)
        db.session.add(lot)
        db.session.flush()
        db.session.add(StockMovement(lot_id=lot.id, kind="intake", quantity=item.quantity, reserved_delta=0,
                                     user_id=user_id, reference=f"intake:{intake.id}"))
        audit("stock.intake", lot, f"product {item.product_id} × {item.quantity}", user_id=user_id)
    db.session.flush()
    return intake


# --- the allocation policy ------------------------------------------------------------------------

@dataclass(frozen=True)
class LineRequest:
    key: Hashable       # the caller's name for the line (an order line id, an index)
    product_id: int
    quantity: int


@dataclass
class Pick:
    key: Hashable
    lot_id: int
    product_id: int
    quantity: int
    household_id: int | None = None
    enterprise_id: int | None = None


def policy_order(buyer_id: int | None) -> list:
    """The allocation policy, as an ORDER BY over a product's unexpired lots with stock: the buyer's paired
    households first, then monitored households, earliest best-before (none last), earliest intake."""
    order = []
    if buyer_id is not None:
        paired = select(Pairing.household_id).where(Pairing.user_id == buyer_id).scalar_subquery()
        order.append(case((Lot.household_id.in_(paired), 0), else_=1))
    return order + [case((Household.status == "monitored", 0), else_=1), Lot.best_before.is_(None), Lot.best_before,
                    Lot.received_at, Lot.id]


def _plan_statement(paired: bool):
    """Each candidate lot of the products asked for — unexpired, with stock, not at a sales point — with the
    stock of the lots before it in policy order (a running sum) and the product's total, keeping the lots that
    the most units wanted of any one product reach (`plan` keeps each product's own). Built once for a buyer
    with pairings considered and once without; what is asked is bound per use."""
    order = policy_order(bindparam("buyer_id") if paired else None)
    candidates = (
        select(Lot.id.label("lot_id"), Lot.product_id, Lot.remaining, Lot.household_id, Lot.enterprise_id,
               (func.sum(Lot.remaining).over(partition_by=Lot.product_id, order_by=order, rows=(None, 0))
                - Lot.remaining).label("before"),
               func.sum(Lot.remaining).over(partition_by=Lot.product_id).label("available"))
        .outerjoin(Household, Household.id == Lot.household_id)
        .where(Lot.product_id.in_(bindparam("product_ids", expanding=True)), Lot.remaining > 0,
               Lot.sales_point_id.is_(None), or_(Lot.best_before.is_(None), Lot.best_before >= bindparam("on")))
        .subquery("candidate"))
    c = candidates.c
    return (select(c.lot_id, c.product_id, c.remaining, c.household_id, c.enterprise_id, c.available, c.before)
            .where(c.before < bindparam("most")).order_by(c.product_id, c.before))


_PLAN = {False: _plan_statement(False), True: _plan_statement(True)}


def plan(requests: list[LineRequest], *, buyer_id: int | None, on: date) -> list[Pick]:
    """Which lot each unit comes from — or InsufficientStock naming every short product. One statement: each
    candidate lot with the stock of the lots before it in policy order (a running sum), keeping only the lots
    the wanted units reach; requests for the same product take from them in turn."""
    for request in requests:
        check_quantity(request.quantity)
    wanted: dict[int, int] = defaultdict(int)
    for request in requests:
        wanted[request.product_id] += request.quantity
    if not wanted:
        return []
    rows = db.session.execute(_PLAN[buyer_id is not None], {"buyer_id": buyer_id, "product_ids": sorted(wanted),
                                                            "on": on, "most": max(wanted.values())})
    lots: dict[int, list] = defaultdict(list)
    available: dict[int, int] = {}
    for lot_id, product_id, remaining, household_id, enterprise_id, total, before in rows:
        available[product_id] = int(total)
        if before < wanted[product_id]:  # the lots the units wanted of this product reach
            lots[product_id].append([lot_id, int(remaining), household_id, enterprise_id])
    short = {pid: n for pid, n in wanted.items() if n > available.get(pid, 0)}
    if short:
        names = dict(db.session.execute(select(Product.id, Product.name).where(Product.id.in_(short))).all())
        raise InsufficientStock([Shortage(pid, names.get(pid, str(pid)), n, available.get(pid, 0))
                                 for pid, n in sorted(short.items())])
    picks: list[Pick] = []
    for request in requests:
        need = request.quantity
        for lot in lots[request.product_id]:
            take = min(need, lot[1])
            if take > 0:
                lot[1] -= take
                need -= take
                picks.append(Pick(request.key, lot[0], request.product_id, take, lot[2], lot[3]))
            if need == 0:
                break
    return picks


def allocate(requests: list[LineRequest], *, buyer_id: int | None, reference: str, user_id: int | None = None,
             on: date | None = None) -> list[Pick]:
    """Take stock for every line, all or nothing: the policy's picks (`plan`), then one guarded UPDATE of all
    their lots — each lot's remaining never below zero — and their movements in one insert. The UPDATE reaches
    the lots by primary key in id order, so concurrent allocations lock them in the same order; a lot emptied by
    a concurrent allocation since it was read leaves it short of rows, which raises RetryTransaction, and
    `commit_with_retry` runs the whole unit again against the new stock."""
    picks = plan(requests, buyer_id=buyer_id, on=on or clock.today())
    per_lot: dict[int, int] = defaultdict(int)
    for pick in picks:
        per_lot[pick.lot_id] += pick.quantity
    if per_lot:
        taken = case(per_lot, value=Lot.id)
        result = db.session.execute(
            update(Lot).where(Lot.id.in_(sorted(per_lot)), Lot.remaining >= taken)
            .values(remaining=Lot.remaining - taken, reserved=Lot.reserved + taken)
            .execution_options(synchronize_session=False))
        if result.rowcount != len(per_lot):
            raise RetryTransaction("a lot changed while allocating")
        db.session.execute(insert(StockMovement), [
            {"lot_id": pick.lot_id, "kind": "allocate", "quantity": -pick.quantity, "reserved_delta": pick.quantity,
             "reference": reference, "user_id": user_id}
            for pick in sorted(picks, key=lambda p: p.lot_id)])
    return picks


def point_stock(point_id: int, on: date | None = None) -> dict[tuple[int | None, int | None, int], int]:
    """What each grower has left at a sales point: (household id, enterprise id, product id) → smallest units."""
    on = on or clock.today()
    rows = db.session.execute(
        select(Lot.household_id, Lot.enterprise_id, Lot.product_id, func.sum(Lot.remaining))
        .where(Lot.sales_point_id == point_id, Lot.remaining > 0,
               or_(Lot.best_before.is_(None), Lot.best_before >= on))
        .group_by(Lot.household_id, Lot.enterprise_id, Lot.product_id)).all()
    return {(h, e, p): int(n) for h, e, p, n in rows}


def take_at_point(point_id: int, *, household_id: int | None, enterprise_id: int | None, product_id: int,
                  quantity: int, reference: str, user_id: int | None, on: date) -> list[Pick] | None:
    """A sale at a sales point: the grower's own lots there, oldest first, give `quantity` and it leaves at once
    (allocated and dispatched). None when they hold less than that now; nothing is taken then. A lot emptied by
    another phone's sale since it was read raises RetryTransaction, and the unit of work runs again."""
    check_quantity(quantity)
    supplier = Lot.household_id == household_id if household_id else Lot.enterprise_id == enterprise_id
    lots = db.session.execute(
        select(Lot.id, Lot.remaining).where(Lot.sales_point_id == point_id, Lot.product_id == product_id, supplier,
                                            Lot.remaining > 0, or_(Lot.best_before.is_(None), Lot.best_before >= on))
        .order_by(Lot.received_at, Lot.id)).all()
    picks, need = [], quantity
    for lot_id, remaining in lots:
        take = min(need, remaining)
        if take > 0:
            picks.append(Pick(0, lot_id, product_id, take, household_id, enterprise_id))
            need -= take
        if need == 0:
            break
    if need:
        return None
    for pick in sorted(picks, key=lambda p: p.lot_id):
        if not _move(pick.lot_id, kind="allocate", delta=-pick.quantity, reserved_delta=pick.quantity,
                     reference=reference, user_id=user_id):
            raise RetryTransaction(f"lot {pick.lot_id} changed while selling at a point")
        _move(pick.lot_id, kind="dispatch", reserved_delta=-pick.quantity, reference=reference, user_id=user_id)
    db.session.flush()
    return picks


def release(lot_id: int, quantity: int, *, reference: str, user_id: int | None = None, restock: bool = True) -> None:
    """Undo (part of) an allocation before the goods left: the units go back on their lot (or, spoiled,
    are written off)."""
    check_quantity(quantity)
    if not _move(lot_id, kind="release", delta=quantity, reserved_delta=-quantity, reference=reference,
                 user_id=user_id):
        raise Conflict(_("释放的数量超过了该批次已配货的数量。"))
    if not restock:
        adjust(lot_id, -quantity, reason="spoiled", user_id=user_id, note=reference)
    db.session.flush()


def restock_returned(lot_id: int, quantity: int, *, reference: str, user_id: int | None = None) -> None:
    """Units that had left the service point came back in sellable condition: back on their lot."""
    check_quantity(quantity)
    _move(lot_id, kind="return", delta=quantity, reference=reference, user_id=user_id)
    db.session.flush()


def dispatch(lot_id: int, quantity: int, *, reference: str, user_id: int | None = None) -> None:
    """Allocated units have left the service point (handed over or delivered): no longer reserved."""
    check_quantity(quantity)
    if not _move(lot_id, kind="dispatch", reserved_delta=-quantity, reference=reference, user_id=user_id):
        raise Conflict(_("出库数量超过了该批次已配货的数量。"))


def adjust(lot_id: int, delta: int, *, reason: str, user_id: int | None, note: str | None = None) -> None:
    """Record spoiled, damaged or returned units (negative), or correct a count (either way)."""
    if reason not in ADJUSTMENT_REASONS:
        raise ValidationFailed.on("reason", _("请选择调整原因。"))
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0 or abs(delta) > MAX_QUANTITY:
        raise ValidationFailed.on("quantity", _("调整数量必须是非零整数。"))
    if delta > 0 and reason != "count_correction":
        raise ValidationFailed.on("quantity", _("只有盘点更正可以增加数量。"))
    lot = db.session.get(Lot, lot_id)
    if lot is None:
        raise ValidationFailed.on("lot", _("未知的批次。"))
    audit("stock.adjust", lot, f"{delta:+d} {reason}", user_id=user_id)
    if not _move(lot_id, kind="adjust", delta=delta, reason=reason, note=(note or "").strip() or None,
                 user_id=user_id):
        db.session.refresh(lot)
        raise ValidationFailed.on("quantity", _("调整数量超过了剩余数量（剩余 %(n)d）。", n=lot.remaining))
    db.session.flush()


# --- availability and the manager's stock view ----------------------------------------------------

def available(product_ids: Iterable[int] | None = None, on: date | None = None) -> dict[int, int]:
    """What can be bought now, per product: remaining in unexpired lots. One grouped query."""
    on = on or clock.today()
    query = (select(Lot.product_id, func.sum(Lot.remaining))
             .where(Lot.remaining > 0, Lot.sales_point_id.is_(None),
                    or_(Lot.best_before.is_(None), Lot.best_before >= on))
             .group_by(Lot.product_id))
    if product_ids is not None:
        ids = list(product_ids)
        if not ids:
            return {}
        query = query.where(Lot.product_id.in_(ids))
    return {pid: int(total) for pid, total in db.session.execute(query).all()}


@dataclass
class StockLine:
    product: Product
    on_hand: int      # physically at the service point: remaining + reserved
    reserved: int     # allocated to orders, not yet handed over
    available: int    # remaining in unexpired lots
    expired: int      # remaining in expired lots, waiting to be written off

    @property
    def low(self) -> bool:
        threshold = self.product.low_stock_threshold
        return threshold is not None and self.available < threshold


def stock_overview(on: date | None = None, *, low_only: bool = False) -> list[StockLine]:
    on = on or clock.today()
    unexpired = or_(Lot.best_before.is_(None), Lot.best_before >= on)
    totals = select(
        Lot.product_id,
        func.sum(Lot.remaining + Lot.reserved).label("on_hand"),
        func.sum(Lot.reserved).label("reserved"),
        func.sum(case((unexpired, Lot.remaining), else_=0)).label("available"),
        func.sum(case((unexpired, 0), else_=Lot.remaining)).label("expired"),
    ).group_by(Lot.product_id).subquery()
    rows = db.session.execute(
        select(Product, totals.c.on_hand, totals.c.reserved, totals.c.available, totals.c.expired)
        .outerjoin(totals, totals.c.product_id == Product.id)
        .order_by(Product.active.desc(), category_order(), Product.name)
    ).all()
    lines = [StockLine(p, int(oh or 0), int(r or 0), int(a or 0), int(e or 0)) for p, oh, r, a, e in rows]
    return [line for line in lines if line.low] if low_only else lines


def expiring_lots(within_days: int, on: date | None = None) -> list[Lot]:
    on = on or clock.today()
    return list(db.session.scalars(
        select(Lot).where(Lot.remaining > 0, Lot.best_before.is_not(None),
                          Lot.best_before <= on + timedelta(days=within_days))
        .options(selectinload(Lot.product), selectinload(Lot.household), selectinload(Lot.enterprise))
        .order_by(Lot.best_before, Lot.id)))


def suppliers_on_hand(product_id: int, on: date | None = None) -> list[tuple[str, str, int]]:
    """Who the stock of a product comes from: (kind, name, quantity), unexpired lots only."""
    on = on or clock.today()
    rows = db.session.execute(
        select(Household.head_name, Enterprise.name, func.sum(Lot.remaining))
        .select_from(Lot).outerjoin(Household, Household.id == Lot.household_id)
        .outerjoin(Enterprise, Enterprise.id == Lot.enterprise_id)
        .where(Lot.product_id == product_id, Lot.remaining > 0, or_(Lot.best_before.is_(None), Lot.best_before >= on))
        .group_by(Lot.household_id, Lot.enterprise_id, Household.head_name, Enterprise.name)
        .order_by(func.sum(Lot.remaining).desc())
    ).all()
    return [("household", h, int(n)) if h else ("enterprise", e, int(n)) for h, e, n in rows]


def save_household(household: Household, data: "producers.HouseholdData", *, user_id: int | None = None) -> Household:
    """A household's data saved (`producers.update_household`); a move to another village is refused while any of
    its stock is still at the old village's service point — it is sold or returned first, so nothing is left half
    in the old village."""
    if data.village_id != household.village_id:
        lots = db.session.scalar(select(func.count()).select_from(Lot)
                                 .where(Lot.household_id == household.id, Lot.remaining > 0))
        if lots:
            raise ValidationFailed.on("village_id", _("农户 %(c)s 在原村服务点还有 %(n)d 批库存未售完，请售完或退回后再迁到别的村。",
                                                      c=household.code, n=lots))
    return producers.update_household(household, data, user_id=user_id)


# --- verification -----------------------------------------------------------------------------------

@dataclass
class LotProblem:
    lot_id: int
    message: str


def verify() -> list[LotProblem]:
    """Every lot: its remaining quantity = the sum of its movements, its reserved = their reserved deltas
    (allocated − dispatched − released), its intake = what it received; nothing below zero."""
    sums = select(
        StockMovement.lot_id,
        func.sum(StockMovement.quantity).label("total"),
        func.sum(StockMovement.reserved_delta).label("reserved"),
        func.sum(case((StockMovement.kind == "intake", StockMovement.quantity), else_=0)).label("intake"),
    ).group_by(StockMovement.lot_id).subquery()
    rows = db.session.execute(
        select(Lot.id, Lot.quantity_received, Lot.remaining, Lot.reserved, sums.c.total, sums.c.intake,
               sums.c.reserved)
        .outerjoin(sums, sums.c.lot_id == Lot.id).order_by(Lot.id)
    ).all()
    problems = []
    for lot_id, received, remaining, reserved, total, intake, moved_reserved in rows:
        total, intake, moved_reserved = int(total or 0), int(intake or 0), int(moved_reserved or 0)
        if intake != received:
            problems.append(LotProblem(lot_id, f"received {received} but intake movements say {intake}"))
        if remaining != total:
            problems.append(LotProblem(lot_id, f"remaining {remaining} but movements add up to {total}"))
        if reserved != moved_reserved:
            problems.append(LotProblem(lot_id, f"reserved {reserved} but allocated − dispatched − released = "
                                               f"{moved_reserved}"))
        if remaining < 0 or reserved < 0:
            problems.append(LotProblem(lot_id, f"negative quantity (remaining {remaining}, reserved {reserved})"))
    return problems


def lot_by_token(token: str) -> Lot | None:
    if not token or len(token) > 32:
        return None
    return db.session.scalar(select(Lot).where(Lot.token == token))



"""Contract rules: prices from a month on, standing orders (once per contract and month, never past
the cap, backorders when stock is short), bulk orders at tier prices, delivery, acceptance, monthly
statements and the companies' bank transfers. Services flush, never commit."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import selectinload

from .. import clock
from ..accounts.models import Organization, User
from ..audit.services import record as audit
from ..catalog.models import PriceTier, Product
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import format_fen, yuan_decimal
from ..inventory import services as inventory
from ..models_base import MAX_FEN, value_fen_sql
from ..notifications import services as notices
from ..ledger import services as ledger
from ..orders import services as orders
from ..orders.models import Allocation, Order, OrderLine, Refund
from ..payments import services as payments
from ..sqlwrite import lock_row
from ..uploads import save_photo
from .models import CONTRACT_STATUSES, Backorder, CompanyPayment, Contract, ContractPrice, ContractRun


class ContractCapReached(Conflict):
    code = "contract_cap_reached"


# --- months (the shop's clock owns them; named here as the contract pages and commands use them) ---------

check_month = clock.parse_month
month_after = clock.month_after
months_between = clock.months_between
month_of = clock.month_of
month_end = clock.month_end


# --- contracts -------------------------------------------------------------------------------------

@dataclass
class ContractData:
    number: str
    organization_id: int
    product_id: int
    unit_price_fen: int | None
    monthly_quantity: int
    first_month: str
    last_month: str
    cap_fen: int
    delivery_address: str
    delivery_day: int
    payment_terms_days: int
    status: str


def _check_identity(contract: Contract | None, data: ContractData, problems: dict[str, str]) -> None:
    number = (data.number or "").strip()
    if not number or len(number) > 40:
        problems["number"] = _("请填写合同编号。")
    elif db.session.scalar(select(Contract.id).where(Contract.number == number,
                                                     Contract.id != (contract.id if contract else -1))):
        problems["number"] = _("合同编号 %(n)s 已存在。", n=number)
    organization = db.session.get(Organization, data.organization_id or 0)
    if organization is None or organization.kind != "company":
        problems["organization_id"] = _("请选择一家企业。")
    if db.session.get(Product, data.product_id or 0) is None:
        problems["product_id"] = _("未知的商品。")
    if data.status not in CONTRACT_STATUSES:
        problems["status"] = _("未知的合同状态。")
    if not (data.delivery_address or "").strip():
        problems["delivery_address"] = _("请填写送货地址。")


def _check_terms(data: ContractData, problems: dict[str, str]) -> None:
    try:
        first, last = check_month(data.first_month, "first_month"), check_month(data.last_month, "last_month")
    except ValidationFailed as err:
        problems.update(err.fields)
    else:
        if last < first:
            problems["last_month"] = _("结束月份不能早于开始月份。")
    for name, value, low, high in (("monthly_quantity", data.monthly_quantity, 1, 10**6),
                                   ("delivery_day", data.delivery_day, 1, 28),
                                   ("payment_terms_days", data.payment_terms_days, 0, 365)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems[name] = _("应为 %(a)d–%(b)d 之间的整数。", a=low, b=high)


def _money_problem(value, *, positive: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return positive
    if value > MAX_FEN:
        return _("金额过大（最多 %(m)s）。", m=format_fen(MAX_FEN))
    return None


def _check_money(contract: Contract | None, data: ContractData, problems: dict[str, str]) -> None:
    """The unit price (a new contract's; a saved one changes its price by `change_price`) and the cap, which
    must hold at least one month's goods."""
    price = data.unit_price_fen if contract is None else current_price(contract)
    if contract is None and (problem := _money_problem(price, positive=_("单价必须大于 0。"))):
        problems["unit_price"] = problem
    if problem := _money_problem(data.cap_fen, positive=_("合同总额必须大于 0。")):
        problems["cap"] = problem
    elif "unit_price" not in problems and "monthly_quantity" not in problems and isinstance(price, int) \
            and data.cap_fen < data.monthly_quantity * price:
        problems["cap"] = _("合同总额低于一个月的货值（%(v)s）。", v=format_fen(data.monthly_quantity * price))


def check_contract(contract: Contract | None, data: ContractData) -> None:
    """Every problem with a contract's data at once, each beside its field — or nothing. Writes nothing."""
    problems: dict[str, str] = {}
    _check_identity(contract, data, problems)
    _check_terms(data, problems)
    _check_money(contract, data, problems)
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)


def save_contract(contract: Contract | None, data: ContractData, *, user_id: int | None,
                  scan: bytes | None = None) -> Contract:
    """Check the contract's data, then write it (a new contract with its first price)."""
    check_contract(contract, data)
    if contract is None:
        contract = Contract()
        db.session.add(contract)
    contract.number, contract.organization_id, contract.product_id = (data.number.strip(), data.organization_id,
                                                                      data.product_id)
    contract.monthly_quantity, contract.first_month, contract.last_month = (data.monthly_quantity,
                                                                            data.first_month.strip(),
                                                                            data.last_month.strip())
    contract.cap_fen, contract.delivery_address = data.cap_fen, data.delivery_address.strip()
    contract.delivery_day, contract.payment_terms_days, contract.status = (data.delivery_day, data.payment_terms_days,
                                                                           data.status)
    if scan:
        contract.scan = save_photo(scan, folder="scans")  # checked by content and re-encoded
    db.session.flush()
    audit("contract.save", contract, f"{contract.number} {contract.status}", user_id=user_id)
    if not contract.prices:
        db.session.add(ContractPrice(contract_id=contract.id, from_month=contract.first_month,
                                     unit_price_fen=data.unit_price_fen, user_id=user_id))
        db.session.flush()
        db.session.refresh(contract)
    return contract


def change_price(contract: Contract, from_month: str, unit_price_fen, *, user_id: int | None) -> ContractPrice:
    """A new price from a named month on. Orders already made keep theirs."""
    from_month = check_month(from_month, "from_month")
    if not contract.first_month <= from_month <= contract.last_month:
        raise ValidationFailed.on("from_month", _("月份不在合同期内。"))
    if isinstance(unit_price_fen, bool) or not isinstance(unit_price_fen, int) or unit_price_fen <= 0:
        raise ValidationFailed.on("unit_price", _("单价必须大于 0。"))
    if db.session.scalar(select(Order.id).where(Order.contract_id == contract.id, Order.contract_month >= from_month,
                                                Order.status != "cancelled")):
        raise ValidationFailed.on("from_month", _("该月及以后已有订单，只能从尚未生成订单的月份起调价。"))
    existing = db.session.scalar(select(ContractPrice).where(ContractPrice.contract_id == contract.id,
                                                             ContractPrice.from_month == from_month))
    if existing is not None:
        raise ValidationFailed.on("from_month", _("该月已有调价记录。"))
    price = ContractPrice(contract_id=contract.id, from_month=from_month, unit_price_fen=unit_price_fen, user_id=user_id)
    db.session.add(price)
    db.session.flush()
    audit("contract.price", contract, f"{contract.number}: {unit_price_fen} fen from {from_month}", user_id=user_id)
    return price


def price_for(contract: Contract, month: str) -> int:
    return db.session.scalar(select(ContractPrice.unit_price_fen).where(
        ContractPrice.contract_id == contract.id, ContractPrice.from_month <= month)
        .order_by(ContractPrice.from_month.desc()).limit(1))


def current_price(contract: Contract) -> int | None:
    return db.session.scalar(select(ContractPrice.unit_price_fen).where(ContractPrice.contract_id == contract.id)
                             .order_by(ContractPrice.from_month.desc()).limit(1))


def committed_fen(contract: Contract) -> int:
    """Value already ordered (not cancelled; accepted orders at their accepted value) plus open backorders."""
    ordered = db.session.scalar(select(func.coalesce(func.sum(Order.total_fen), 0)).where(
        Order.contract_id == contract.id, Order.status != "cancelled"))
    waiting = sum(b.value_fen for b in db.session.scalars(
        select(Backorder).where(Backorder.contract_id == contract.id, Backorder.filled_at.is_(None))))
    return int(ordered) + waiting


def _buyer(organization_id: int) -> User | None:
    return db.session.scalar(select(User).where(User.organization_id == organization_id, User.role == "company",
                                                User.active.is_(True)).order_by(User.id))


def _account_order(contract: Contract, buyer: User, quantity: int, price: int, *, month: str | None,
                   at: datetime, channel: str = "standing") -> Order:
    """A contract's order for a month (or a backorder filled): placed by the shop on the company's account,
    its stock allocated, and confirmed — the workflow's move `confirm`, made by the shop itself."""
    line = OrderLine(product_id=contract.product_id, quantity=quantity, unit_price_fen=price, refunded_quantity=0,
                     scale=contract.product.scale)
    order = Order(buyer_id=buyer.id, organization_id=contract.organization_id, channel=channel, status="requested",
                  payment_status="unpaid", payment_method="account", delivery_address=contract.delivery_address,
                  total_fen=line.total_fen, refunded_fen=0, placed_at=at, contract_id=contract.id,
                  contract_month=month)
    db.session.add(order)
    db.session.flush()
    line.order_id = order.id
    db.session.add(line)
    db.session.flush()
    orders.allocate_lines(order, [line], buyer_id=None)
    orders.transition(order, "confirm", user_id=None, note=f"contract {contract.number}", at=at)
    return order


@dataclass
class Generated:
    contract: Contract
    outcome: str            # created / exists / at_cap / not_running / no_buyer / no_stock
    order: Order | None = None
    trimmed: bool = False
    backordered: int = 0

    @property
    def message(self) -> str:
        name = self.contract.number
        return {
            "created": _("%(c)s：已生成订单 %(q)d %(u)s", c=name, q=self.order.lines[0].quantity if self.order else 0,
                         u=self.contract.product.unit) if self.order else "",
            "exists": _("%(c)s：本月订单已存在", c=name),
            "at_cap": _("%(c)s：已达到合同总额，未生成订单", c=name),
            "not_running": _("%(c)s：合同未生效或已暂停/结束", c=name),
            "no_buyer": _("%(c)s：该企业没有采购员账号", c=name),
            "no_stock": _("%(c)s：暂无库存，已全部登记为欠货 %(q)d", c=name, q=self.backordered),
        }[self.outcome] + (_("（已按合同总额削减）") if self.trimmed else "") + (
            _("；欠货 %(q)d", q=self.backordered) if self.backordered and self.outcome == "created" else "")


def generate_for(contract: Contract, month: str, *, at: datetime | None = None) -> Generated:
    """This contract's order for the month: at most once (unique key), never past the cap. The contract's
    row lock is taken first, so two months generated at once cannot both fit under the cap."""
    at = at or clock.now()
    lock_row(Contract, contract.id)
    db.session.refresh(contract)
    if contract.status != "active" or not contract.first_month <= month <= contract.last_month:
        return Generated(contract, "not_running")
    if db.session.scalar(select(ContractRun.id).where(ContractRun.contract_id == contract.id,
                                                      ContractRun.month == month)):
        return Generated(contract, "exists")
    buyer = _buyer(contract.organization_id)
    if buyer is None:
        return Generated(contract, "no_buyer")
    price = price_for(contract, month)
    room = contract.cap_fen - committed_fen(contract)
    quantity = min(contract.monthly_quantity, max(room, 0) // price)
    if quantity <= 0:
        return Generated(contract, "at_cap")
    trimmed = quantity < contract.monthly_quantity
    on_hand = inventory.available([contract.product_id]).get(contract.product_id, 0)
    take = min(quantity, on_hand)
    short = quantity - take
    run = ContractRun(contract_id=contract.id, month=month, created_at=at)
    db.session.add(run)
    db.session.flush()  # claims the month; a concurrent run fails here on the unique key
    order = _account_order(contract, buyer, take, price, month=month, at=at) if take else None
    run.order_id = order.id if order else None
    if short:
        db.session.add(Backorder(contract_id=contract.id, order_id=run.order_id, month=month, quantity=short,
                                 unit_price_fen=price, created_at=at))
    db.session.flush()
    return Generated(contract, "created" if take else "no_stock", order, trimmed, short)


def generate_one(contract_id: int, month: str, *, unit: Callable, at: datetime | None = None) -> Generated:
    """One contract's order for the month, in its own unit of work — `unit`, the caller's (`unit_of_work.run`).

    Safe on several hosts at once: the contract's lock makes them go one after the other, and the (contract,
    month) unique key lets exactly one insert win whatever happens; the others report the month as existing,
    with the winner's order.
    """
    result = unit(lambda: generate_for(db.session.get(Contract, contract_id), month, at=at))
    if result.outcome == "exists":
        order_id = db.session.scalar(select(ContractRun.order_id).where(ContractRun.contract_id == contract_id,
                                                                        ContractRun.month == month))
        result.order = db.session.get(Order, order_id) if order_id else None
    return result


def generate(month: str, *, unit: Callable, at: datetime | None = None) -> list[Generated]:
    """Every contract's order for the month, each in its own unit of work (see generate_one)."""
    month = check_month(month)
    ids = db.session.scalars(select(Contract.id).order_by(Contract.id)).all()
    return [generate_one(contract_id, month, unit=unit, at=at) for contract_id in ids]


def fill_backorder(backorder: Backorder, *, at: datetime | None = None) -> Order:
    """Fill (as much as stock now allows of) a backorder with a new order for the contract. The backorder is
    claimed first by a guarded UPDATE, so however many managers press the button it is filled once."""
    at = at or clock.now()
    claimed = db.session.execute(
        update(Backorder).where(Backorder.id == backorder.id, Backorder.filled_at.is_(None))
        .values(filled_at=at).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise Conflict(_("该欠货已经补发。"))
    db.session.refresh(backorder)
    contract = backorder.contract
    on_hand = inventory.available([contract.product_id]).get(contract.product_id, 0)
    take = min(backorder.quantity, on_hand)
    if take <= 0:
        raise inventory.InsufficientStock([inventory.Shortage(contract.product_id, contract.product.name,
                                                              backorder.quantity, 0)])
    buyer = _buyer(contract.organization_id)
    if buyer is None:
        raise ValidationFailed.on("buyer", _("该企业没有采购员账号。"))
    order = _account_order(contract, buyer, take, backorder.unit_price_fen, month=None, at=at)
    backorder.filled_order_id = order.id
    if take < backorder.quantity:
        db.session.add(Backorder(contract_id=contract.id, order_id=order.id, month=backorder.month,
                                 quantity=backorder.quantity - take, unit_price_fen=backorder.unit_price_fen,
                                 created_at=at))
    db.session.flush()
    notices.notify(notices.company_buyers(contract.organization_id) + notices.managers(contract.product.village_id),
                   "backorder_filled",
                   f"backorder:{backorder.id}", _("合同 %(c)s 的欠货已补发", c=contract.number),
                   _("订单 %(n)s：%(p)s %(q)d %(u)s。", n=order.number, p=contract.product.name, q=take,
                     u=contract.product.unit), f"/orders/{order.id}", at=at)
    return order


# --- bulk orders -------------------------------------------------------------------------------------

@dataclass
class BulkOffer:
    """What a company buyer sees before ordering in quantity: the price, its tiers, the stock on hand."""

    product: Product
    tiers: list[PriceTier]
    available: int


def bulk_offers() -> list[BulkOffer]:
    products = db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.name)).all()
    on_sale = [p for p in products if p.in_season(clock.today())]
    tiers: dict[int, list[PriceTier]] = {}
    for tier in db.session.scalars(select(PriceTier).where(PriceTier.product_id.in_([p.id for p in on_sale]))
                                   .order_by(PriceTier.product_id, PriceTier.min_quantity)):
        tiers.setdefault(tier.product_id, []).append(tier)
    stock = inventory.available([p.id for p in on_sale])
    return [BulkOffer(p, tiers.get(p.id, []), stock.get(p.id, 0)) for p in on_sale]


def bulk_price(product: Product, quantity: int) -> int:
    tier = db.session.scalar(select(PriceTier.unit_price_fen).where(
        PriceTier.product_id == product.id, PriceTier.min_quantity <= quantity)
        .order_by(PriceTier.min_quantity.desc()).limit(1))
    return tier or product.price_fen


def _check_stock(priced: list[tuple[Product, int, int]]) -> None:
    """A request must fit the stock on hand now (every shortfall named at once); it is not held until the
    manager confirms it."""
    stock = inventory.available([product.id for product, _q, _p in priced])
    short = [inventory.Shortage(product.id, product.name, quantity, stock.get(product.id, 0))
             for product, quantity, _p in priced if quantity > stock.get(product.id, 0)]
    if short:
        raise inventory.InsufficientStock(short)


def request_bulk_order(buyer: User, lines: list[tuple[int, int]], *, at: datetime | None = None) -> Order:
    """A company buyer — or a unit's coordinator, for the unit (its canteen, its holiday gifts) — orders in
    quantity, on account: ``lines`` of (product id, quantity), each product at its bulk tier price, within the
    stock on hand, for the service point to confirm. What the unit buys counts toward its target."""
    if buyer.role not in orders.UNIT_BUYERS or buyer.organization_id is None:
        raise ValidationFailed.on("product_id", _("只有企业采购员或单位协调员可以批量订购。"))
    if not lines:
        raise ValidationFailed.on("lines", _("请至少订购一种商品。"))
    if len(lines) > orders.MAX_CART_LINES:
        raise ValidationFailed.on("lines", _("一个订单最多 %(n)d 种商品。", n=orders.MAX_CART_LINES))
    if len({product_id for product_id, _q in lines}) != len(lines):
        raise ValidationFailed.on("lines", _("每种商品只能出现一次。"))
    priced = []
    for line_product_id, line_quantity in lines:
        product = orders.sellable(line_product_id)
        inventory.check_quantity(line_quantity)
        priced.append((product, line_quantity, bulk_price(product, line_quantity)))
    _check_stock(priced)
    at = at or clock.now()
    order = Order(buyer_id=buyer.id, organization_id=buyer.organization_id, channel="bulk", status="requested",
                  payment_status="unpaid", payment_method="account", delivery_address=buyer.organization.name,
                  total_fen=sum(q * price for _p, q, price in priced), refunded_fen=0, placed_at=at)
    db.session.add(order)
    db.session.flush()
    db.session.add_all([OrderLine(order_id=order.id, product_id=product.id, quantity=q, unit_price_fen=price,
                                  refunded_quantity=0) for product, q, price in priced])
    orders.record_event(order, "requested", user_id=buyer.id, at=at)
    db.session.flush()
    orders.tell_placed(order, buyer, at=at)
    return order


def confirm_bulk_order(order: Order, *, user_id: int) -> None:
    """The manager confirms: the stock is allocated now, all or nothing."""
    order = orders.lock(order)
    orders.transition(order, "confirm", user_id=user_id)
    orders.allocate_lines(order, list(order.lines), buyer_id=None, user_id=user_id)


def refuse_bulk_order(order: Order, *, reason: str, user_id: int) -> None:
    """The manager declines a request, saying why (the buyer reads it on the order's page)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValidationFailed.on("reason", _("请写明拒绝的原因。"))
    orders.transition(orders.lock(order), "refuse", user_id=user_id, note=reason)
    audit("order.refuse", order, reason, user_id=user_id)


# --- delivery and acceptance ----------------------------------------------------------------------------

def deliver(order: Order, *, user_id: int, at: datetime | None = None) -> None:
    at = at or clock.now()
    order = orders.lock(order)
    orders.transition(order, "deliver", user_id=user_id, at=at, delivered_at=at)
    orders.dispatch_held(order, user_id=user_id)
    notices.notify(notices.company_buyers(order.organization_id), "awaiting_acceptance", f"delivered:{order.id}",
                   _("订单 %(n)s 已送达，请验收", n=order.number),
                   _("送到：%(a)s。验收后计入对账单。", a=order.delivery_address or ""), f"/company/orders/{order.id}/accept",
                   at=at)


def _refusals(order: Order, accepted: dict[int, int]) -> dict[int, int]:
    """Units refused per line: delivered less accepted (a line not named is accepted in full)."""
    lines = {line.id: line for line in order.lines}
    if set(accepted) - set(lines):
        raise ValidationFailed.on("lines", _("订单中没有这一行。"))
    refused = {}
    for line_id, line in lines.items():
        quantity = accepted.get(line_id, line.quantity)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise ValidationFailed.on(f"line_{line_id}", _("验收数量必须是不小于 0 的整数。"))
        if quantity > line.quantity:
            raise ValidationFailed.on(f"line_{line_id}", _("验收数量不能超过送货数量（%(n)d）。", n=line.quantity))
        refused[line_id] = line.quantity - quantity
    return refused


def accept(order: Order, accepted: dict[int, int], *, user_id: int, note: str | None = None,
           at: datetime | None = None) -> None:
    """验收: the buyer accepts all or part of a delivery. Only the accepted units are sold: they post
    to the suppliers' ledgers and to the company's receivable; refused units come off the latest allocations
    first."""
    at = at or clock.now()
    order = orders.lock(order)
    refused = _refusals(order, accepted)
    note = (note or "").strip() or None
    if sum(refused.values()) and not note:
        raise ValidationFailed.on("note", _("拒收或短少时请写明原因。"))
    for line in order.lines:
        left = refused[line.id]
        for allocation in sorted(line.allocations, key=lambda a: a.id, reverse=True):
            take = min(left, allocation.held)
            if take:
                orders.give_back(allocation, take)
                left -= take
    order = orders.lock(order)  # the allocations as they now are
    total = sum(line.sold_fen for line in order.lines)
    charged = {"payment_status": "paid"} if total else {}
    orders.transition(order, "accept", user_id=user_id, note=note, at=at, accepted_at=at, acceptance_note=note,
                      total_fen=total, rejected_units=sum(refused.values()), **charged)
    if total:
        payments.charge_on_account(order, user_id=user_id, at=at)
    audit("delivery.accept", order, f"accepted value {total} fen, refused {sum(refused.values())}", user_id=user_id)
    db.session.flush()


def handle_rejected(order: Order, *, restock: bool, user_id: int) -> None:
    """The manager decides what becomes of refused units: back on their lots, or written off. Claimed by a
    guarded UPDATE first, so the units are handled once however many managers act at once."""
    order = orders.lock(order)
    outcome = "restocked" if restock else "written_off"
    claimed = db.session.execute(
        update(Order).where(Order.id == order.id, Order.rejected_units > 0, Order.rejected_handled.is_(None))
        .values(rejected_handled=outcome).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise Conflict(_("没有待处理的拒收商品。"))
    if restock:
        for line in order.lines:
            for allocation in sorted(line.allocations, key=lambda a: a.lot_id):
                if allocation.released_quantity:
                    inventory.restock_returned(allocation.lot_id, allocation.released_quantity,
                                               reference=f"order:{order.id}:rejected", user_id=user_id)
    orders.record_event(order, outcome, kind="note", user_id=user_id)
    audit("delivery.rejected", order, f"{order.rejected_units} units {outcome}", user_id=user_id)
    db.session.flush()
    db.session.refresh(order)


# --- what the pages list --------------------------------------------------------------------------------

def _company_orders():
    return (select(Order).where(Order.payment_method == "account")
            .options(selectinload(Order.lines).selectinload(OrderLine.product), selectinload(Order.organization))
            .order_by(Order.id))


@dataclass
class Queue:
    """The service point's company work: orders by status, refused units to handle, backorders to fill."""

    by_status: dict[str, list[Order]]
    rejected: list[Order]
    backorders: list[Backorder]


def service_point_queue() -> Queue:
    query = _company_orders()
    by_status = {status: list(db.session.scalars(query.where(Order.status == status)))
                 for status in ("requested", "confirmed", "delivered")}
    rejected = list(db.session.scalars(query.where(Order.rejected_units > 0, Order.rejected_handled.is_(None))))
    backorders = list(db.session.scalars(select(Backorder).where(Backorder.filled_at.is_(None))
                                         .options(selectinload(Backorder.contract).selectinload(Contract.product))
                                         .order_by(Backorder.id)))
    return Queue(by_status, rejected, backorders)


def company_contracts(organization_id: int | None = None) -> list[Contract]:
    query = select(Contract).options(selectinload(Contract.organization), selectinload(Contract.product))
    if organization_id is not None:
        query = query.where(Contract.organization_id == organization_id)
    return list(db.session.scalars(query.order_by(Contract.number)))


def awaiting_acceptance(organization: Organization) -> list[Order]:
    return list(db.session.scalars(select(Order).where(Order.organization_id == organization.id,
                                                       Order.status == "delivered").order_by(Order.id)))


def contract_orders(contract: Contract) -> list[Order]:
    return list(db.session.scalars(select(Order).where(Order.contract_id == contract.id)
                                   .options(selectinload(Order.lines)).order_by(Order.id.desc())))


def recent_payments(limit: int = 50) -> list[CompanyPayment]:
    return list(db.session.scalars(select(CompanyPayment).order_by(CompanyPayment.id.desc()).limit(limit)))


def _buys_on_account():
    """Units that buy on account: every company, and any other unit that ever ordered on account (its
    coordinator's bulk orders)."""
    return or_(Organization.kind == "company", Organization.id.in_(
        select(Order.organization_id).where(Order.payment_method == "account", Order.organization_id.is_not(None))))


def companies() -> list[Organization]:
    """The units that buy on account — what they owe, what they paid — by name."""
    return list(db.session.scalars(select(Organization).where(_buys_on_account()).order_by(Organization.name)))


def statement_rows(statement: "MonthlyStatement") -> list[list]:
    """A company's monthly statement as a table (for its XLSX)."""
    rows = [[_("对账单"), statement.organization.name, statement.month],
            [_("订单"), _("商品"), _("验收数量"), _("单价（元）"), _("金额（元）"), _("验收日期"), _("送货数量"), _("拒收"),
             _("验收说明")]]
    for order in statement.orders:
        for line in order.lines:
            rows.append([order.number, line.product.name, line.sold, yuan_decimal(line.unit_price_fen),
                         yuan_decimal(line.sold_fen), clock.local_day(order.accepted_at).isoformat(),
                         line.quantity, line.refused, order.acceptance_note])
    rows += [[_("应付金额（元）"), yuan_decimal(statement.due_fen)], [_("已付（元）"), yuan_decimal(statement.paid_fen)],
             [_("付款期限"), statement.due_date.isoformat()]]
    return rows


# --- statements and payments ------------------------------------------------------------------------------

@dataclass
class MonthlyStatement:
    organization: Organization
    month: str
    orders: list[Order]
    due_fen: int
    due_date: date
    paid_fen: int = 0

    @property
    def outstanding_fen(self) -> int:
        return self.due_fen - self.paid_fen

    def overdue(self, today: date) -> bool:
        return self.outstanding_fen > 0 and today > self.due_date


def owed_by(organization: Organization) -> int:
    """What the company owes: its account's balance."""
    return ledger.kept_balance(ledger.find_account(organization_id=organization.id))


def statements(organization: Organization) -> list[MonthlyStatement]:
    """The accepted deliveries of each month; payments settle the oldest first."""
    accepted = db.session.scalars(
        select(Order).where(Order.organization_id == organization.id, Order.accepted_at.is_not(None))
        .options(selectinload(Order.lines).selectinload(OrderLine.allocations),
                 selectinload(Order.lines).selectinload(OrderLine.product))
        .order_by(Order.accepted_at)).all()
    terms = db.session.scalar(select(func.max(Contract.payment_terms_days))
                              .where(Contract.organization_id == organization.id)) or 30
    by_month: dict[str, list[Order]] = {}
    for order in accepted:
        by_month.setdefault(month_of(clock.local_day(order.accepted_at)), []).append(order)
    result = [MonthlyStatement(organization, month, items, sum(o.total_fen - o.refunded_fen for o in items),
                               month_end(month) + timedelta(days=terms))
              for month, items in sorted(by_month.items())]
    paid = int(db.session.scalar(select(func.coalesce(func.sum(CompanyPayment.amount_fen), 0))
                                 .where(CompanyPayment.organization_id == organization.id)))
    for statement in result:
        statement.paid_fen = min(statement.due_fen, paid)
        paid -= statement.paid_fen
    return result


def tell_statements(today: date) -> int:
    """Once a month is over, each company that had deliveries accepted in it is told its statement is ready."""
    month = month_of(today.replace(day=1) - timedelta(days=1))
    since, until = clock.day_bounds(clock.month_start(month), month_end(month))
    organizations = db.session.scalars(
        select(Organization).where(Organization.id.in_(
            select(Order.organization_id).where(Order.accepted_at >= since, Order.accepted_at < until)))
        .order_by(Organization.id)).all()
    told = 0
    for organization in organizations:
        due = next((s for s in statements(organization) if s.month == month), None)
        if due is None:
            continue
        told += notices.notify(notices.company_buyers(organization.id), "statement_issued",
                               f"statement:{organization.id}:{month}", _("%(m)s 对账单已出", m=month),
                               _("应付 %(d)s，付款期限 %(t)s。", d=format_fen(due.due_fen), t=due.due_date),
                               f"/companies/{organization.id}/statements/{month}")
    return told


def record_payment(organization: Organization, amount_fen, *, reference: str, paid_on: date,
                   user_id: int) -> CompanyPayment:
    """A bank transfer from the company: settles its receivable, never more than it owes — the company's
    balance changes only by a guarded UPDATE, so transfers recorded at once cannot overpay it."""
    ledger.check_amount(amount_fen)
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写转账流水号。"))
    account = ledger.company_account(organization.id)
    owed = ledger.kept_balance(account)
    if amount_fen > owed:
        raise ledger.ExceedsBalance(_("付款金额超过了应收余额（%(o)s）。", o=format_fen(owed)))
    payment = CompanyPayment(organization_id=organization.id, amount_fen=amount_fen, reference=reference,
                             paid_on=paid_on, user_id=user_id)
    db.session.add(payment)
    db.session.flush()
    try:
        ledger.post("receipt", "company_payment", payment.id, [
            ledger.Line(ledger.platform_account("bank"), amount_fen), ledger.Line(account, -amount_fen),
        ], user_id=user_id, memo=reference, at=clock.at_local(paid_on))
    except ledger.ExceedsBalance:
        owed = ledger.kept_balance(account)
        raise ledger.ExceedsBalance(_("付款金额超过了应收余额（%(o)s）。", o=format_fen(owed))) from None
    audit("company.payment", payment, f"{organization.name} {amount_fen} fen {reference}", user_id=user_id)
    return payment


def verify() -> list[str]:
    """Each company's receivable equals its accepted deliveries, less refunds credited to it, less its
    transfers — and is never negative."""
    accepted = dict(db.session.execute(
        select(Order.organization_id, func.sum(Order.total_fen)).where(Order.payment_method == "account",
                                                                        Order.accepted_at.is_not(None))
        .group_by(Order.organization_id)).all())
    refunded = dict(db.session.execute(
        select(Order.organization_id, func.sum(Refund.amount_fen)).join(Order, Order.id == Refund.order_id)
        .where(Refund.method == "account").group_by(Order.organization_id)).all())
    paid = dict(db.session.execute(select(CompanyPayment.organization_id, func.sum(CompanyPayment.amount_fen))
                                   .group_by(CompanyPayment.organization_id)).all())
    problems = []
    for organization in db.session.scalars(select(Organization).where(_buys_on_account()).order_by(Organization.id)):
        expected = int(accepted.get(organization.id, 0)) - int(refunded.get(organization.id, 0)) \
            - int(paid.get(organization.id, 0))
        owed = owed_by(organization)
        if owed != expected:
            problems.append(f"company {organization.id} ({organization.name}): receivable {owed} fen, but accepted "
                            f"deliveries − refunds − transfers = {expected} fen")
        if owed < 0:
            problems.append(f"company {organization.id} ({organization.name}): receivable is negative ({owed} fen)")
    return problems


# --- progress --------------------------------------------------------------------------------------------

@dataclass
class Progress:
    contract: Contract
    delivered_quantity: int
    delivered_fen: int
    accepted_quantity: int
    accepted_fen: int
    committed_fen: int
    months_left: int
    projected_fen: int
    backordered: int = 0
    orders: list[Order] = field(default_factory=list)


def progress(contract: Contract, today: date) -> Progress:
    delivered = db.session.execute(
        select(func.coalesce(func.sum(OrderLine.quantity), 0),
               func.coalesce(func.sum(value_fen_sql(OrderLine.quantity, OrderLine.unit_price_fen, OrderLine.scale)), 0))
        .join(Order).where(Order.contract_id == contract.id, Order.status.in_(("delivered", "accepted")))).one()
    lines = (select(func.sum(Allocation.sold).label("units"), OrderLine.unit_price_fen, OrderLine.scale)
             .select_from(Allocation).join(OrderLine).join(Order)
             .where(Order.contract_id == contract.id, Order.status == "accepted")
             .group_by(OrderLine.id, OrderLine.unit_price_fen, OrderLine.scale).subquery())
    accepted = db.session.execute(
        select(func.coalesce(func.sum(lines.c.units), 0),
               func.coalesce(func.sum(value_fen_sql(lines.c.units, lines.c.unit_price_fen, lines.c.scale)), 0))).one()
    committed = committed_fen(contract)
    this_month = month_of(today)
    start = max(this_month, contract.first_month)
    months_left = max(0, months_between(start, contract.last_month)) if start <= contract.last_month else 0
    generated_this_month = db.session.scalar(select(Order.id).where(Order.contract_id == contract.id,
                                                                    Order.contract_month == this_month))
    if generated_this_month and months_left:
        months_left -= 1
    price = current_price(contract) or 0
    projected = min(contract.cap_fen, committed + months_left * contract.monthly_quantity * price)
    backordered = int(db.session.scalar(select(func.coalesce(func.sum(Backorder.quantity), 0)).where(
        Backorder.contract_id == contract.id, Backorder.filled_at.is_(None))))
    return Progress(contract, int(delivered[0]), int(delivered[1]), int(accepted[0]), int(accepted[1]), committed,
                    months_left, projected, backordered)

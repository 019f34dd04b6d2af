"""Posting rules, payouts, balances, statements and verification of the households' income ledger.

Every posting is one JournalTransaction answering to one source (unique per kind and source), with
entries that sum to zero. Nothing is updated or deleted; corrections are new transactions.
Supplier balances are also kept on the account row, changed only by a guarded UPDATE that keeps
them from going positive (a supplier never owes the platform), so a payout can never exceed what
is owed even when two managers pay out at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Iterable

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, case, func, select, update

from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..sqlhelpers import insert_ignoring_conflicts, local_month
from .models import PAYOUT_METHODS, Account, Entry, JournalTransaction, Payout
from ..audit.services import record as audit
from ..formatting import format_fen

UTC_OFFSET = timedelta(hours=8)  # Asia/Shanghai


class ExceedsBalance(Conflict):
    code = "exceeds_balance"


class AlreadyPosted(Conflict):
    code = "already_posted"


# --- accounts -----------------------------------------------------------------------------------

def _get_or_create(**key) -> Account:
    account = db.session.scalar(select(Account).filter_by(**key))
    if account is not None:
        return account
    kind = "household" if "household_id" in key else "enterprise" if "enterprise_id" in key else "platform"
    db.session.execute(insert_ignoring_conflicts(Account.__table__).values(kind=kind, balance_fen=0, **key))
    return db.session.scalar(select(Account).filter_by(**key))


def household_account(household_id: int) -> Account:
    return _get_or_create(household_id=household_id)


def enterprise_account(enterprise_id: int) -> Account:
    return _get_or_create(enterprise_id=enterprise_id)


def supplier_account(household_id: int | None, enterprise_id: int | None) -> Account:
    return household_account(household_id) if household_id else enterprise_account(enterprise_id)


def platform_account(code: str) -> Account:
    return _get_or_create(code=code)


# --- posting --------------------------------------------------------------------------------------

@dataclass
class Line:
    account: Account
    amount_fen: int
    allocation_id: int | None = None
    quantity: int | None = None


def post(kind: str, source_type: str, source_id: int, lines: Iterable[Line], *, order_id: int | None = None,
         user_id: int | None = None, memo: str | None = None, at: datetime | None = None) -> JournalTransaction:
    lines = [line for line in lines if line.amount_fen != 0]
    if sum(line.amount_fen for line in lines) != 0:
        raise AssertionError(f"{kind} {source_type}:{source_id} does not balance")
    already = select(JournalTransaction.id).filter_by(kind=kind, source_type=source_type, source_id=source_id)
    if db.session.scalar(already) is not None:  # the unique key is the last line; this is the clear message
        raise AlreadyPosted(_("该笔账已记过，不能重复记账。"))
    from ..models_base import utcnow

    at = at or utcnow()
    transaction = JournalTransaction(kind=kind, source_type=source_type, source_id=source_id, order_id=order_id,
                                     user_id=user_id, memo=memo, created_at=at)
    db.session.add(transaction)
    db.session.flush()
    for line in lines:
        db.session.add(Entry(transaction_id=transaction.id, account_id=line.account.id, amount_fen=line.amount_fen,
                             allocation_id=line.allocation_id, quantity=line.quantity, created_at=at))
    # supplier balances, in account id order (no deadlocks); a supplier's balance never goes positive
    per_account: dict[int, int] = {}
    for line in lines:
        if line.account.kind != "platform":
            per_account[line.account.id] = per_account.get(line.account.id, 0) + line.amount_fen
    for account_id in sorted(per_account):
        delta = per_account[account_id]
        result = db.session.execute(
            update(Account).where(Account.id == account_id, Account.balance_fen + delta <= 0)
            .values(balance_fen=Account.balance_fen + delta).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise ExceedsBalance(_("金额超过了应付给供货方的余额。"))
    db.session.flush()
    for line in lines:
        if line.account.kind != "platform":
            db.session.expire(line.account, ["balance_fen"])
    return transaction


def split_largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split `total` fen in proportion to `weights`, the parts adding up exactly (largest remainder)."""
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    shortfall = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[:shortfall]:
        parts[i] += 1
    return parts


def fee_for(amount_fen: int, permille: int | None = None) -> int:
    permille = current_app.config["SHOP_SERVICE_FEE_PERMILLE"] if permille is None else permille
    return amount_fen * permille // 1000


def receivables_code(organization_id: int) -> str:
    """Each company's receivable is its own platform account."""
    return f"receivables:{organization_id}"


def post_sale(order, *, debit: str, user_id: int | None = None, at: datetime | None = None) -> JournalTransaction:
    """Credit each supplier with its allocations' value less the service fee; debit `debit`.

    `order` is an orders.models.Order whose allocations say which lot (which supplier) filled each
    line; released units (given back before the sale) are not sold.
    """
    lines: list[Line] = []
    total = 0
    fees = 0
    for order_line in order.lines:
        sold = [(a, a.quantity - a.released_quantity) for a in order_line.allocations
                if a.quantity - a.released_quantity > 0]
        values = [quantity * order_line.unit_price_fen for _, quantity in sold]
        line_total = sum(values)
        line_fee = fee_for(line_total)
        for (allocation, quantity), value, fee in zip(sold, values, split_largest_remainder(line_fee, values)):
            account = supplier_account(allocation.household_id, allocation.enterprise_id)
            lines.append(Line(account, -(value - fee), allocation.id, quantity))
        total += line_total
        fees += line_fee
    lines.append(Line(platform_account(debit), total))
    lines.append(Line(platform_account("fee_income"), -fees))
    return post("sale", "order", order.id, lines, order_id=order.id, user_id=user_id,
                memo=f"order {order.id}", at=at)


def _sale_credits(allocation_ids: list[int]) -> dict[int, tuple[int, int]]:
    """allocation → (units sold, net credited) from the sale postings."""
    rows = db.session.execute(
        select(Entry.allocation_id, Entry.quantity, Entry.amount_fen).join(JournalTransaction)
        .where(JournalTransaction.kind == "sale", Entry.allocation_id.in_(allocation_ids))).all()
    return {allocation_id: (quantity, -amount) for allocation_id, quantity, amount in rows}


def _lock_supplier(account: Account) -> int:
    """Take the account row's write lock (PostgreSQL row lock, SQLite write lock); return what is owed."""
    db.session.execute(update(Account).where(Account.id == account.id).values(balance_fen=Account.balance_fen)
                       .execution_options(synchronize_session=False))
    return -db.session.scalar(select(Account.balance_fen).where(Account.id == account.id))


def post_refund(refund, *, credit: str, user_id: int | None = None) -> JournalTransaction:
    """Reverse exactly the refunded units: each supplier's net credit for them and the fee on them.

    `refund` is an orders.models.Refund whose lines name allocations and units. What a supplier has
    already been paid out cannot be taken back from the ledger: that part goes to the platform's
    refund-shortfall account (to be recovered or written off), so no balance owed goes negative.
    A remainder that is not a whole number of units (a partial refund made in Stripe's dashboard)
    is the platform's loss, never a household's.
    """
    credits = _sale_credits([rl.allocation_id for rl in refund.lines])
    lines: list[Line] = []
    reversed_value = 0
    fee_back = 0
    shortfall = platform_account("refund_shortfall")
    for refund_line in refund.lines:
        allocation = refund_line.allocation
        price = allocation.line.unit_price_fen
        # no credit entry means the fee took the whole value (entries are never zero)
        sold, net = credits.get(allocation.id, (allocation.quantity - allocation.released_quantity, 0))
        fee = sold * price - net
        before = allocation.refunded_quantity - refund_line.quantity  # units refunded by earlier refunds
        fee_reversed = fee * (before + refund_line.quantity) // sold - fee * before // sold
        value = refund_line.quantity * price
        net_reversed = value - fee_reversed
        account = supplier_account(allocation.household_id, allocation.enterprise_id)
        owed = _lock_supplier(account) - sum(p.amount_fen for p in lines if p.account.id == account.id)
        from_supplier = min(net_reversed, max(owed, 0))
        lines.append(Line(account, from_supplier, allocation.id, refund_line.quantity))
        if net_reversed > from_supplier:
            lines.append(Line(shortfall, net_reversed - from_supplier, allocation.id, refund_line.quantity))
        reversed_value += value
        fee_back += fee_reversed
    remainder = refund.amount_fen - reversed_value
    if remainder < 0:
        raise AssertionError("refund lines are worth more than the refund")
    lines.append(Line(platform_account("fee_income"), fee_back))
    if remainder:
        lines.append(Line(shortfall, remainder))
    lines.append(Line(platform_account(credit), -refund.amount_fen))
    return post("refund", "refund", refund.id, lines, order_id=refund.order_id, user_id=user_id,
                memo=f"refund {refund.id} of order {refund.order_id}")


# --- payouts ------------------------------------------------------------------------------------------

def platform_balance(code: str) -> int:
    """A platform account's balance (debit positive), summed from its entries."""
    account = db.session.scalar(select(Account.id).where(Account.code == code))
    if account is None:
        return 0
    return int(db.session.scalar(select(func.coalesce(func.sum(Entry.amount_fen), 0))
                                 .where(Entry.account_id == account)))


def pay_out(account: Account, amount_fen, *, method: str, reference: str, user_id: int,
            at: datetime | None = None) -> Payout:
    """Pay money owed out to a supplier. Never more than is owed, even when two managers pay at once."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed.on("amount", _("结算金额必须大于 0。"))
    if method not in PAYOUT_METHODS:
        raise ValidationFailed.on("method", _("请选择结算方式。"))
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写凭证号（收据号或转账流水号）。"))
    if account.kind == "platform":
        raise ValidationFailed.on("account", _("只能向供货方结算。"))
    owed = -db.session.scalar(select(Account.balance_fen).where(Account.id == account.id))
    if amount_fen > owed:
        raise ExceedsBalance(_("结算金额超过了应付余额（%(o)s）。", o=format_fen(owed)))
    payout = Payout(account_id=account.id, amount_fen=amount_fen, method=method, reference=reference, user_id=user_id)
    if at is not None:
        payout.created_at = at
    db.session.add(payout)
    db.session.flush()
    cash = "cash_on_hand" if method == "cash" else "bank"
    try:
        post("payout", "payout", payout.id, [Line(account, amount_fen), Line(platform_account(cash), -amount_fen)],
             user_id=user_id, memo=reference, at=at)
    except ExceedsBalance:
        owed = -db.session.scalar(select(Account.balance_fen).where(Account.id == account.id))
        raise ExceedsBalance(_("结算金额超过了应付余额（%(o)s）。", o=format_fen(owed))) from None
    audit("payout", payout, f"{amount_fen} fen {method} {reference}", user_id=user_id)
    return payout



# --- figures ---------------------------------------------------------------------------------------------

def check_period(start: date, end: date) -> None:
    """A period of days (statements, reports) may not end before it starts."""
    if end < start:
        raise ValidationFailed.on("to", _("结束日期不能早于开始日期。"))


def parse_period(start: str | None, end: str | None, default_start: date, default_end: date) -> tuple[date, date]:
    """`?from=YYYY-MM-DD&to=YYYY-MM-DD` as typed into a page; either may be left out."""
    try:
        lo = date.fromisoformat(start) if start else default_start
        hi = date.fromisoformat(end) if end else default_end
    except ValueError:
        raise ValidationFailed.on("from", _("日期格式应为 YYYY-MM-DD。")) from None
    check_period(lo, hi)
    return lo, hi


def local_day_start(day: date) -> datetime:
    """The UTC instant at which a day in Asia/Shanghai begins."""
    return datetime.combine(day, time.min) - UTC_OFFSET


@dataclass
class Summary:
    owed_fen: int
    earned_fen: int        # sale credits in the period
    refunded_fen: int      # reversed by refunds in the period
    paid_out_fen: int      # paid out in the period
    by_month: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM, net income)


def summary(account: Account, start: date, end: date) -> Summary:
    """One account's figures for a period, each one SQL aggregate."""
    lo, hi = local_day_start(start), local_day_start(end + timedelta(days=1))
    amount = -Entry.amount_fen
    row = db.session.execute(
        select(
            func.coalesce(func.sum(case((JournalTransaction.kind == "sale", amount), else_=0)), 0),
            func.coalesce(func.sum(case((JournalTransaction.kind == "refund", -amount), else_=0)), 0),
            func.coalesce(func.sum(case((JournalTransaction.kind == "payout", -amount), else_=0)), 0),
        ).select_from(Entry).join(JournalTransaction)
        .where(Entry.account_id == account.id, Entry.created_at >= lo, Entry.created_at < hi)).one()
    month = local_month(Entry.created_at)
    months = db.session.execute(
        select(month, func.sum(amount)).join(JournalTransaction)
        .where(Entry.account_id == account.id, Entry.created_at >= lo, Entry.created_at < hi,
               JournalTransaction.kind.in_(("sale", "refund")))
        .group_by(month).order_by(month)).all()
    return Summary(owed_fen=-db.session.scalar(select(Account.balance_fen).where(Account.id == account.id)),
                   earned_fen=int(row[0]), refunded_fen=int(row[1]), paid_out_fen=int(row[2]),
                   by_month=[(m, int(v)) for m, v in months])


def owed_at(account: Account, instant: datetime) -> int:
    return -int(db.session.scalar(select(func.coalesce(func.sum(Entry.amount_fen), 0))
                                  .where(Entry.account_id == account.id, Entry.created_at < instant)))


@dataclass
class StatementRow:
    at: datetime
    kind: str
    amount_fen: int          # from the supplier's side: + earned, − refunded or paid out
    order_id: int | None
    product: str | None = None
    quantity: int | None = None
    unit_price_fen: int | None = None
    organization: str | None = None
    reference: str | None = None

    @property
    def day(self) -> str:
        """The day in Asia/Shanghai, YYYY-MM-DD."""
        return (self.at + UTC_OFFSET).strftime("%Y-%m-%d")


@dataclass
class Statement:
    account: Account
    start: date
    end: date
    opening_fen: int
    rows: list[StatementRow]

    @property
    def closing_fen(self) -> int:
        return self.opening_fen + sum(r.amount_fen for r in self.rows)

    def total(self, kind: str) -> int:
        return sum(r.amount_fen for r in self.rows if r.kind == kind)


def statement(account: Account, start: date, end: date) -> Statement:
    """Opening balance, each sale, refund and payout of the period, closing balance."""
    from ..accounts.models import Organization
    from ..catalog.models import Product
    from ..orders.models import Allocation, Order, OrderLine

    check_period(start, end)
    lo, hi = local_day_start(start), local_day_start(end + timedelta(days=1))
    rows = db.session.execute(
        select(Entry.created_at, JournalTransaction.kind, Entry.amount_fen, JournalTransaction.order_id,
               Product.name, Entry.quantity, OrderLine.unit_price_fen, Organization.name, Payout.reference)
        .select_from(Entry).join(JournalTransaction)
        .outerjoin(Allocation, Allocation.id == Entry.allocation_id)
        .outerjoin(OrderLine, OrderLine.id == Allocation.line_id)
        .outerjoin(Product, Product.id == OrderLine.product_id)
        .outerjoin(Order, Order.id == JournalTransaction.order_id)
        .outerjoin(Organization, Organization.id == Order.organization_id)
        .outerjoin(Payout, and_(JournalTransaction.source_type == "payout", Payout.id == JournalTransaction.source_id))
        .where(Entry.account_id == account.id, Entry.created_at >= lo, Entry.created_at < hi)
        .order_by(Entry.created_at, Entry.id)).all()
    return Statement(account, start, end, owed_at(account, lo), [
        StatementRow(at, kind, -amount, order_id, product, quantity, price, org, ref)
        for at, kind, amount, order_id, product, quantity, price, org, ref in rows])


# --- verification ------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """Every invariant of the ledger; an empty list when all hold."""
    from ..orders.models import PAID_STATES, Allocation, Order, OrderLine, RefundLine

    problems: list[str] = []
    unbalanced = db.session.execute(
        select(Entry.transaction_id, func.sum(Entry.amount_fen)).group_by(Entry.transaction_id)
        .having(func.sum(Entry.amount_fen) != 0)).all()
    problems += [f"transaction {t} does not sum to zero (off by {s} fen)" for t, s in unbalanced]

    sums = select(Entry.account_id, func.sum(Entry.amount_fen).label("total")).group_by(Entry.account_id).subquery()
    for account_id, kind, cached, total in db.session.execute(
            select(Account.id, Account.kind, Account.balance_fen, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == Account.id).where(Account.kind != "platform")).all():
        if total > 0:
            problems.append(f"{kind} account {account_id} owes the platform {total} fen (balance owed is negative)")
        if cached != total:
            problems.append(f"{kind} account {account_id}: kept balance {cached} but entries add up to {total}")

    def scalar(query) -> int:
        return int(db.session.scalar(query) or 0)

    credits = scalar(select(func.sum(-Entry.amount_fen)).join(JournalTransaction)
                     .where(JournalTransaction.kind == "sale", Entry.allocation_id.is_not(None)))
    reversals = scalar(select(func.sum(Entry.amount_fen)).join(JournalTransaction)
                       .where(JournalTransaction.kind == "refund", Entry.allocation_id.is_not(None)))
    sold = scalar(select(func.sum((Allocation.quantity - Allocation.released_quantity) * OrderLine.unit_price_fen))
                  .select_from(Allocation).join(OrderLine).join(Order).where(Order.status.in_(PAID_STATES)))
    refunded = scalar(select(func.sum(RefundLine.quantity * OrderLine.unit_price_fen)).select_from(RefundLine)
                      .join(Allocation, Allocation.id == RefundLine.allocation_id).join(OrderLine))
    fee_account = db.session.scalar(select(Account.id).where(Account.code == "fee_income"))
    fees = scalar(select(func.sum(-Entry.amount_fen)).where(Entry.account_id == fee_account)) if fee_account else 0
    if credits - reversals != sold - refunded - fees:
        problems.append(f"sale credits − refund reversals = {credits - reversals} fen, but paid allocations − "
                        f"refunded − fees = {sold - refunded - fees} fen")

    sale = select(JournalTransaction.order_id).where(JournalTransaction.kind == "sale")
    missing = db.session.scalars(select(Order.id).where(Order.status.in_(PAID_STATES), Order.id.not_in(sale))).all()
    problems += [f"order {o} is paid or accepted but has no sale transaction" for o in missing]
    extra = db.session.scalars(select(Order.id).where(Order.status.not_in(PAID_STATES), Order.id.in_(sale))).all()
    problems += [f"order {o} has a sale transaction but is not paid or accepted" for o in extra]
    return problems

"""Posting rules, payouts, balances, statements and verification of the households' income ledger.

Every posting is one JournalTransaction answering to one source (unique per kind and source), with
entries that sum to zero. Nothing is updated or deleted; corrections are new transactions.

The ledger is handed what it posts: a sale is a list of sold units (allocation, supplier, quantity, unit
price), a refund the units refunded. It never reads an order to decide what to post.

Balances of households, enterprises and companies are also kept on the account row, changed only by a
guarded UPDATE in account id order — a supplier's never goes positive (it never owes the platform), a
company's never negative — so a payout or a company's transfer can never exceed what is owed, even when
several managers act at once.
"""
from __future__ import annotations

import functools

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Protocol

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, case, func, or_, select, update

from .. import clock
from ..accounts.models import Organization
from ..audit.services import record as audit
from ..catalog.models import Product
from ..errors import Conflict, ValidationFailed
from ..extensions import db
from ..formatting import Measure, format_fen, format_quantity, quantity_number, yuan_decimal
from ..glossary import label
from ..models_base import MAX_FEN, value_fen, value_fen_sql
from ..orders.models import Allocation, Order, OrderLine, order_number
from ..orders.workflow import CHARGED
from ..producers.models import Enterprise, Household
from ..paging import Paged, paged_rows
from ..sqltime import local_month
from ..sqlwrite import insert_ignoring_conflicts
from . import rollups
from .models import (MANUAL_PAYOUT_METHODS, PLATFORM_ACCOUNTS, SUPPLIER_KINDS, TRANSACTION_KINDS, WELFARE_KINDS,
                     Account, Entry, JournalTransaction, Payout)


class ExceedsBalance(Conflict):
    code = "exceeds_balance"


class AlreadyPosted(Conflict):
    code = "already_posted"


# --- accounts -----------------------------------------------------------------------------------

def _get_or_create(**key) -> Account:
    account = db.session.scalar(select(Account).filter_by(**key))
    if account is not None:
        return account
    kind = ("household" if "household_id" in key else "enterprise" if "enterprise_id" in key
            else "company" if "organization_id" in key else "platform")
    db.session.execute(insert_ignoring_conflicts(Account.__table__).values(kind=kind, balance_fen=0, **key))
    return db.session.scalar(select(Account).filter_by(**key))


def household_account(household_id: int) -> Account:
    return _get_or_create(household_id=household_id)


def enterprise_account(enterprise_id: int) -> Account:
    return _get_or_create(enterprise_id=enterprise_id)


def supplier_account(household_id: int | None, enterprise_id: int | None) -> Account:
    return household_account(household_id) if household_id else enterprise_account(enterprise_id)


def sale_accounts(keys) -> tuple[Account, dict[tuple[int | None, int | None], Account]]:
    """The accounts a sale credits — the platform's fee income and each supplier's, by (household id,
    enterprise id) — in one query; any missing made."""
    keys = set(keys)
    households = [h for h, _e in keys if h]
    enterprises = [e for h, e in keys if not h]
    found, fee = {}, None
    for account in db.session.scalars(select(Account).where(or_(Account.code == "fee_income",
                                                                Account.household_id.in_(households),
                                                                Account.enterprise_id.in_(enterprises)))):
        if account.code == "fee_income":
            fee = account
        else:
            found[(account.household_id, None) if account.household_id else (None, account.enterprise_id)] = account
    return fee or platform_account("fee_income"), {key: found.get(key) or supplier_account(*key) for key in keys}


def company_account(organization_id: int) -> Account:
    """What a company owes the platform for its accepted deliveries (its receivable)."""
    return _get_or_create(organization_id=organization_id)


def platform_account(code: str) -> Account:
    """One of the platform's own accounts (`PLATFORM_ACCOUNTS`, made by a migration)."""
    if code not in PLATFORM_ACCOUNTS:
        raise ValueError(f"not a platform account: {code}")
    return _get_or_create(code=code)


def welfare_accounts(fund_id: int) -> tuple[Account, Account]:
    """A unit's welfare fund in the ledger: (its unallocated money, what it granted that members have not spent),
    both held for the unit, so never positive; made on first use."""
    found = {a.kind: a for a in db.session.scalars(select(Account).where(Account.fund_id == fund_id))}
    if len(found) < len(WELFARE_KINDS):
        for kind in WELFARE_KINDS:
            db.session.execute(insert_ignoring_conflicts(Account.__table__).values(kind=kind, fund_id=fund_id,
                                                                                   balance_fen=0))
        found = {a.kind: a for a in db.session.scalars(select(Account).where(Account.fund_id == fund_id))}
    return found["welfare_fund"], found["member_grant"]


def find_account(**key) -> Account | None:
    """An account if it exists — for pages, which never create one."""
    return db.session.scalar(select(Account).filter_by(**key))


# --- posting --------------------------------------------------------------------------------------

@dataclass
class Line:
    account: Account
    amount_fen: int
    allocation_id: int | None = None
    quantity: int | None = None


def _balance_update(company: bool):
    """The guarded UPDATE of one kept balance (built once; the account and the change are bound per use): a
    company's receivable never below zero, a supplier's balance never above it (never owing the platform)."""
    delta = bindparam("delta", type_=Account.balance_fen.type)
    moved = Account.balance_fen + delta
    return (update(Account).where(Account.id == bindparam("account_id"), moved >= 0 if company else moved <= 0)
            .values(balance_fen=moved).execution_options(synchronize_session=False))


_BALANCE_UPDATES = {True: _balance_update(True), False: _balance_update(False)}


def _keep_balances(lines: list[Line]) -> None:
    """Change the balances kept on account rows, one guarded UPDATE each, in account id order."""
    per_account: dict[int, int] = defaultdict(int)
    kinds: dict[int, str] = {}
    for line in lines:
        if line.account.keeps_balance:
            per_account[line.account.id] += line.amount_fen
            kinds[line.account.id] = line.account.kind
    for account_id in sorted(per_account):
        result = db.session.execute(_BALANCE_UPDATES[kinds[account_id] == "company"],
                                    {"account_id": account_id, "delta": per_account[account_id]})
        if result.rowcount != 1:
            raise ExceedsBalance(_("金额超过了账户的应付余额。"))
    db.session.flush()
    for line in lines:
        if line.account.keeps_balance:
            db.session.expire(line.account, ["balance_fen"])


_ALREADY = select(JournalTransaction.id).where(JournalTransaction.kind == bindparam("kind"),
                                               JournalTransaction.source_type == bindparam("source_type"),
                                               JournalTransaction.source_id == bindparam("source_id"))
_NEW_TRANSACTION = JournalTransaction.__table__.insert().returning(JournalTransaction.__table__.c.id)
_NEW_ENTRIES = Entry.__table__.insert()


def post(kind: str, source_type: str, source_id: int, lines: Iterable[Line], *, order_id: int | None = None,
         user_id: int | None = None, memo: str | None = None, at: datetime | None = None) -> int:
    """Post one balanced journal transaction answering to its source — its entries, the balances kept on the
    accounts and, for a sale or a refund, the daily rollups — all at `at`; the only way the ledger is written.
    The transaction and its entries are written by statements built once (a sale is posted on every payment).
    Returns the transaction's id."""
    lines = [line for line in lines if line.amount_fen != 0]
    if sum(line.amount_fen for line in lines) != 0:
        raise AssertionError(f"{kind} {source_type}:{source_id} does not balance")
    source = {"kind": kind, "source_type": source_type, "source_id": source_id}
    if db.session.scalar(_ALREADY, source) is not None:  # the unique key is the last line; this is the clear message
        raise AlreadyPosted(_("该笔账已记过，不能重复记账。"))
    at = at or clock.now()
    transaction_id = db.session.execute(_NEW_TRANSACTION, {**source, "order_id": order_id, "user_id": user_id,
                                                           "memo": memo, "created_at": at}).scalar_one()
    if lines:
        db.session.execute(_NEW_ENTRIES, [{"transaction_id": transaction_id, "account_id": line.account.id,
                                           "amount_fen": line.amount_fen, "allocation_id": line.allocation_id,
                                           "quantity": line.quantity, "created_at": at} for line in lines])
    _keep_balances(lines)
    if kind in ("sale", "refund"):
        rollups.add(transaction_id, at)
    return transaction_id


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


class Sold(Protocol):
    """One allocation's units in a sale: what its supplier is credited for."""

    allocation_id: int
    line_id: int
    household_id: int | None
    enterprise_id: int | None
    quantity: int
    unit_price_fen: int
    scale: int  # smallest units per priced unit (1 by the piece, 10 by 0.1 斤)


class Refunded(Sold, Protocol):
    refunded_before: int  # units of this allocation refunded by earlier refunds
    value_fen: int        # what the refunded units are worth: their share of the line's value given back


def sale_debit(payment_method: str) -> Account:
    """Where a retail sale's money is: Stripe's balance, or cash at the service point."""
    return platform_account("stripe_cash" if payment_method == "stripe" else "cash_on_hand")


def line_values(sold: list[Sold]) -> list[int]:
    """Each allocation's share of a line's value. A line's value is its units × price rounded half-up once
    (`value_fen`); each allocation gets the rounded running total less the one before it, so the parts add
    up to the line's value exactly, to the fen, however a weighed line is split over lots."""
    values, units, before = [], 0, 0
    for item in sold:
        units += item.quantity
        upto = value_fen(units, item.unit_price_fen, item.scale)
        values.append(upto - before)
        before = upto
    return values


def _supplier_of(item: Sold) -> tuple[int | None, int | None]:
    return (item.household_id, None) if item.household_id else (None, item.enterprise_id)


def post_sale(order_id: int, items: Iterable[Sold], *, debit: Account, user_id: int | None = None,
              at: datetime | None = None, fee_permille: int | None = None, welfare_fen: int = 0) -> int:
    """Credit each supplier with its units' value less the service fee, and the platform with the fee; debit
    `debit` with the whole — less `welfare_fen`, the part the buyer's welfare grants paid, which comes out of
    the welfare drawn when the order was placed (`welfare_held`). The fee is taken per order line and split over
    its allocations by the largest remainder, so the parts add up exactly; each part names its allocation and
    units. `fee_permille` overrides the configured fee (a sales point's sales carry none)."""
    by_line: dict[int, list[Sold]] = defaultdict(list)
    for item in items:
        by_line[item.line_id].append(item)
    fee_account, accounts = sale_accounts(_supplier_of(item) for sold in by_line.values() for item in sold)
    lines: list[Line] = []
    total = 0
    for line_id in sorted(by_line):
        sold = by_line[line_id]
        values = line_values(sold)
        fees = split_largest_remainder(fee_for(sum(values), fee_permille), values)
        for item, value, fee in zip(sold, values, fees):
            account = accounts[_supplier_of(item)]
            lines.append(Line(account, -(value - fee), item.allocation_id, item.quantity))
            lines.append(Line(fee_account, -fee, item.allocation_id, item.quantity))
        total += sum(values)
    if not 0 <= welfare_fen <= total:
        raise AssertionError(f"order {order_id}: welfare paid {welfare_fen} of a sale of {total}")
    lines.append(Line(debit, total - welfare_fen))
    if welfare_fen:  # (most sales: none, and no account to look up)
        lines.append(Line(platform_account("welfare_held"), welfare_fen))
    return post("sale", "order", order_id, lines, order_id=order_id, user_id=user_id, memo=f"order {order_id}", at=at)


def _sale_credits(allocation_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """allocation → (units sold, net credited to its supplier, its value: net and fee) from the sale postings."""
    supplier = case((Account.kind.in_(SUPPLIER_KINDS), -Entry.amount_fen), else_=0)
    rows = db.session.execute(
        select(Entry.allocation_id, func.max(Entry.quantity), func.sum(supplier), func.sum(-Entry.amount_fen))
        .join(JournalTransaction).join(Account, Account.id == Entry.account_id)
        .where(JournalTransaction.kind == "sale", Entry.allocation_id.in_(allocation_ids))
        .group_by(Entry.allocation_id)).all()
    return {allocation_id: (int(quantity), int(net), int(value)) for allocation_id, quantity, net, value in rows}


def post_refund(refund_id: int, order_id: int, items: Iterable[Refunded], *, amount_fen: int, credit: Account,
                user_id: int | None = None, at: datetime | None = None, welfare: Iterable[Line] = ()) -> int:
    """Reverse exactly the refunded units: each supplier's net credit for them and the fee on them. The money
    goes to `credit`, less what goes back to welfare grants or their fund (`welfare`: credit lines).

    What a supplier has already been paid out cannot be taken back from the ledger: that part goes to the
    platform's refund-shortfall account (to be recovered or written off), so no balance owed goes negative.
    A remainder that is not a whole number of units (a partial refund made in Stripe's dashboard) is the
    platform's loss, never a household's.
    """
    items = list(items)
    credits = _sale_credits([item.allocation_id for item in items])
    shortfall = platform_account("refund_shortfall")
    fee_account = platform_account("fee_income")
    lines: list[Line] = []
    reversed_value = 0
    taken: dict[int, int] = defaultdict(int)  # per supplier account, taken back within this refund
    for item in items:
        sold, net, worth = credits[item.allocation_id]
        fee = worth - net
        before, units, value = item.refunded_before, item.quantity, item.value_fen
        # the fee on these units, in the same steps whatever the order of refunds; never more than their value
        fee_reversed = min(value, fee * (before + units) // sold - fee * before // sold)
        net_reversed = value - fee_reversed
        account = supplier_account(item.household_id, item.enterprise_id)
        owed = _owed_now(account) - taken[account.id]
        from_supplier = min(net_reversed, max(owed, 0))
        taken[account.id] += from_supplier
        lines.append(Line(account, from_supplier, item.allocation_id, units))
        lines.append(Line(shortfall, net_reversed - from_supplier, item.allocation_id, units))
        lines.append(Line(fee_account, fee_reversed, item.allocation_id, units))
        reversed_value += value
    remainder = amount_fen - reversed_value
    if remainder < 0:
        raise AssertionError("refund lines are worth more than the refund")
    lines.append(Line(shortfall, remainder))
    welfare = list(welfare)
    lines += welfare
    lines.append(Line(credit, -(amount_fen + sum(line.amount_fen for line in welfare))))
    return post("refund", "refund", refund_id, lines, order_id=order_id, user_id=user_id,
                memo=f"refund {refund_id} of order {order_id}", at=at)


def _owed_now(account: Account) -> int:
    """What a supplier is owed now (its row is locked by the guarded update that follows in `post`)."""
    return -int(db.session.scalar(select(Account.balance_fen).where(Account.id == account.id)))


# --- payouts ------------------------------------------------------------------------------------------

def check_amount(amount_fen, field_name: str = "amount") -> int:
    """A positive amount of money that fits what anyone could mean (¥999,999,999.99 at most)."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationFailed.on(field_name, _("金额必须大于 0。"))
    if amount_fen > MAX_FEN:
        raise ValidationFailed.on(field_name, _("金额过大（最多 %(m)s）。", m=format_fen(MAX_FEN)))
    return amount_fen


def platform_balance(code: str) -> int:
    """A platform account's balance (debit positive), summed from its entries."""
    account = db.session.scalar(select(Account.id).where(Account.code == code))
    if account is None:
        return 0
    return int(db.session.scalar(select(func.coalesce(func.sum(Entry.amount_fen), 0))
                                 .where(Entry.account_id == account)))


def kept_balance(account: Account | None) -> int:
    """The balance kept on the row (households, enterprises, companies), read afresh."""
    if account is None:
        return 0
    return int(db.session.scalar(select(Account.balance_fen).where(Account.id == account.id)))


def pay_out(account: Account, amount_fen, *, method: str, reference: str, user_id: int,
            at: datetime | None = None) -> Payout:
    """Pay money owed out to a supplier. Never more than is owed, even when several managers pay at once."""
    check_amount(amount_fen)
    if method not in MANUAL_PAYOUT_METHODS:
        raise ValidationFailed.on("method", _("请选择结算方式。"))
    return _pay(account, amount_fen, method=method, reference=reference, user_id=user_id, at=at)


def settle_direct(account: Account, amount_fen: int, *, reference: str, user_id: int,
                  at: datetime | None = None) -> Payout:
    """A sales point's buyer paid the grower straight to the grower's own payment code: what the sale credited
    is settled at once (a payout of the method grower_qr), so the grower's income is recorded and nothing is
    owed."""
    check_amount(amount_fen)
    return _pay(account, amount_fen, method="grower_qr", reference=reference, user_id=user_id, at=at)


def _pay(account: Account, amount_fen: int, *, method: str, reference: str, user_id: int,
         at: datetime | None) -> Payout:
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写凭证号（收据号或转账流水号）。"))
    if account.kind not in SUPPLIER_KINDS:
        raise ValidationFailed.on("account", _("只能向供货方结算。"))
    owed = -kept_balance(account)
    if amount_fen > owed:
        raise ExceedsBalance(_("结算金额超过了应付余额（%(o)s）。", o=format_fen(owed)))
    payout = Payout(account_id=account.id, amount_fen=amount_fen, method=method, reference=reference, user_id=user_id)
    if at is not None:
        payout.created_at = at
    db.session.add(payout)
    db.session.flush()
    cash = {"cash": "cash_on_hand", "bank_transfer": "bank", "grower_qr": "grower_direct"}[method]
    try:
        post("payout", "payout", payout.id, [Line(account, amount_fen), Line(platform_account(cash), -amount_fen)],
             user_id=user_id, memo=reference, at=at)
    except ExceedsBalance:
        owed = -kept_balance(account)
        raise ExceedsBalance(_("结算金额超过了应付余额（%(o)s）。", o=format_fen(owed))) from None
    audit("payout", payout, f"{amount_fen} fen {method} {reference}", user_id=user_id)
    return payout


# --- figures ---------------------------------------------------------------------------------------------

SUPPLIER_MODELS = {"household": Household, "enterprise": Enterprise}


def supplier_with_account(kind: str, supplier_id: int):
    """(supplier, its account or None) in one query — None for an unknown supplier. Pages never create an
    account."""
    model = SUPPLIER_MODELS[kind]
    key = Account.household_id if kind == "household" else Account.enterprise_id
    row = db.session.execute(select(model, Account).outerjoin(Account, key == model.id)
                             .where(model.id == supplier_id)).first()
    return (None, None) if row is None else tuple(row)


def supplier_key(kind: str, supplier_id: int) -> dict[str, int]:
    return {"household_id": supplier_id} if kind == "household" else {"enterprise_id": supplier_id}


def owed_accounts() -> list[tuple]:
    """Every supplier the platform owes money, most owed first: (account, household, enterprise)."""
    return list(db.session.execute(
        select(Account, Household, Enterprise).outerjoin(Household, Household.id == Account.household_id)
        .outerjoin(Enterprise, Enterprise.id == Account.enterprise_id)
        .where(Account.kind.in_(SUPPLIER_KINDS), Account.balance_fen < 0).order_by(Account.balance_fen)).all())


@dataclass
class EntryRow:
    at: datetime
    kind: str
    quantity: int | None
    amount_fen: int          # from the supplier's side: + earned, − refunded or paid out
    order_id: int | None
    order_number: str | None
    memo: str | None
    measure: Measure | None = None

    @property
    def quantity_text(self) -> str:
        return format_quantity(self.quantity, self.measure) if self.quantity is not None and self.measure else ""


def recent_entries(account: Account | None, page: int = 1, per_page: int = 100) -> Paged:
    """A page of a supplier's entries, newest first (by when they happened)."""
    if account is None:
        return Paged([], 1, per_page, 0)
    query = (select(Entry.created_at, JournalTransaction.kind, Entry.quantity, Entry.amount_fen,
                    JournalTransaction.order_id, Order.placed_at, JournalTransaction.memo, Product.unit, OrderLine.scale)
             .select_from(Entry).join(JournalTransaction).outerjoin(Order, Order.id == JournalTransaction.order_id)
             .outerjoin(Allocation, Allocation.id == Entry.allocation_id)
             .outerjoin(OrderLine, OrderLine.id == Allocation.line_id)
             .outerjoin(Product, Product.id == OrderLine.product_id)
             .where(Entry.account_id == account.id).order_by(Entry.created_at.desc(), Entry.id.desc()))
    found = paged_rows(query, page, per_page)
    found.items = [EntryRow(at, kind, quantity, -amount, order_id,
                            order_number(placed, order_id) if order_id and placed else None, memo,
                            Measure(unit, scale or 1) if unit else None)
                   for at, kind, quantity, amount, order_id, placed, memo, unit, scale in found.items]
    return found

@dataclass(frozen=True)
class Income:
    """What a supplier's sales earned in a period, from the ledger: sale credits (net of the service fee) and
    what refunds reversed."""

    earned_fen: int = 0    # sale credits in the period
    refunded_fen: int = 0  # reversed by refunds in the period

    @property
    def income_fen(self) -> int:
        """Net of the fee and of refunds: the household's income, the figure every page and report shows."""
        return self.earned_fen - self.refunded_fen


def _income_query(key, condition, start: date, end: date, *extra):
    """The one definition of income: a supplier account's sale and refund entries in the local days
    start … end, summed per `key` (and whatever `extra` groups by)."""
    lo, hi = clock.day_bounds(start, end)
    amount = -Entry.amount_fen
    return (select(key, *extra,
                   func.coalesce(func.sum(case((JournalTransaction.kind == "sale", amount), else_=0)), 0),
                   func.coalesce(func.sum(case((JournalTransaction.kind == "refund", -amount), else_=0)), 0))
            .select_from(Entry).join(JournalTransaction).join(Account, Account.id == Entry.account_id)
            .where(condition, JournalTransaction.kind.in_(("sale", "refund")), Entry.created_at >= lo,
                   Entry.created_at < hi)
            .group_by(key, *extra))


def incomes(household_ids, start: date, end: date) -> dict[int, Income]:
    """Each household's income in the local days start … end, in one query (every household when
    `household_ids` is None: those that earned or lost anything)."""
    ids = None if household_ids is None else list(household_ids)
    if ids == []:
        return {}
    condition = Account.household_id.in_(ids) if ids is not None else Account.household_id.is_not(None)
    found = {h: Income() for h in ids or ()}
    found.update({h: Income(int(e), int(r)) for h, e, r in
                  db.session.execute(_income_query(Account.household_id, condition, start, end))})
    return found


def monthly_incomes(household_ids, start: date, end: date) -> dict[int, dict[str, Income]]:
    """Each household's income per local month (YYYY-MM) in the local days start … end, in one query."""
    ids = list(household_ids)
    found: dict[int, dict[str, Income]] = {h: {} for h in ids}
    if ids:
        month = local_month(Entry.created_at)
        for h, name, e, r in db.session.execute(_income_query(Account.household_id, Account.household_id.in_(ids),
                                                              start, end, month)):
            found[h][name] = Income(int(e), int(r))
    return found


@dataclass
class Summary:
    owed_fen: int
    income: Income         # earned and refunded in the period
    paid_out_fen: int      # paid out in the period
    by_month: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM, net income)

    @property
    def earned_fen(self) -> int:
        return self.income.earned_fen

    @property
    def refunded_fen(self) -> int:
        return self.income.refunded_fen

    @property
    def income_fen(self) -> int:
        return self.income.income_fen


def summary(account: Account | None, start: date, end: date) -> Summary:
    """One supplier account's figures for a period: its income (the one definition, by month too) and its
    payouts (an account not yet made has none)."""
    if account is None:
        return Summary(0, Income(), 0)
    lo, hi = clock.day_bounds(start, end)
    row = db.session.execute(_income_query(Entry.account_id, Entry.account_id == account.id, start, end)).first()
    income = Income(int(row[1]), int(row[2])) if row else Income()
    month = local_month(Entry.created_at)
    months = db.session.execute(_income_query(Entry.account_id, Entry.account_id == account.id, start, end, month)
                                .order_by(month)).all()
    paid_out = db.session.scalar(
        select(func.coalesce(func.sum(Entry.amount_fen), 0)).join(JournalTransaction)
        .where(Entry.account_id == account.id, JournalTransaction.kind == "payout", Entry.created_at >= lo,
               Entry.created_at < hi))
    return Summary(owed_fen=-kept_balance(account), income=income, paid_out_fen=int(paid_out),
                   by_month=[(m, int(e) - int(r)) for _a, m, e, r in months])


def owed_at(account: Account | None, instant: datetime) -> int:
    if account is None:
        return 0
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
    order_number: str | None = None
    scale: int = 1  # a weighed line's quantity counts tenths of its unit
    unit: str = ""

    @property
    def measure(self) -> Measure:
        return Measure(self.unit or "", self.scale or 1)

    @property
    def quantity_text(self) -> str:
        return format_quantity(self.quantity, self.measure)

    @property
    def day(self) -> str:
        """The local day, YYYY-MM-DD."""
        return clock.local_day(self.at).isoformat()


@dataclass
class Statement:
    account: Account | None
    start: date
    end: date
    opening_fen: int
    rows: list[StatementRow]

    @property
    def closing_fen(self) -> int:
        return self.opening_fen + sum(r.amount_fen for r in self.rows)

    def total(self, kind: str) -> int:
        return sum(r.amount_fen for r in self.rows if r.kind == kind)


_STATEMENT = (
    select(Entry.created_at, JournalTransaction.kind, Entry.amount_fen, JournalTransaction.order_id,
           Product.name, Entry.quantity, OrderLine.unit_price_fen, Organization.name, Payout.reference,
           Order.placed_at, OrderLine.scale, Order.channel, Product.unit)
    .select_from(Entry).join(JournalTransaction)
    .outerjoin(Allocation, Allocation.id == Entry.allocation_id)
    .outerjoin(OrderLine, OrderLine.id == Allocation.line_id)
    .outerjoin(Product, Product.id == OrderLine.product_id)
    .outerjoin(Order, Order.id == JournalTransaction.order_id)
    .outerjoin(Organization, Organization.id == Order.organization_id)
    .outerjoin(Payout, and_(JournalTransaction.source_type == "payout", Payout.id == JournalTransaction.source_id))
    .where(Entry.account_id == bindparam("account_id"), Entry.created_at >= bindparam("lo"),
           Entry.created_at < bindparam("hi"))
    .order_by(Entry.created_at, Entry.id))


def statement(account: Account | None, start: date, end: date) -> Statement:
    """Opening balance, each sale, refund and payout of the period, closing balance."""
    clock.check_period(start, end)
    lo, hi = clock.day_bounds(start, end)
    if account is None:
        return Statement(None, start, end, 0, [])
    # read straight from the connection: the rows are plain columns, and the ORM's per-row loading is most of
    # what a year's statement would otherwise cost beyond its SQL
    rows = db.session.connection().execute(_STATEMENT, {"account_id": account.id, "lo": lo, "hi": hi}).all()
    return Statement(account, start, end, owed_at(account, lo), [
        StatementRow(at, kind, -amount, order_id, product, quantity, price,
                     label("channel", "point") if channel == "point" else org, ref,
                     order_number(placed, order_id) if order_id and placed else None, scale or 1, unit or "")
        for at, kind, amount, order_id, product, quantity, price, org, ref, placed, scale, channel, unit in rows])


def statement_cells(result: Statement) -> list[tuple[str, str, str, str, str, str]]:
    """The statement's rows as the page prints them — day, summary, quantity, unit price, buying unit, amount —
    each cell a finished string, made in one pass (a year's statement has hundreds of rows)."""
    kinds = {kind: label("transaction_kind", kind) for kind in TRANSACTION_KINDS}
    zone = clock.zone()
    # a busy household sells the same few goods at the same few prices all year: each figure is written once
    fen = functools.cache(format_fen)
    quantity = functools.cache(format_quantity)
    cells = []
    for row in result.rows:
        summary = " · ".join(part for part in (kinds[row.kind], row.product, row.order_number, row.reference)
                             if part)
        cells.append((clock.local_day(row.at, zone).isoformat(), summary, quantity(row.quantity, row.measure),
                      fen(row.unit_price_fen) if row.unit_price_fen else "", row.organization or "",
                      fen(row.amount_fen)))
    return cells


def statement_rows(supplier_name: str, result: Statement) -> list[list]:
    """A supplier's statement as a table (for its XLSX)."""
    rows = [[_("对账单"), supplier_name, f"{result.start} — {result.end}"],
            [_("期初应付余额（元）"), yuan_decimal(result.opening_fen)],
            [_("日期"), _("类型"), _("商品"), _("数量"), _("单价（元）"), _("购买单位"), _("订单"), _("金额（元）"), _("凭证号")]]
    for row in result.rows:
        rows.append([clock.local(row.at).strftime("%Y-%m-%d %H:%M"), label("transaction_kind", row.kind), row.product,
                     quantity_number(row.quantity, row.measure), yuan_decimal(row.unit_price_fen), row.organization,
                     row.order_number,
                     yuan_decimal(row.amount_fen), row.reference])
    rows.append([_("期末应付余额（元）"), yuan_decimal(result.closing_fen)])
    return rows


# --- verification ------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """Every invariant of the ledger; an empty list when all hold. Each problem names its rows."""
    problems: list[str] = []
    unbalanced = db.session.execute(
        select(Entry.transaction_id, func.sum(Entry.amount_fen)).group_by(Entry.transaction_id)
        .having(func.sum(Entry.amount_fen) != 0)).all()
    problems += [f"transaction {t} does not sum to zero (off by {s} fen)" for t, s in unbalanced]
    problems += _kept_balances()
    problems += _credits_match_sales()
    sale = select(JournalTransaction.order_id).where(JournalTransaction.kind == "sale")
    missing = db.session.scalars(select(Order.id).where(Order.payment_status.in_(CHARGED), Order.id.not_in(sale))).all()
    problems += [f"order {o} is paid or accepted but has no sale transaction" for o in missing]
    extra = db.session.scalars(select(Order.id).where(Order.payment_status.not_in(CHARGED), Order.id.in_(sale))).all()
    problems += [f"order {o} has a sale transaction but is not paid or accepted" for o in extra]
    problems += rollups.verify()  # the daily sales rollups the reports read hold exactly these postings
    return problems


def _kept_balances() -> list[str]:
    problems = []
    sums = select(Entry.account_id, func.sum(Entry.amount_fen).label("total")).group_by(Entry.account_id).subquery()
    for account_id, kind, cached, total in db.session.execute(
            select(Account.id, Account.kind, Account.balance_fen, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == Account.id).where(Account.kind != "platform")
            .order_by(Account.id)).all():
        if kind in SUPPLIER_KINDS and total > 0:
            problems.append(f"{kind} account {account_id} owes the platform {total} fen (balance owed is negative)")
        if kind in WELFARE_KINDS and total > 0:
            problems.append(f"{kind} account {account_id} is overdrawn by {total} fen")
        if kind == "company" and total < 0:
            problems.append(f"company account {account_id} has paid {-total} fen more than it owed")
        if cached != total:
            problems.append(f"{kind} account {account_id}: kept balance {cached} but entries add up to {total}")
    return problems


def _credits_match_sales() -> list[str]:
    """What suppliers are credited now, plus the platform's fees, equals the value of the units sold and not
    refunded, plus what the platform bore of refunds already paid out (to the fen)."""
    def scalar(query) -> int:
        return int(db.session.scalar(query) or 0)

    credited = scalar(select(func.sum(-Entry.amount_fen)).join(Account, Account.id == Entry.account_id)
                      .join(JournalTransaction).where(Account.kind.in_(SUPPLIER_KINDS),
                                                      JournalTransaction.kind.in_(("sale", "refund"))))
    fees = -platform_balance("fee_income")
    borne = scalar(select(func.sum(Entry.amount_fen)).join(Account, Account.id == Entry.account_id)
                   .where(Account.code == "refund_shortfall", Entry.allocation_id.is_not(None)))
    held_units = (select(func.sum(Allocation.held).label("units"), OrderLine.unit_price_fen, OrderLine.scale)
                  .select_from(Allocation).join(OrderLine).join(Order).where(Order.payment_status.in_(CHARGED))
                  .group_by(OrderLine.id, OrderLine.unit_price_fen, OrderLine.scale).subquery())
    # each line's held units at its price, rounded half-up once per line as the sale rounded it (value_fen)
    held = scalar(select(func.sum(value_fen_sql(held_units.c.units, held_units.c.unit_price_fen, held_units.c.scale))))
    if credited + fees != held + borne:
        return [f"suppliers credited {credited} fen + fees {fees} fen ≠ units sold and not refunded {held} fen + "
                f"refunds borne by the platform {borne} fen"]
    return []


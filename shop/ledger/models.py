from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text,
                        UniqueConstraint, event)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Organization, User
from ..extensions import db
from ..models_base import Money, one_of, utcnow
from ..producers.models import Enterprise, Household

ACCOUNT_KINDS = ("household", "enterprise", "company", "platform", "welfare_fund", "member_grant")
# a unit's welfare fund: its unallocated money, and what it granted that members have not spent yet
WELFARE_KINDS = ("welfare_fund", "member_grant")
SUPPLIER_KINDS = ("household", "enterprise")
TRANSACTION_KINDS = ("sale", "refund", "payout", "receipt", "adjustment", "welfare")
PAYOUT_METHODS = ("cash", "bank_transfer", "grower_qr")  # grower_qr: a point buyer paid the grower directly
MANUAL_PAYOUT_METHODS = ("cash", "bank_transfer")  # what a manager pays out by hand
# the platform's own accounts, made by migration 0017 (and on first use in a database emptied since)
# welfare_held: welfare money drawn by orders placed and not yet paid (it pays their sale when they are)
PLATFORM_ACCOUNTS = ("stripe_cash", "cash_on_hand", "bank", "fee_income", "refund_shortfall", "point_cash",
                     "grower_direct", "cash_difference", "welfare_held")


class Account(db.Model):
    """One per household, one per enterprise, one per company (its receivable), the platform's own, and two per
    welfare fund (its unallocated money; what it granted and members have not spent) — money the platform holds for
    the unit, so like a supplier's, never positive.

    Amounts are signed, debit positive. A supplier's account is what the platform owes it, so its
    balance is never positive: `owed_fen = -balance_fen`; a company's account is what it owes the
    platform, never negative. These balances are kept on the row as well (and checked against the
    entries by `ledger verify`), changed only by a guarded UPDATE, so a payout or a company's transfer
    can never exceed what is owed, however many managers act at once, on SQLite as on PostgreSQL.
    """

    __tablename__ = "ledger_account"
    __table_args__ = (
        one_of("kind", ACCOUNT_KINDS),
        CheckConstraint("(kind = 'household') = (household_id IS NOT NULL)", name="household_account"),
        CheckConstraint("(kind = 'enterprise') = (enterprise_id IS NOT NULL)", name="enterprise_account"),
        CheckConstraint("(kind = 'company') = (organization_id IS NOT NULL)", name="company_account"),
        CheckConstraint("(kind = 'platform') = (code IS NOT NULL)", name="platform_account"),
        CheckConstraint("(kind IN ('welfare_fund', 'member_grant')) = (fund_id IS NOT NULL)",
                        name="welfare_account"),
        UniqueConstraint("kind", "fund_id", name="uq_ledger_account_kind_fund_id"),
        CheckConstraint("kind NOT IN ('household', 'enterprise') OR balance_fen <= 0", name="supplier_never_owes"),
        CheckConstraint("kind <> 'company' OR balance_fen >= 0", name="company_never_overpaid"),
        CheckConstraint("kind NOT IN ('welfare_fund', 'member_grant') OR balance_fen <= 0",
                        name="welfare_never_overdrawn"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), unique=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"), unique=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"), unique=True)
    code: Mapped[str | None] = mapped_column(String(30), unique=True)
    fund_id: Mapped[int | None] = mapped_column(ForeignKey("welfare_fund.id"))
    balance_fen: Mapped[int] = mapped_column(Money, default=0)  # kept for every account but the platform's

    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()
    organization: Mapped[Organization | None] = relationship()

    @property
    def keeps_balance(self) -> bool:
        return self.kind != "platform"

    @property
    def owed_fen(self) -> int:
        return -self.balance_fen


class JournalTransaction(db.Model):
    """What happened, answering to exactly one source: the same sale can never post twice."""

    __tablename__ = "journal_transaction"
    __table_args__ = (
        one_of("kind", TRANSACTION_KINDS),
        UniqueConstraint("kind", "source_type", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    source_type: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    memo: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    user: Mapped[User | None] = relationship()
    entries: Mapped[list["Entry"]] = relationship(back_populates="transaction", order_by="Entry.id")


class Entry(db.Model):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="amount_not_zero"),
        Index("ix_ledger_entry_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("journal_transaction.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_account.id"))
    amount_fen: Mapped[int] = mapped_column(Money)
    # for sale credits and their reversals: the allocation (line → lot) and the units it covers
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocation.id"), index=True)
    quantity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    transaction: Mapped[JournalTransaction] = relationship(back_populates="entries")
    account: Mapped[Account] = relationship()


class Payout(db.Model):
    """Money owed to a supplier paid out in cash or by bank transfer."""

    __tablename__ = "payout"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("method", PAYOUT_METHODS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_account.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Money)
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    account: Mapped[Account] = relationship()
    user: Mapped[User] = relationship()


class _SalesDay:
    """A daily rollup of the ledger's sale and refund postings (`shop.ledger.rollups`): one row per local day and
    key, summed from the same movements the reports count — units (+ sold, − refunded), what buyers paid
    (`gross_fen`), what suppliers were credited, what the platform bore of refunds already paid out, and how many
    allocations sold (`sales`, refunds not counted). Kept in the transaction that posts each sale and refund by
    one guarded upsert per table; `flask ledger rollups-rebuild` recounts them and `verify` compares them to the
    raw aggregate. Keys that can be absent are 0 (no buying unit, no contract, no household): the rows are derived,
    so they carry no foreign keys."""

    day: Mapped[date] = mapped_column(Date, sort_order=-3)
    organization_id: Mapped[int] = mapped_column(Integer, sort_order=-2)
    channel: Mapped[str] = mapped_column(String(12), sort_order=-1)
    units: Mapped[int] = mapped_column(Money, default=0, sort_order=1)
    gross_fen: Mapped[int] = mapped_column(Money, default=0, sort_order=1)
    credited_fen: Mapped[int] = mapped_column(Money, default=0, sort_order=1)
    borne_fen: Mapped[int] = mapped_column(Money, default=0, sort_order=1)
    sales: Mapped[int] = mapped_column(Integer, default=0, sort_order=1)


class SalesDayBuyer(_SalesDay, db.Model):
    """Per day, buying unit, channel, contract and buyer: the totals, channels, units, months, contracts and the
    staff who bought."""

    KEYS = ("day", "organization_id", "channel", "contract_id", "buyer_id")
    __tablename__ = "sales_day_buyer"
    __table_args__ = (PrimaryKeyConstraint(*KEYS),)

    contract_id: Mapped[int] = mapped_column(Integer)
    buyer_id: Mapped[int] = mapped_column(Integer)


class SalesDaySupply(_SalesDay, db.Model):
    """Per day, buying unit, channel, product and supplier: categories, products, and what each household or
    enterprise earned."""

    KEYS = ("day", "organization_id", "channel", "product_id", "household_id", "enterprise_id")
    __tablename__ = "sales_day_supply"
    __table_args__ = (PrimaryKeyConstraint(*KEYS),)

    product_id: Mapped[int] = mapped_column(Integer)
    household_id: Mapped[int] = mapped_column(Integer)
    enterprise_id: Mapped[int] = mapped_column(Integer)


@event.listens_for(JournalTransaction, "before_update")
@event.listens_for(JournalTransaction, "before_delete")
@event.listens_for(Entry, "before_update")
@event.listens_for(Entry, "before_delete")
@event.listens_for(Payout, "before_update")
@event.listens_for(Payout, "before_delete")
def _ledger_is_append_only(mapper, connection, target):
    raise RuntimeError("the ledger is append-only: corrections are new transactions")

"""A unit's welfare fund, its top-ups, the grants made from it to members, and what became of each grant.

The money itself is in the ledger: the fund's unallocated money is the balance of its `welfare_fund` account, the
granted and not yet spent money that of its `member_grant` account, each changed only by a guarded posting. A
grant keeps what is left of it (`remaining_fen`), changed only by a guarded UPDATE; every change of it is one
append-only movement, so remaining = granted − Σ spent + Σ returned − expired, to the fen."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Organization, User
from ..extensions import db
from ..models_base import Money, one_of, utcnow

FUND_SOURCES = ("union", "unit")  # who pays into it: the trade union's welfare money, or the unit's own budget
MOVEMENT_KINDS = ("spend", "return", "expire")


class WelfareFund(db.Model):
    """A unit's welfare fund (工会福利): one per unit."""

    __tablename__ = "welfare_fund"
    __table_args__ = (one_of("source", FUND_SOURCES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), unique=True)
    source: Mapped[str] = mapped_column(String(8), default="union")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization] = relationship()


class WelfareTopUp(db.Model):
    """Money transferred into a fund (its transfer's reference kept)."""

    __tablename__ = "welfare_topup"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("welfare_fund.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Money)
    reference: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User | None] = relationship()


class WelfareGrant(db.Model):
    """An amount granted to one member, to spend on the shop's produce from `starts_on` to `expires_on`
    (inclusive); never cashed or transferred. What is left at expiry goes back to the fund."""

    __tablename__ = "welfare_grant"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("remaining_fen >= 0 AND remaining_fen <= amount_fen", name="remaining_within_amount"),
        CheckConstraint("starts_on <= expires_on", name="starts_before_expiry"),
        Index("ix_welfare_grant_user_expires", "user_id", "expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("welfare_fund.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    amount_fen: Mapped[int] = mapped_column(Money)
    remaining_fen: Mapped[int] = mapped_column(Money)
    starts_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date, index=True)
    purpose: Mapped[str] = mapped_column(String(60))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    def usable_on(self, day: date) -> bool:
        return self.expired_at is None and self.starts_on <= day <= self.expires_on and self.remaining_fen > 0


class WelfareMovement(db.Model):
    """One change of a grant, append-only: spent on an order, returned by a refund, or expired."""

    __tablename__ = "welfare_movement"
    __table_args__ = (
        one_of("kind", MOVEMENT_KINDS),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("welfare_grant.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    amount_fen: Mapped[int] = mapped_column(Money)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

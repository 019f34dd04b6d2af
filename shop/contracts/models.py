from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Organization, User
from ..catalog.models import Product
from ..extensions import db
from ..models_base import Money, one_of, utcnow, value_fen

CONTRACT_STATUSES = ("draft", "active", "suspended", "ended")


class Contract(db.Model):
    """购销合同: a company buys a product every month at an agreed price, up to a total value."""

    __tablename__ = "contract"
    __table_args__ = (
        one_of("status", CONTRACT_STATUSES),
        CheckConstraint("monthly_quantity > 0", name="monthly_quantity_positive"),
        CheckConstraint("cap_fen > 0", name="cap_positive"),
        CheckConstraint("first_month <= last_month", name="months_in_order"),
        CheckConstraint("delivery_day BETWEEN 1 AND 28", name="delivery_day_range"),
        CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="terms_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    monthly_quantity: Mapped[int] = mapped_column(Integer)
    first_month: Mapped[str] = mapped_column(String(7))
    last_month: Mapped[str] = mapped_column(String(7))
    cap_fen: Mapped[int] = mapped_column(Money)
    delivery_address: Mapped[str] = mapped_column(String(200))
    delivery_day: Mapped[int] = mapped_column(Integer, default=5)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    scan: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization] = relationship()
    product: Mapped[Product] = relationship()
    prices: Mapped[list["ContractPrice"]] = relationship(back_populates="contract", order_by="ContractPrice.from_month")


class ContractPrice(db.Model):
    """The unit price from a named month on; kept as history. Orders keep the price they were made with."""

    __tablename__ = "contract_price"
    __table_args__ = (UniqueConstraint("contract_id", "from_month"),
                      CheckConstraint("unit_price_fen > 0", name="price_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"), index=True)
    from_month: Mapped[str] = mapped_column(String(7))
    unit_price_fen: Mapped[int] = mapped_column(Money)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    contract: Mapped[Contract] = relationship(back_populates="prices")


class ContractRun(db.Model):
    """A contract's month, generated: at most one per contract and month (a unique key, not a check in
    Python), whatever the outcome — an order, a backorder, or both."""

    __tablename__ = "contract_run"
    __table_args__ = (UniqueConstraint("contract_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"))
    month: Mapped[str] = mapped_column(String(7))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Backorder(db.Model):
    """Units of a standing order that stock could not cover: shown to the manager, filled from later lots."""

    __tablename__ = "backorder"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"))  # the order that came up short
    month: Mapped[str] = mapped_column(String(7))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Money)
    filled_order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    filled_at: Mapped[datetime | None] = mapped_column(DateTime)

    contract: Mapped[Contract] = relationship()

    @property
    def value_fen(self) -> int:
        """What the units owed are worth at the price they were ordered at (the shop's one rounding rule)."""
        return value_fen(self.quantity, self.unit_price_fen, self.contract.product.scale)


class CompanyPayment(db.Model):
    """A bank transfer from a company, settling its receivable."""

    __tablename__ = "company_payment"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(80))
    amount_fen: Mapped[int] = mapped_column(Money)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization] = relationship()
    user: Mapped[User] = relationship()

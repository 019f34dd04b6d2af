from __future__ import annotations

from datetime import datetime

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        event, func, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Organization, User
from ..catalog.models import PickupPoint, Product
from ..extensions import db
from ..inventory.models import Lot
from ..models_base import one_of, utcnow

CHANNELS = ("retail", "bulk", "standing")
STATUSES = ("pending_payment", "paid", "packed", "handed_over", "cancelled", "partially_refunded", "refunded",
            "requested", "confirmed", "delivered", "accepted")
PAYMENT_METHODS = ("stripe", "offline", "account")

# Allowed moves of the state machine. Nothing ever moves backwards.
TRANSITIONS: dict[str, set[str]] = {
    "pending_payment": {"paid", "cancelled"},
    "paid": {"packed", "partially_refunded", "refunded"},
    "packed": {"handed_over", "partially_refunded", "refunded"},
    "handed_over": {"partially_refunded", "refunded"},
    "partially_refunded": {"packed", "handed_over", "partially_refunded", "refunded"},
    "requested": {"confirmed", "cancelled"},
    "confirmed": {"delivered", "cancelled"},
    "delivered": {"accepted"},
    "accepted": {"partially_refunded", "refunded"},
    "cancelled": set(),
    "refunded": set(),
}
# states in which the goods are paid for (their sale is in the ledger)
PAID_STATES = ("paid", "packed", "handed_over", "partially_refunded", "refunded", "accepted")


class CartItem(db.Model):
    """A staff member's cart, kept per user so it survives logout."""

    __tablename__ = "cart_item"
    __table_args__ = (UniqueConstraint("user_id", "product_id"), CheckConstraint("quantity > 0", name="quantity_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    product: Mapped[Product] = relationship()


class Order(db.Model):
    __tablename__ = "shop_order"
    __table_args__ = (
        one_of("channel", CHANNELS),
        one_of("status", STATUSES),
        one_of("payment_method", PAYMENT_METHODS),
        CheckConstraint("total_fen >= 0", name="total_not_negative"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= total_fen", name="refund_within_total"),
        Index("ix_shop_order_status_reserved", "status", "reserved_until"),
        # when a sale happened (paid, or accepted by a company): every report filters on it, and the
        # index also gives the planner its statistics, so a year's report hash-joins instead of looping
        Index("ix_shop_order_sale_at", func.coalesce(text("paid_at"), text("accepted_at"))),
        # at most one standing order per contract and month, however many hosts generate at once
        UniqueConstraint("contract_id", "contract_month", name="uq_shop_order_contract_month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"), index=True)
    channel: Mapped[str] = mapped_column(String(12), default="retail")
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")
    payment_method: Mapped[str] = mapped_column(String(12))
    pickup_point_id: Mapped[int | None] = mapped_column(ForeignKey("pickup_point.id"), index=True)
    delivery_address: Mapped[str | None] = mapped_column(String(200))  # delivery to the workplace
    total_fen: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="cny")
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_reference: Mapped[str | None] = mapped_column(String(80))  # offline receipt number
    awaiting_async_payment: Mapped[bool] = mapped_column(Boolean, default=False)
    review_reason: Mapped[str | None] = mapped_column(Text)  # flagged for the manager
    handed_over_to: Mapped[str | None] = mapped_column(String(80))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id"), index=True)
    contract_month: Mapped[str | None] = mapped_column(String(7))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    acceptance_note: Mapped[str | None] = mapped_column(Text)
    rejected_units: Mapped[int] = mapped_column(Integer, default=0)  # refused at acceptance
    rejected_handled: Mapped[str | None] = mapped_column(String(12))  # restocked / written_off
    placed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    buyer: Mapped[User] = relationship()
    organization: Mapped[Organization | None] = relationship()
    pickup_point: Mapped[PickupPoint | None] = relationship()
    lines: Mapped[list["OrderLine"]] = relationship(back_populates="order", order_by="OrderLine.id")
    events: Mapped[list["OrderEvent"]] = relationship(back_populates="order", order_by="OrderEvent.id")
    refunds: Mapped[list["Refund"]] = relationship(back_populates="order", order_by="Refund.id")

    @property
    def is_paid(self) -> bool:
        return self.status in PAID_STATES

    @property
    def number(self) -> str:
        return f"{self.placed_at:%Y%m%d}-{self.id:05d}" if self.placed_at else str(self.id)

    def can_move_to(self, status: str) -> bool:
        return status in TRANSITIONS.get(self.status, set())


class OrderLine(db.Model):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refund_within_quantity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Integer)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()
    allocations: Mapped[list["Allocation"]] = relationship(back_populates="line", order_by="Allocation.id")

    @property
    def total_fen(self) -> int:
        return self.quantity * self.unit_price_fen


class Allocation(db.Model):
    """Line → lot → quantity: which supplier's stock filled a line, and so whose income the sale is."""

    __tablename__ = "allocation"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refund_within_quantity"),
        CheckConstraint("released_quantity >= 0 AND released_quantity <= quantity", name="release_within_quantity"),
        CheckConstraint("(household_id IS NULL) <> (enterprise_id IS NULL)", name="one_supplier"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    released_quantity: Mapped[int] = mapped_column(Integer, default=0)  # given back to stock before payment
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    line: Mapped[OrderLine] = relationship(back_populates="allocations")
    lot: Mapped[Lot] = relationship()


class OrderEvent(db.Model):
    """The order's timeline: every change of state, who made it, when, from and to."""

    __tablename__ = "order_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")
    user: Mapped[User | None] = relationship()


class Refund(db.Model):
    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("method", ("stripe", "offline", "account")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(12))
    restock: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="refunds")
    user: Mapped[User | None] = relationship()
    lines: Mapped[list["RefundLine"]] = relationship(back_populates="refund", order_by="RefundLine.id")


class RefundLine(db.Model):
    __tablename__ = "refund_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refund.id"), index=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocation.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)

    refund: Mapped[Refund] = relationship(back_populates="lines")
    allocation: Mapped[Allocation] = relationship()


@event.listens_for(OrderEvent, "before_update")
@event.listens_for(OrderEvent, "before_delete")
def _timeline_is_append_only(mapper, connection, target):
    raise RuntimeError("the order timeline is append-only")

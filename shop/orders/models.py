from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        event, func)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..accounts.models import Organization, User
from ..catalog.models import PickupPoint, Product
from ..extensions import db
from ..inventory.models import Lot
from ..glossary import label
from ..models_base import Money, one_of, utcnow, value_fen
from . import workflow

CHANNELS = ("retail", "bulk", "standing", "point")  # point: sold at a seasonal sales point (临时销售点)
STATUSES = workflow.STATUSES
PAYMENT_STATUSES = workflow.PAYMENT_STATUSES
PAYMENT_METHODS = ("stripe", "offline", "account", "point")  # point: paid at the sales point
EVENT_KINDS = ("status", "payment", "note")
EXPIRED_NOTE = "reservation expired"  # the note of a cancellation made because the hold ran out


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


def order_number(placed_at: datetime | None, order_id: int) -> str:
    """An order's number as pages show it: YYYYMMDD-00042 (its id when it has no placing time)."""
    return f"{placed_at:%Y%m%d}-{order_id:05d}" if placed_at else str(order_id)


def order_number_sql(placed_at, order_id):
    """`order_number` in SQL, for exports: YYYYMMDD-00042 (the id to at least five digits)."""
    if db.engine.dialect.name == "postgresql":
        digits = func.cast(order_id, String)
        return (func.to_char(placed_at, "YYYYMMDD", type_=String) + "-"
                + func.lpad(digits, func.greatest(5, func.length(digits)), "0", type_=String))
    return func.strftime("%Y%m%d", placed_at, type_=String) + "-" + func.printf("%05d", order_id, type_=String)


class Order(db.Model):
    __tablename__ = "shop_order"
    __table_args__ = (
        one_of("channel", CHANNELS),
        one_of("status", STATUSES),
        one_of("payment_status", PAYMENT_STATUSES),
        one_of("payment_method", PAYMENT_METHODS),
        CheckConstraint("total_fen >= 0", name="total_not_negative"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= total_fen", name="refund_within_total"),
        CheckConstraint("welfare_fen >= 0 AND welfare_fen <= total_fen", name="welfare_within_total"),
        Index("ix_shop_order_status_reserved", "status", "reserved_until"),
        # at most one standing order per contract and month, however many hosts generate at once
        UniqueConstraint("contract_id", "contract_month", name="uq_shop_order_contract_month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"), index=True)
    channel: Mapped[str] = mapped_column(String(12), default="retail")
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")  # where the goods are
    payment_status: Mapped[str] = mapped_column(String(20), default="unpaid", index=True)  # what was charged
    payment_method: Mapped[str] = mapped_column(String(12))
    pickup_point_id: Mapped[int | None] = mapped_column(ForeignKey("pickup_point.id"), index=True)
    delivery_address: Mapped[str | None] = mapped_column(String(200))  # delivery to the workplace
    total_fen: Mapped[int] = mapped_column(Money)
    refunded_fen: Mapped[int] = mapped_column(Money, default=0)
    # paid from the buyer's welfare grants (drawn when the order is placed); the rest is paid the chosen way
    welfare_fen: Mapped[int] = mapped_column(Money, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3), default="cny")
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime)
    # one Checkout Session pays one order, or every part of a checkout split across service points
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # a checkout split across service points: every part (the first included) names the checkout's first order
    checkout_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), index=True)
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
    def flow(self) -> str:
        return workflow.flow_of(self.payment_method)

    @property
    def due_fen(self) -> int:
        """What is paid the chosen way: the total less what the buyer's welfare grants paid."""
        return self.total_fen - (self.welfare_fen or 0)

    @property
    def is_paid(self) -> bool:
        """Charged: its sale is in the ledger (paid, or accepted on account), whatever was refunded since."""
        return self.payment_status in workflow.CHARGED

    @property
    def dispatched(self) -> bool:
        """The goods have left the service point (handed over or delivered)."""
        return self.status in workflow.DISPATCHED

    @property
    def hold_lapsed(self) -> bool:
        """Its hold on the stock has run out (what a page shows; the next write or `orders expire` records it)."""
        return (self.status == "pending_payment" and self.reserved_until is not None
                and not self.awaiting_async_payment and self.reserved_until < clock.now())

    @property
    def cancellation(self) -> "OrderEvent | None":
        """The event that cancelled (or refused) the order: who did it, when, and the reason given."""
        for happened in reversed(self.events):
            if happened.kind == "status" and happened.to_status in ("cancelled", "refused"):
                return happened
        return None

    @property
    def number(self) -> str:
        return order_number(self.placed_at, self.id)

    @property
    def line_quantities(self) -> list[tuple[int, "OrderLine"]]:
        """(units, line) of every line: for totals per unit of measure (`quantity_totals`)."""
        return [(line.quantity, line) for line in self.lines]

    @property
    def refused_quantities(self) -> list[tuple[int, "OrderLine"]]:
        """(units refused at acceptance, line) of each line that had some: for totals per unit of measure."""
        return [(line.refused, line) for line in self.lines if line.refused]

    @property
    def status_label(self) -> str:
        return label("order_status", self.status)

    @property
    def payment_label(self) -> str:
        """What was charged, in words; an order on account is billed to the company rather than paid."""
        kind = "account_payment_status" if self.flow == workflow.ACCOUNT else "payment_status"
        return label(kind, self.payment_status)


class OrderLine(db.Model):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refund_within_quantity"),
        CheckConstraint("scale IN (1, 10, 100, 1000)", name="scale_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Money)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # quantities count 1/scale of the priced unit (a weight line: tenths of a 斤 at a price per 斤)
    scale: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()
    allocations: Mapped[list["Allocation"]] = relationship(back_populates="line", order_by="Allocation.id")

    @property
    def total_fen(self) -> int:
        return value_fen(self.quantity, self.unit_price_fen, self.scale)

    @property
    def held(self) -> int:
        """Units of the line still held for the order (see Allocation.held)."""
        return sum(a.held for a in self.allocations)

    @property
    def sold(self) -> int:
        """Units of the line sold: for a company's order, what it accepted."""
        return sum(a.sold for a in self.allocations)

    @property
    def refused(self) -> int:
        """Units of a company's delivery refused at acceptance (0 before it is accepted)."""
        return self.quantity - self.sold if self.order.accepted_at is not None else 0

    @property
    def sold_fen(self) -> int:
        return value_fen(self.sold, self.unit_price_fen, self.scale)


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

    @hybrid_property
    def held(self) -> int:
        """Units still held for the order: allocated, less those given back before the sale (released) and
        those refunded. The one definition, in Python and in SQL, used by services, reports, pages and the API."""
        return self.quantity - self.released_quantity - self.refunded_quantity

    @hybrid_property
    def sold(self) -> int:
        """Units sold: allocated, less those given back before the sale (a refund does not undo a sale)."""
        return self.quantity - self.released_quantity


class OrderEvent(db.Model):
    """The order's timeline: every change of state, who made it, when, from and to."""

    __tablename__ = "order_event"
    __table_args__ = (one_of("kind", EVENT_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="status")  # status, payment (a payment status) or note
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")
    user: Mapped[User | None] = relationship()

    @property
    def title(self) -> str:
        if self.kind == "payment":
            return label("payment_status", self.to_status)
        if self.kind == "note":
            return label("order_note", self.to_status)
        return label("order_event", self.to_status)

    @property
    def reason(self) -> str | None:
        """Why an order was cancelled, in words (an expired hold is the shop's doing, not a person's)."""
        if self.note == EXPIRED_NOTE:
            return _("超过保留时间未付款，系统已自动取消，商品已放回库存。")
        return self.note


REFUND_STRIPE_STATUSES = ("to_send", "sent", "succeeded", "failed")
REFUND_METHODS = ("stripe", "offline", "account", "welfare")  # welfare: every fen went back to welfare grants


class Refund(db.Model):
    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("method", REFUND_METHODS),
        one_of("stripe_status", REFUND_STRIPE_STATUSES),
        CheckConstraint("(method = 'stripe') = (stripe_status IS NOT NULL)", name="stripe_status_for_stripe"),
        CheckConstraint("welfare_fen >= 0 AND welfare_fen <= amount_fen", name="welfare_within_amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Money)
    # the part given back to the buyer's welfare grants (or their fund), never as cash: welfare money first
    welfare_fen: Mapped[int] = mapped_column(Money, default=0, server_default="0")
    method: Mapped[str] = mapped_column(String(12))
    # A card or wallet refund is recorded first and sent to Stripe after its transaction commits: to_send until
    # Stripe accepts it (sent), then what Stripe reports (succeeded / failed). NULL for money given back by hand.
    stripe_status: Mapped[str | None] = mapped_column(String(12), index=True)
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

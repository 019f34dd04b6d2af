from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..catalog.models import Product
from ..extensions import db
from ..models_base import one_of, utcnow
from ..producers.models import Enterprise, Household

# intake +received; allocate −remaining +reserved; release +remaining −reserved (given back before the goods
# left); dispatch −reserved (the goods left: handed over or delivered); return +remaining (goods that had left
# came back in sellable condition); adjust ± remaining with a reason
MOVEMENT_KINDS = ("intake", "allocate", "release", "dispatch", "return", "adjust")
ADJUSTMENT_REASONS = ("spoiled", "damaged", "count_correction", "returned")
ONE_SUPPLIER = "(household_id IS NULL) <> (enterprise_id IS NULL)"


class SupplierMixin:
    """A household or an enterprise — exactly one of them."""

    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"), index=True)

    @property
    def supplier(self) -> Household | Enterprise:
        return self.household if self.household_id else self.enterprise


class Intake(SupplierMixin, db.Model):
    """One visit of a supplier to the service point, bringing one or more products."""

    __tablename__ = "intake"
    __table_args__ = (CheckConstraint(ONE_SUPPLIER, name="one_supplier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    note: Mapped[str | None] = mapped_column(Text)

    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()
    user: Mapped[User] = relationship()
    lots: Mapped[list["Lot"]] = relationship(back_populates="intake", order_by="Lot.id")


class Lot(SupplierMixin, db.Model):
    """A quantity of one product from one supplier. Every change to `remaining` is a guarded update."""

    __tablename__ = "lot"
    __table_args__ = (
        CheckConstraint(ONE_SUPPLIER, name="one_supplier"),
        CheckConstraint("quantity_received > 0", name="received_positive"),
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        Index("ix_lot_product_available", "product_id", "remaining"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    intake_id: Mapped[int] = mapped_column(ForeignKey("intake.id"), index=True)
    quantity_received: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    # allocated to orders and not yet handed over: on hand = remaining + reserved
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    best_before: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    token: Mapped[str] = mapped_column(String(32), unique=True)  # unguessable: the traceability link
    # brought to a seasonal sales point (sold there only), or None: at the service point
    sales_point_id: Mapped[int | None] = mapped_column(ForeignKey("sales_point.id"), index=True)

    product: Mapped[Product] = relationship()
    intake: Mapped[Intake] = relationship(back_populates="lots")
    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()
    movements: Mapped[list["StockMovement"]] = relationship(back_populates="lot", order_by="StockMovement.id")

    def expired(self, on: date) -> bool:
        return self.best_before is not None and self.best_before < on

    def __repr__(self) -> str:
        return f"<Lot {self.id} product={self.product_id} remaining={self.remaining}>"


class StockMovement(db.Model):
    """Append-only: what happened to a lot's quantities, by whom and why.

    `quantity` is the signed change of `remaining` and `reserved_delta` that of `reserved` (see
    MOVEMENT_KINDS). A lot's remaining always equals the sum of its movements' quantities, and its reserved
    the sum of their reserved deltas — allocated − dispatched − released.
    """

    __tablename__ = "stock_movement"
    __table_args__ = (
        one_of("kind", MOVEMENT_KINDS),
        CheckConstraint("quantity <> 0 OR reserved_delta <> 0", name="changes_something"),
        CheckConstraint("(kind = 'adjust') = (reason IS NOT NULL)", name="reason_iff_adjust"),
        CheckConstraint("reason IS NULL OR reason IN ('spoiled', 'damaged', 'count_correction', 'returned')",
                        name="reason_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    quantity: Mapped[int] = mapped_column(Integer)
    reserved_delta: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(60), index=True)  # e.g. "order:12" — what it answers to
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    lot: Mapped[Lot] = relationship(back_populates="movements")
    user: Mapped[User | None] = relationship()


@event.listens_for(StockMovement, "before_update")
@event.listens_for(StockMovement, "before_delete")
def _movements_are_append_only(mapper, connection, target):
    raise RuntimeError("stock movements are append-only: record a new movement instead")

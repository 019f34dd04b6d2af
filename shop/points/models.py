"""Seasonal sales points: where growers sell to passers-by in town for a season, under a permit.

A point sale is recorded on the operator's phone, offline if need be, with an id the phone made (`client_id`,
a UUID) and a receipt number the phone printed (point code – phone code – sequence). The server keeps each
client id once, whatever the retries; a sale it can fill becomes an order of the channel 临时销售点 (its
stock allocated from the grower's lot at the point and its sale posted to the grower's ledger account); one it
cannot fill is kept, flagged for the manager — never dropped.
"""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, Text, Time,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..catalog.models import Product
from ..extensions import db
from ..inventory.models import ONE_SUPPLIER, SupplierMixin
from ..models_base import Money, one_of, utcnow
from ..producers.models import Enterprise, Household

PAYMENT_WAYS = ("cash", "grower_qr")          # cash to the operator, or straight to the grower's own QR code
SALE_STATUSES = ("recorded", "flagged", "voided")


class SalesPoint(db.Model):
    """A temporary sales point in town, open for a season (first and last day) at daily hours."""

    __tablename__ = "sales_point"
    __table_args__ = (CheckConstraint("last_day >= first_day", name="season_in_order"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)  # whose service point runs it
    code: Mapped[str] = mapped_column(String(8), unique=True)  # the receipt numbers' prefix, e.g. XG01
    name: Mapped[str] = mapped_column(String(80), unique=True)
    address: Mapped[str] = mapped_column(String(200))
    map_url: Mapped[str | None] = mapped_column(String(300))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    opens_at: Mapped[time | None] = mapped_column(Time)
    closes_at: Mapped[time | None] = mapped_column(Time)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    growers: Mapped[list["PointGrower"]] = relationship(back_populates="point", order_by="PointGrower.id")
    operators: Mapped[list["PointOperator"]] = relationship(back_populates="point", order_by="PointOperator.id")

    def open_on(self, day: date) -> bool:
        return self.active and self.first_day <= day <= self.last_day

    def __repr__(self) -> str:
        return f"<SalesPoint {self.code}>"


class PointGrower(SupplierMixin, db.Model):
    """A household or enterprise that sells at a point."""

    __tablename__ = "point_grower"
    __table_args__ = (CheckConstraint(ONE_SUPPLIER, name="one_supplier"),
                      UniqueConstraint("sales_point_id", "household_id"),
                      UniqueConstraint("sales_point_id", "enterprise_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"), index=True)
    # what the grower's own payment code is (e.g. 微信收款码): shown to the operator, never its content
    qr_note: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    point: Mapped[SalesPoint] = relationship(back_populates="growers")
    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()


class PointOperator(db.Model):
    """A user of the role `operator` who runs a point (sees only the points assigned here)."""

    __tablename__ = "point_operator"
    __table_args__ = (UniqueConstraint("sales_point_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)

    point: Mapped[SalesPoint] = relationship(back_populates="operators")
    user: Mapped[User] = relationship()


class Permit(SupplierMixin, db.Model):
    """销售许可证: a grower may sell at a point from `valid_from` to `valid_to`. Its public check page (QR code on
    the printed card) shows only the number, the point, the dates and a masked name."""

    __tablename__ = "permit"
    __table_args__ = (CheckConstraint(ONE_SUPPLIER, name="one_supplier"),
                      CheckConstraint("valid_to >= valid_from", name="validity_in_order"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"), index=True)
    issued_by: Mapped[str] = mapped_column(String(80))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    point: Mapped[SalesPoint] = relationship()
    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()

    def valid_on(self, day: date) -> bool:
        return self.revoked_at is None and self.valid_from <= day <= self.valid_to


class PointDevice(db.Model):
    """An operator's phone, registered once while online: its code is the middle part of its receipt numbers."""

    __tablename__ = "point_device"
    __table_args__ = (UniqueConstraint("sales_point_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"), index=True)
    code: Mapped[str] = mapped_column(String(4))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship()


class PointSale(SupplierMixin, db.Model):
    """One sale at a point, as the phone recorded it, kept exactly once per client id."""

    __tablename__ = "point_sale"
    __table_args__ = (
        CheckConstraint(ONE_SUPPLIER, name="one_supplier"),
        one_of("payment", PAYMENT_WAYS),
        one_of("status", SALE_STATUSES),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("scale IN (1, 10, 100, 1000)", name="scale_valid"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("(status = 'recorded') = (order_id IS NOT NULL)", name="recorded_iff_order"),
        Index("ix_point_sale_point_day", "sales_point_id", "sold_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36), unique=True)  # the UUID the phone made
    receipt_number: Mapped[str] = mapped_column(String(40), index=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("point_device.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))  # the operator who sent it
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int] = mapped_column(Integer)          # in the product's smallest unit (0.1 斤)
    scale: Mapped[int] = mapped_column(Integer, default=1)  # smallest units per priced unit (10: price per 斤)
    unit_price_fen: Mapped[int] = mapped_column(Money)      # per priced unit (per 斤)
    amount_fen: Mapped[int] = mapped_column(Money)          # quantity × price, rounded half-up to the fen
    payment: Mapped[str] = mapped_column(String(12))
    sold_at: Mapped[datetime] = mapped_column(DateTime)     # when the phone recorded it (UTC)
    sold_on: Mapped[date] = mapped_column(Date)             # its local day: the day it is counted in
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="recorded")
    flag_reason: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), unique=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolution_note: Mapped[str | None] = mapped_column(Text)

    point: Mapped[SalesPoint] = relationship()
    product: Mapped[Product] = relationship()
    household: Mapped[Household | None] = relationship()
    enterprise: Mapped[Enterprise | None] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class PointDay(db.Model):
    """A point's day closed: the cash the operator counted against the cash sales recorded."""

    __tablename__ = "point_day"
    __table_args__ = (UniqueConstraint("sales_point_id", "day"),
                      CheckConstraint("counted_cash_fen >= 0", name="counted_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sales_point_id: Mapped[int] = mapped_column(ForeignKey("sales_point.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    counted_cash_fen: Mapped[int] = mapped_column(Money)
    recorded_cash_fen: Mapped[int] = mapped_column(Money)   # every cash sale of the day, flagged ones included
    posted_cash_fen: Mapped[int] = mapped_column(Money)     # of which in the ledger (handed to the service point)
    grower_qr_fen: Mapped[int] = mapped_column(Money)       # paid straight to the growers
    note: Mapped[str | None] = mapped_column(Text)
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    point: Mapped[SalesPoint] = relationship()
    closed_by: Mapped[User] = relationship()

    @property
    def difference_fen(self) -> int:
        """Counted − recorded: positive is cash over, negative cash short."""
        return self.counted_cash_fen - self.recorded_cash_fen

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..formatting import month_in_window
from ..models_base import Money, month_window_checks, one_of, utcnow

# code → Chinese UI name (translated for English through the catalog in i18n)
CATEGORIES = ("eggs", "peanuts", "mung_beans", "poultry", "brooms", "watermelons", "other")
UNITS = ("枚", "斤", "公斤", "把", "只", "个", "箱", "袋", "瓶")
WEIGHT_UNITS = ("斤", "公斤")  # a product in one of these may be sold by weight, to a tenth


class SeasonalMixin:
    season_start_month: Mapped[int | None] = mapped_column(Integer)
    season_end_month: Mapped[int | None] = mapped_column(Integer)

    def in_season(self, on: date) -> bool:
        return month_in_window(on.month, self.season_start_month, self.season_end_month)


class Product(SeasonalMixin, db.Model):
    __tablename__ = "product"
    __table_args__ = (
        one_of("category", CATEGORIES),
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("low_stock_threshold IS NULL OR low_stock_threshold >= 0", name="threshold_not_negative"),
        CheckConstraint("quantity_decimals IN (0, 1)", name="decimals_valid"),
        UniqueConstraint("village_id", "name"),  # two villages may both sell 散养土鸡蛋, each its own
        *month_window_checks(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # the village whose service point holds its stock and fills its orders: its catalog, its suppliers
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    category: Mapped[str] = mapped_column(String(20), index=True)
    unit: Mapped[str] = mapped_column(String(8))
    price_fen: Mapped[int] = mapped_column(Money)
    description: Mapped[str | None] = mapped_column(Text)
    photo: Mapped[str | None] = mapped_column(String(80))
    # the manager is warned when available stock falls below this (None: no warning)
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)
    # 1: sold by weight to a tenth of its unit (0.1 斤); its lots and lines count tenths, its price is per unit
    quantity_decimals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def scale(self) -> int:
        """Smallest units (what lots and lines count) per priced unit: 10 for a product sold by 0.1 斤."""
        return 10 ** (self.quantity_decimals or 0)

    @property
    def by_weight(self) -> bool:
        return bool(self.quantity_decimals)

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.name}>"


class PickupPoint(SeasonalMixin, db.Model):
    """销售点/自提点: where staff collect orders (the town's watermelon points in summer)."""

    __tablename__ = "pickup_point"
    __table_args__ = month_window_checks()

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)  # the service point it serves
    name: Mapped[str] = mapped_column(String(80), unique=True)
    address: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # when it is open: ISO weekdays ("12345" = Monday to Friday) and the local closing time; unset = no schedule
    open_weekdays: Mapped[str | None] = mapped_column(String(7))
    closes_at: Mapped[time | None] = mapped_column(Time)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<PickupPoint {self.name}>"

    @property
    def has_schedule(self) -> bool:
        return bool(self.open_weekdays) and self.closes_at is not None

    def next_closing(self, after: date) -> date | None:
        """The first opening day after `after` (None without a schedule)."""
        if not self.has_schedule:
            return None
        for n in range(1, 8):
            day = after + timedelta(days=n)
            if str(day.isoweekday()) in self.open_weekdays:
                return day
        return None


class PriceTier(db.Model):
    """Bulk price: from `min_quantity` units on, each unit costs `unit_price_fen` (company bulk orders)."""

    __tablename__ = "price_tier"
    __table_args__ = (
        UniqueConstraint("product_id", "min_quantity"),
        CheckConstraint("min_quantity > 1", name="min_quantity_above_one"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    min_quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(Money)

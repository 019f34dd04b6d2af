from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import User
from ..extensions import db
from ..models_base import one_of, utcnow

HOUSEHOLD_STATUSES = ("alleviated", "monitored", "ordinary")
ENTERPRISE_KINDS = ("cooperative", "company", "collective")


class Village(db.Model):
    __tablename__ = "village"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    town: Mapped[str | None] = mapped_column(String(80))

    households: Mapped[list["Household"]] = relationship(back_populates="village")

    def __repr__(self) -> str:
        return f"<Village {self.name}>"


class Household(db.Model):
    """A registered household (农户). Its head's name and phone are personal data."""

    __tablename__ = "household"
    __table_args__ = (
        one_of("status", HOUSEHOLD_STATUSES),
        CheckConstraint("members >= 1", name="members_positive"),
        CheckConstraint("status = 'monitored' OR risk_eliminated IS NULL", name="risk_only_for_monitored"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    head_name: Mapped[str] = mapped_column(String(40), index=True)
    members: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True)
    risk_eliminated: Mapped[bool | None] = mapped_column(Boolean)
    phone: Mapped[str | None] = mapped_column(String(32))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    village: Mapped[Village] = relationship(back_populates="households")
    pairing: Mapped["Pairing | None"] = relationship(back_populates="household", uselist=False)

    @property
    def display_name(self) -> str:
        return self.head_name

    def __repr__(self) -> str:
        return f"<Household {self.code}>"


class Enterprise(db.Model):
    """A village enterprise (村企): cooperative, company or the village collective."""

    __tablename__ = "enterprise"
    __table_args__ = (one_of("kind", ENTERPRISE_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    village: Mapped[Village] = relationship()

    @property
    def display_name(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Enterprise {self.name}>"


class PointManager(db.Model):
    """A grant: this manager runs this village's e-commerce service point (村电商服务点).

    A manager may run several villages' points; what they see is the union of their grants. Admins (the
    county's coordinators) are not granted villages: they see the whole county.
    """

    __tablename__ = "point_manager"
    __table_args__ = (UniqueConstraint("user_id", "village_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SupportedVillage(db.Model):
    """结对帮扶: this unit supports this village. Its staff may be paired only with households of the villages
    their unit supports; a unit may support several villages and a village be supported by several units."""

    __tablename__ = "supported_village"
    __table_args__ = (UniqueConstraint("organization_id", "village_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class HouseholdMove(db.Model):
    """A household registered in another village (迁户): when, from where to where, and who recorded it. Its sales,
    stock and income before the move stay where they happened; the household's page lists its moves."""

    __tablename__ = "household_move"
    __table_args__ = (CheckConstraint("from_village_id <> to_village_id", name="moves_somewhere"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    from_village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    to_village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    moved_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Pairing(db.Model):
    """包保/结对: a bureau staff member responsible for a household.

    A household has one responsible staff member; a staff member may have several households.
    It lives with the producers because it is a fact about a household, and producers depend
    on accounts, never the other way round.
    """

    __tablename__ = "pairing"
    __table_args__ = (UniqueConstraint("household_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship()
    household: Mapped[Household] = relationship(back_populates="pairing")


class HouseholdCard(db.Model):
    """A household's card: a link (QR code) to its own income page, opened with a 6-digit PIN. Only the PIN's
    hash is kept; failed attempts are counted on the card by a guarded UPDATE. A revoked card opens nothing."""

    __tablename__ = "household_card"
    __table_args__ = (CheckConstraint("failed_attempts >= 0", name="attempts_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    pin_version: Mapped[int] = mapped_column(Integer, default=1)  # a new PIN ends the pages opened with the old
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    household: Mapped[Household] = relationship()


class VisitNote(db.Model):
    """What the responsible staff member noted after visiting a household (dated; kept as history)."""

    __tablename__ = "visit_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    visited_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship()

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Organization
from ..extensions import db
from ..models_base import Money


class OrganizationTarget(db.Model):
    """A buying unit's annual consumption-assistance target (the 832 platform's reserved share)."""

    __tablename__ = "organization_target"
    __table_args__ = (UniqueConstraint("organization_id", "year"),
                      CheckConstraint("target_fen > 0", name="target_positive"),
                      CheckConstraint("year BETWEEN 2000 AND 2100", name="year_range"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    year: Mapped[int] = mapped_column(Integer)
    target_fen: Mapped[int] = mapped_column(Money)

    organization: Mapped[Organization] = relationship()

"""A supporting unit's own view (单位协调员): its year's target and progress, its staff's buying, their pairings.

Everything here is one unit's: the caller passes the coordinator's own unit, and a staff member of another unit
is not found. The figures come from the same rollups and sentences as the county's report, narrowed to the unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import distinct, func, select

from ..accounts.models import Organization, User
from ..extensions import db
from ..producers.models import Household, Pairing, Village
from .figures import Period, Report, TargetProgress, build, by_buyer, summed, targets
from .summary import summary_sentences


@dataclass
class StaffRow:
    user: User
    households: int      # paired with
    orders: int          # days with purchases in the year
    spent_fen: int       # what they bought this year (less refunds)


@dataclass
class UnitPage:
    organization: Organization
    year: int
    target: TargetProgress
    report: Report
    sentences: list[str]
    staff: list[StaffRow]

    @property
    def buyers(self) -> int:
        return len([row for row in self.staff if row.spent_fen > 0])


def unit_page(organization: Organization, year: int, today: date) -> UnitPage:
    report = build(Period.year(year, organization.id), today, for_summary=True)
    target = next(t for t in targets(year, today) if t.organization.id == organization.id)
    return UnitPage(organization, year, target, report, summary_sentences(report), staff_rows(organization, year))


def staff_rows(organization: Organization, year: int) -> list[StaffRow]:
    """The unit's active staff, most spent first: pairings and the year's buying of each."""
    r = by_buyer(Period.year(year, organization.id))
    spent = {buyer: (int(fen), int(days)) for buyer, fen, days in db.session.execute(
        r.base(r.t.buyer_id, summed(r.gross), func.count(distinct(r.t.day))).group_by(r.t.buyer_id))}
    paired = dict(db.session.execute(select(Pairing.user_id, func.count()).group_by(Pairing.user_id)).all())
    people = db.session.scalars(select(User).where(User.organization_id == organization.id, User.active.is_(True),
                                                   User.role == "staff").order_by(User.username)).all()
    rows = [StaffRow(u, int(paired.get(u.id, 0)), spent.get(u.id, (0, 0))[1], spent.get(u.id, (0, 0))[0])
            for u in people]
    return sorted(rows, key=lambda row: (-row.spent_fen, row.user.username))


def unit_member(organization: Organization, user_id: int) -> User | None:
    """A staff member of this unit, or None (another unit's staff are not found)."""
    user = db.session.get(User, user_id)
    return user if user is not None and user.organization_id == organization.id and user.role == "staff" else None


def pairings_of(user: User) -> list[tuple[Household, str]]:
    """The member's paired households and their villages."""
    rows = db.session.execute(select(Household, Village.name).join(Pairing, Pairing.household_id == Household.id)
                              .join(Village, Village.id == Household.village_id)
                              .where(Pairing.user_id == user.id).order_by(Household.code))
    return [(household, village) for household, village in rows]

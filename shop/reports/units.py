"""A supporting unit's own view (单位协调员): its year's target and progress, its staff's buying, their pairings;
and the county's units themselves: the villages each supports, and removing one that has no history.

Everything here is one unit's: the caller passes the coordinator's own unit, and a staff member of another unit
is not found. The figures come from the same rollups and sentences as the county's report, narrowed to the unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import distinct, func, select

from ..accounts.models import Organization, User
from ..audit.services import record as audit
from ..contracts.models import CompanyPayment, Contract
from ..ledger.models import Account
from ..orders.models import Order
from ..errors import ValidationFailed
from ..extensions import db
from ..models_base import COUNTY_WIDE
from ..producers import services as producers
from ..producers.models import Household, Pairing, Village
from .models import OrganizationTarget
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


# --- the county's units: which villages each supports, and removing one that left nothing behind -----------------

def unit_history(organization_id: int) -> dict[str, int]:
    """What a unit has behind it that must be kept: its people, orders, contracts, targets and account."""
    counted = {"users": (User, User.organization_id), "orders": (Order, Order.organization_id),
               "contracts": (Contract, Contract.organization_id), "targets": (OrganizationTarget,
                                                                              OrganizationTarget.organization_id),
               "payments": (CompanyPayment, CompanyPayment.organization_id),
               "accounts": (Account, Account.organization_id)}
    found = {}
    for name, (model, column) in counted.items():
        n = db.session.scalar(select(func.count()).select_from(model).where(column == organization_id),
                              execution_options=COUNTY_WIDE)
        if n:
            found[name] = int(n)
    return found


def save_unit(organization: Organization, *, name: str, villages: set[int], user_id: int | None) -> Organization:
    """A unit renamed and the villages it supports set (`producers.set_supported_villages`)."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValidationFailed.on("name", _("请填写单位名称（最多 120 个字）。"))
    taken = db.session.scalar(select(Organization.id).where(Organization.name == name, Organization.id != organization.id),
                              execution_options=COUNTY_WIDE)
    if taken is not None:
        raise ValidationFailed.on("name", _("单位 %(n)s 已存在。", n=name))
    if name != organization.name:
        audit("unit.rename", organization, f"{organization.name}→{name}", user_id=user_id)
        organization.name = name
    producers.set_supported_villages(organization.id, villages, user_id=user_id)
    db.session.flush()
    return organization


def delete_unit(organization: Organization, *, user_id: int | None) -> None:
    """Remove a unit added by mistake. A unit with history — people, orders, contracts, targets, an account — is
    refused with what it holds: that history is the county's record and stays."""
    held = unit_history(organization.id)
    if held:
        words = {"users": _("%(n)d 个用户"), "orders": _("%(n)d 个订单"), "contracts": _("%(n)d 份合同"),
                 "targets": _("%(n)d 个年度任务"), "payments": _("%(n)d 笔付款"), "accounts": _("往来账")}
        what = "、".join(words[k] % {"n": n} for k, n in held.items())
        raise ValidationFailed.on("unit", _("单位 %(u)s 有%(w)s，这些记录要保留，不能删除；可以停用它的用户。",
                                            u=organization.name, w=what))
    producers.set_supported_villages(organization.id, set(), user_id=user_id)
    audit("unit.delete", organization, organization.name, user_id=user_id)
    db.session.delete(organization)
    db.session.flush()

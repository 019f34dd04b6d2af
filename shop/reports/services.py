"""The consumption-assistance report. Every figure is one SQL aggregate (GROUP BY) over the units
sold: allocations of paid or accepted orders, less what was released or refunded, dated by the sale
(paid_at for staff orders, accepted_at for company orders). So the number of queries does not grow
with the number of orders, and the totals agree with the ledger's sale credits (before fees)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import gettext as _
from sqlalchemy import distinct, func, select

from ..accounts.models import Organization, User
from ..catalog.models import Product
from ..errors import ValidationFailed
from ..extensions import db
from ..ledger.services import local_day_start, parse_period
from ..orders.models import PAID_STATES, Allocation, Order, OrderLine
from ..producers.models import Household, Pairing
from ..sqlhelpers import local_month
from .models import OrganizationTarget

UNITS = Allocation.quantity - Allocation.released_quantity - Allocation.refunded_quantity
VALUE = UNITS * OrderLine.unit_price_fen
SALE_AT = func.coalesce(Order.paid_at, Order.accepted_at)


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    organization_id: int | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None, organization: str | None, today: date) -> "Period":
        lo, hi = parse_period(start, end, date(today.year, 1, 1), date(today.year, 12, 31))
        org_id = None
        if organization:
            if not organization.isdigit() or db.session.get(Organization, int(organization)) is None:
                raise ValidationFailed.on("org", _("未知的单位。"))
            org_id = int(organization)
        return cls(lo, hi, org_id)

    @property
    def bounds(self):
        return local_day_start(self.start), local_day_start(self.end + timedelta(days=1))


def sold(period: Period, *columns):
    """SELECT columns FROM the units sold in the period (the base of every figure)."""
    lo, hi = period.bounds
    query = (select(*columns).select_from(Allocation).join(OrderLine, OrderLine.id == Allocation.line_id)
             .join(Order, Order.id == OrderLine.order_id)
             .where(Order.status.in_(PAID_STATES), SALE_AT >= lo, SALE_AT < hi, UNITS > 0))
    if period.organization_id is not None:
        query = query.where(Order.organization_id == period.organization_id)
    return query


def _sum(expr=VALUE):
    return func.coalesce(func.sum(expr), 0)


@dataclass
class Report:
    period: Period
    total_fen: int
    by_channel: dict[str, int]
    by_organization: list[tuple[int, str, int]]
    by_category: list[tuple[str, int, int]]
    by_month: list[tuple[str, int]]
    households: list[tuple]               # (id, code, name, status, members, earned_fen)
    households_total: int
    households_by_status: dict[str, int]  # how many of each status earned anything
    monitored_earned_fen: int
    staff: list[tuple[int, str, int, int, int]]  # (org id, org name, staff, buyers, spent)
    top_products: list[tuple[str, str, int, int]]
    contract_months: int = 0  # months with contract deliveries accepted
    contracts: tuple = ()     # (number, company, units, value, cap) per contract

    @property
    def households_benefited(self) -> int:
        return len(self.households)

    def share(self, part: int) -> str:
        return f"{part * 100 / self.total_fen:.1f}%" if self.total_fen else "—"  # display only, never money


def table(name: str, period: Period):
    """(column titles, query) of one report table: the page and the exports share these."""
    month = local_month(SALE_AT)
    with_org = sold(period, Organization.id, Organization.name, _sum()).join(
        Organization, Organization.id == Order.organization_id)
    with_product = lambda *cols: sold(period, *cols).join(Product, Product.id == OrderLine.product_id)  # noqa: E731
    tables = {
        "channels": ((_("渠道"), _("金额（分）")), sold(period, Order.channel, _sum()).group_by(Order.channel)),
        "organizations": ((_("单位编号"), _("购买单位"), _("金额（分）")),
                          with_org.group_by(Organization.id, Organization.name).order_by(_sum().desc())),
        "categories": ((_("品类"), _("数量"), _("金额（分）")),
                       with_product(Product.category, _sum(UNITS), _sum()).group_by(Product.category)
                       .order_by(_sum().desc())),
        "months": ((_("月份"), _("金额（分）")), sold(period, month, _sum()).group_by(month).order_by(month)),
        "households": ((_("编号"), _("户编号"), _("户主"), _("属性"), _("人口"), _("收入（分）")),
                       sold(period, Household.id, Household.code, Household.head_name, Household.status,
                            Household.members, _sum()).join(Household, Household.id == Allocation.household_id)
                       .group_by(Household.id, Household.code, Household.head_name, Household.status,
                                 Household.members).order_by(_sum().desc())),
        "products": ((_("商品"), _("单位"), _("数量"), _("金额（分）")),
                     with_product(Product.name, Product.unit, _sum(UNITS), _sum()).group_by(Product.name, Product.unit)
                     .order_by(_sum().desc())),
        "staff": ((_("单位编号"), _("单位"), _("职工数"), _("参与人数"), _("金额（分）")), staff_query(period)),
        "no_sales": ((_("户编号"), _("户主"), _("属性"), _("人口")), no_sales_query(period)),
        "contracts": ((_("合同编号"), _("采购企业"), _("验收数量"), _("验收金额（分）"), _("合同总额（分）")),
                      contracts_query(period)),
        "lines": ((_("日期"), _("订单号"), _("渠道"), _("购买单位"), _("商品"), _("单位"), _("数量"), _("单价（分）"),
                   _("金额（分）"), _("供货农户户编号"), _("供货村企")), lines_query(period)),
    }
    return tables[name]


TABLES = ("channels", "organizations", "categories", "months", "households", "products", "staff", "no_sales",
          "contracts", "lines")


def lines_query(period: Period):
    """销售明细: every sale of the period, one row per order line and supplying lot — which household's
    goods, bought by whom, for how much. The evidence behind every other figure; large, so exported only."""
    from ..producers.models import Enterprise
    from ..sqlhelpers import local_date

    return (sold(period, local_date(SALE_AT), Order.id, Order.channel, Organization.name, Product.name, Product.unit,
                 UNITS, OrderLine.unit_price_fen, VALUE, Household.code, Enterprise.name)
            .join(Product, Product.id == OrderLine.product_id)
            .outerjoin(Organization, Organization.id == Order.organization_id)
            .outerjoin(Household, Household.id == Allocation.household_id)
            .outerjoin(Enterprise, Enterprise.id == Allocation.enterprise_id)
            .order_by(SALE_AT, Order.id, Allocation.id))


def contracts_query(period: Period):
    """Each contract's fulfilment in the period: units and value accepted, against its cap."""
    from ..contracts.models import Contract

    accepted = (sold(period, Order.contract_id.label("contract_id"), _sum(UNITS).label("units"),
                     _sum().label("value")).where(Order.contract_id.is_not(None))
                .group_by(Order.contract_id).subquery())
    query = (select(Contract.number, Organization.name, func.coalesce(accepted.c.units, 0),
                    func.coalesce(accepted.c.value, 0), Contract.cap_fen)
             .join(Organization, Organization.id == Contract.organization_id)
             .outerjoin(accepted, accepted.c.contract_id == Contract.id).order_by(Contract.number))
    if period.organization_id is not None:
        query = query.where(Contract.organization_id == period.organization_id)
    return query


def rows(name: str, period: Period) -> list[tuple]:
    return [tuple(int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in row)
            for row in db.session.execute(table(name, period)[1]).all()]


def build(period: Period, today: date) -> Report:
    total = int(db.session.scalar(sold(period, _sum())))
    by_channel = {channel: 0 for channel in ("retail", "standing", "bulk")}
    by_channel.update(dict(rows("channels", period)))
    households = rows("households", period)
    by_status: dict[str, int] = {}
    monitored = 0
    for _id, _code, _name, status, _members, earned in households:
        by_status[status] = by_status.get(status, 0) + 1
        if status == "monitored":
            monitored += earned
    contract_months = db.session.scalar(sold(period, func.count(distinct(local_month(SALE_AT))))
                                        .where(Order.channel == "standing"))
    return Report(period, total, by_channel, rows("organizations", period), rows("categories", period),
                  rows("months", period), households, db.session.scalar(select(func.count(Household.id))),
                  by_status, monitored, rows("staff", period), rows("products", period)[:10], int(contract_months),
                  tuple(rows("contracts", period)))


def staff_query(period: Period):
    """Per government unit: its staff, how many of them bought, and what they spent."""
    staff_counts = select(User.organization_id, func.count(User.id).label("staff")).where(
        User.role == "staff", User.active.is_(True)).group_by(User.organization_id).subquery()
    bought = sold(period, Order.organization_id.label("org"), func.count(distinct(Order.buyer_id)).label("buyers"),
                  _sum().label("spent")).where(Order.channel == "retail").group_by(Order.organization_id).subquery()
    query = (select(Organization.id, Organization.name, func.coalesce(staff_counts.c.staff, 0),
                    func.coalesce(bought.c.buyers, 0), func.coalesce(bought.c.spent, 0))
             .outerjoin(staff_counts, staff_counts.c.organization_id == Organization.id)
             .outerjoin(bought, bought.c.org == Organization.id)
             .where(Organization.kind == "government").order_by(Organization.name))
    if period.organization_id is not None:
        query = query.where(Organization.id == period.organization_id)
    return query


def no_sales_query(period: Period):
    """Households that sold nothing in the period: the ones who still need help."""
    earned = sold(period, Allocation.household_id).where(Allocation.household_id.is_not(None))
    return (select(Household.code, Household.head_name, Household.status, Household.members)
            .where(Household.id.not_in(earned)).order_by(Household.status.desc(), Household.code))


# --- unit targets -----------------------------------------------------------------------------------------

@dataclass
class TargetProgress:
    organization: Organization
    year: int
    target_fen: int | None
    spent_fen: int
    forecast_fen: int

    @property
    def percent(self) -> int | None:
        return None if not self.target_fen else self.spent_fen * 100 // self.target_fen


def targets(year: int, today: date) -> list[TargetProgress]:
    period = Period(date(year, 1, 1), date(year, 12, 31))
    spent = dict(db.session.execute(sold(period, Order.organization_id, _sum()).group_by(Order.organization_id)).all())
    goals = dict(db.session.execute(select(OrganizationTarget.organization_id, OrganizationTarget.target_fen)
                                    .where(OrganizationTarget.year == year)).all())
    days = (date(year, 12, 31) - date(year, 1, 1)).days + 1
    elapsed = min(days, max(1, (today - date(year, 1, 1)).days + 1)) if today.year == year else (
        days if today.year > year else 0)
    result = []
    for org in db.session.scalars(select(Organization).order_by(Organization.kind.desc(), Organization.name)):
        value = int(spent.get(org.id, 0))
        forecast = value * days // elapsed if elapsed else 0  # a straight line through the year so far
        result.append(TargetProgress(org, year, goals.get(org.id), value, forecast))
    return result


def set_target(organization: Organization, year: int, target_fen) -> OrganizationTarget:
    if isinstance(target_fen, bool) or not isinstance(target_fen, int) or target_fen <= 0:
        raise ValidationFailed.on("target", _("目标金额必须大于 0。"))
    if not 2000 <= year <= 2100:
        raise ValidationFailed.on("year", _("年份不正确。"))
    target = db.session.scalar(select(OrganizationTarget).where(OrganizationTarget.organization_id == organization.id,
                                                                OrganizationTarget.year == year))
    if target is None:
        target = OrganizationTarget(organization_id=organization.id, year=year, target_fen=target_fen)
        db.session.add(target)
    else:
        target.target_fen = target_fen
    db.session.flush()
    return target


# --- the staff home ----------------------------------------------------------------------------------------

@dataclass
class StaffHome:
    households: list[Household]
    stock: dict[int, list[tuple[Product, int]]]  # household id → products in stock now
    spent_fen: int
    to_my_households_fen: int


def staff_home(user: User, today: date) -> StaffHome:
    from sqlalchemy import or_

    from ..inventory.models import Lot

    households = list(db.session.scalars(select(Household).join(Pairing).where(Pairing.user_id == user.id)
                                         .order_by(Household.code)))
    stock: dict[int, list[tuple[Product, int]]] = {h.id: [] for h in households}
    if households:
        rows = db.session.execute(
            select(Lot.household_id, Product, func.sum(Lot.remaining)).join(Product, Product.id == Lot.product_id)
            .where(Lot.household_id.in_([h.id for h in households]), Lot.remaining > 0, Product.active.is_(True),
                   or_(Lot.best_before.is_(None), Lot.best_before >= today))
            .group_by(Lot.household_id, Product.id).order_by(Product.name)).all()
        for household_id, product, quantity in rows:
            if product.in_season(today):
                stock[household_id].append((product, int(quantity)))
    year = Period(date(today.year, 1, 1), date(today.year, 12, 31))
    mine = sold(year, _sum()).where(Order.buyer_id == user.id)
    paired = select(Pairing.household_id).where(Pairing.user_id == user.id)
    return StaffHome(households, stock, int(db.session.scalar(mine)),
                     int(db.session.scalar(mine.where(Allocation.household_id.in_(paired)))))


# --- the year's summary ------------------------------------------------------------------------------------

def wan(fen: int) -> str:
    """4,470,000 fen (¥44,700) → '4.47' 万元: two decimals, rounded half up, integer arithmetic only."""
    hundredths = (abs(fen) + 5_000) // 10_000  # one hundredth of 万元 is 10,000 fen
    return f"{'-' if fen < 0 else ''}{hundredths // 100}.{hundredths % 100:02d}"


def amount_words(fen: int) -> str:
    """How a work summary writes money: 4.47万元 from ¥10,000 on, 1,654.00元 below."""
    from ..formatting import format_fen

    if abs(fen) >= 1_000_000:
        return _("%(w)s万元", w=wan(fen))
    return _("%(y)s元", y=format_fen(fen).replace("¥", ""))


def summary_sentences(report: Report) -> list[str]:
    """The figures a 帮扶工作总结 needs, as ready sentences."""
    alleviated = [h for h in report.households if h[3] == "alleviated"]
    monitored = [h for h in report.households if h[3] == "monitored"]
    alleviated_total = sum(h[5] for h in alleviated)
    people = sum(h[4] for h in alleviated)
    money = amount_words
    sentences = [
        _("全年直接消费帮扶采购共计%(w)s，其中职工消费%(r)s、环卫公司合同采购%(c)s、企业批量采购%(b)s。",
          w=money(report.total_fen), r=money(report.by_channel["retail"]), c=money(report.by_channel["standing"]),
          b=money(report.by_channel["bulk"])),
        _("带动脱贫户%(n)d户增收%(w)s，户均增收%(a)s，人均增收%(p)s。", n=len(alleviated), w=money(alleviated_total),
          a=money(alleviated_total // len(alleviated)) if alleviated else "—",
          p=money(alleviated_total // people) if people else "—"),
        _("监测户%(n)d户通过消费帮扶增收%(w)s。", n=len(monitored), w=money(report.monitored_earned_fen)),
        _("共有%(n)d户农户有销售收入，占全部%(t)d户的%(s)s。", n=report.households_benefited, t=report.households_total,
          s=f"{report.households_benefited * 100 // report.households_total}%" if report.households_total else "—"),
    ]
    brooms = next(((q, v) for c, q, v in report.by_category if c == "brooms"), None)
    if brooms:
        sentences.append(_("环卫公司定点采购扫帚%(q)d把，月均%(m)d把，订单额%(w)s。", q=brooms[0],
                           m=brooms[0] // max(1, report.contract_months), w=money(brooms[1])))
    for _id, name, staff, buyers, spent in report.staff:
        if staff:
            sentences.append(_("%(o)s%(s)d名干部职工中有%(b)d人参与消费帮扶，采购%(w)s。", o=name, s=staff, b=buyers,
                               w=money(spent)))
    return sentences

"""The consumption-assistance report, counted from what the ledger posted.

Every figure is an SQL aggregate over the ledger's sale and refund postings, one row per allocation
(which household's or enterprise's units, sold to whom), dated when the ledger dated it — a sale when it
was paid (or accepted, for company orders), a refund when it was made. So each household's income in a
report is exactly what its ledger account was credited for the same period, net of the service fee, and
the gross sales, the platform's fee and what suppliers were credited add up to the fen. The number of
queries does not grow with the number of orders.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import selectinload

from .. import clock, edge
from ..accounts.models import Organization, User
from ..catalog.models import Product
from ..contracts import services as contracts
from ..contracts.models import Contract
from ..errors import ValidationFailed
from ..extensions import db
from ..formatting import Measure, format_fen, format_quantity, quantity_number, yuan_decimal
from ..glossary import names as glossary_names
from ..inventory import services as inventory
from ..inventory.models import Lot
from ..ledger import services as ledger
from ..notifications import services as notices
from ..ledger import rollups
from ..ledger.models import SUPPLIER_KINDS, Account, Entry, JournalTransaction, SalesDayBuyer, SalesDaySupply
from ..orders.models import Allocation, Order, OrderLine
from ..points import services as points
from ..producers.models import Enterprise, Household, Pairing
from ..sqlhelpers import date_month, local_date, order_number
from .models import OrganizationTarget


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    organization_id: int | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None, organization: str | None, today: date) -> "Period":
        """A period as typed (`?from=&to=&org=`); left out, the last twelve months up to today — so the report
        opens on a year's figures in January as in December."""
        lo, hi = clock.parse_period(start, end, *twelve_months(today))
        org_id = None
        if organization:
            org_id = edge.optional_id(organization)
            if org_id is None or db.session.get(Organization, org_id) is None:
                raise ValidationFailed.on("org", _("未知的单位。"))
        return cls(lo, hi, org_id)

    @classmethod
    def year(cls, year: int, organization_id: int | None = None) -> "Period":
        return cls(*clock.year_bounds(year), organization_id)

    @property
    def bounds(self):
        return clock.day_bounds(self.start, self.end)


class Sales:
    """Columns of one period's sales, from the ledger's raw movements (one row per transaction and allocation):
    join `base()` to whatever a table groups by. The detail export reads these; the summed tables read the
    daily rollups (`Rolled`), which `verify` holds equal to them."""

    def __init__(self, period: Period):
        self.period = period
        self.m = rollups.movements(*period.bounds)
        self.units = self.m.c.units
        self.gross = self.m.c.gross                              # what buyers paid (− what was refunded)
        self.credited = self.m.c.credited                        # to the supplier, net of the fee
        self.fee = self.gross - self.m.c.credited - self.m.c.borne
        self.at = self.m.c.at

    def base(self, *columns):
        query = (select(*columns).select_from(self.m).join(Allocation, Allocation.id == self.m.c.allocation_id)
                 .join(OrderLine, OrderLine.id == Allocation.line_id).join(Order, Order.id == OrderLine.order_id))
        if self.period.organization_id is not None:
            query = query.where(Order.organization_id == self.period.organization_id)
        return query


class Rolled:
    """The same sums from one daily rollup (`SalesDayBuyer` or `SalesDaySupply`) over the period's days: a
    table groups `base()` by the rollup's keys, joined to whatever it names them by. Absent keys are 0."""

    def __init__(self, period: Period, table):
        self.period, self.t = period, table
        self.units, self.gross, self.credited = table.units, table.gross_fen, table.credited_fen
        self.fee = table.gross_fen - table.credited_fen - table.borne_fen
        self.month = date_month(table.day)

    def base(self, *columns):
        query = select(*columns).select_from(self.t).where(self.t.day >= self.period.start,
                                                           self.t.day <= self.period.end)
        if self.period.organization_id is not None:
            query = query.where(self.t.organization_id == self.period.organization_id)
        return query


def by_buyer(period: Period) -> Rolled:
    return Rolled(period, SalesDayBuyer)


def by_supply(period: Period) -> Rolled:
    return Rolled(period, SalesDaySupply)


def per_product(period: Period):
    """The period's units and gross per product id, summed first on the rollup's own key (then joined)."""
    r = by_supply(period)
    return (r.base(r.t.product_id, _sum(r.units).label("units"), _sum(r.gross).label("gross"))
            .group_by(r.t.product_id).subquery("per_product"))


def _sum(expr):
    return func.coalesce(func.sum(expr), 0)


@dataclass
class Report:
    period: Period
    total_fen: int                         # gross sales: what buyers paid, less refunds
    by_channel: dict[str, int]
    by_organization: list[tuple[int, str, int]]
    by_category: list[tuple[str, str, int, int, int]]  # (category, unit, decimals, units, fen): one per unit
    by_month: list[tuple[str, int]]
    households: list[tuple]               # (id, code, name, status, members, income_fen): credited, net of fee
    households_total: int
    households_by_status: dict[str, int]  # how many of each status earned anything
    monitored_earned_fen: int
    staff: list[tuple[int, str, int, int, int]]  # (org id, org name, staff, buyers, spent)
    top_products: list[tuple[str, str, int, int, int]]  # (name, unit, decimals, units, fen)
    contract_months: int = 0  # months with contract deliveries accepted
    contracts: tuple = ()     # (number, company, units, value, cap) per contract
    fee_fen: int = 0          # the platform's service fee on those sales
    credited_fen: int = 0     # what households and enterprises were credited (gross − fee − borne)
    points_used: int = 0      # seasonal sales points with sales in the period
    point_households: int = 0  # households whose goods sold there

    @property
    def households_benefited(self) -> int:
        return len([h for h in self.households if h[5] > 0])

    @property
    def households_income_fen(self) -> int:
        return sum(h[5] for h in self.households)

    def share(self, part: int) -> str:
        return f"{part * 100 / self.total_fen:.1f}%" if self.total_fen else "—"  # display only, never money


def table(name: str, period: Period):
    """(column titles, query) of one report table: the page and the exports share these."""
    return TABLES[name](period)


def _channels(period: Period):
    r = by_buyer(period)
    return ((_("渠道"), "channel"), (_("金额（元）"), "fen")), r.base(r.t.channel, _sum(r.gross)).group_by(r.t.channel)


def _organizations(period: Period):
    r = by_buyer(period)
    query = (r.base(Organization.id, Organization.name, _sum(r.gross))
             .join(Organization, Organization.id == r.t.organization_id)
             .group_by(Organization.id, Organization.name).order_by(_sum(r.gross).desc()))
    return ((_("单位编号"), "int"), (_("购买单位"), "text"), (_("金额（元）"), "fen")), query


def _categories(period: Period):
    """Per category and unit of measure: quantities are added up within one unit, never across units."""
    p = per_product(period)
    query = (select(Product.category, Product.unit, Product.quantity_decimals, _sum(p.c.units), _sum(p.c.gross))
             .join(p, p.c.product_id == Product.id)
             .group_by(Product.category, Product.unit, Product.quantity_decimals).order_by(_sum(p.c.gross).desc()))
    return ((_("品类"), "category"), (_("单位"), "text"), (None, "decimals"), (_("数量"), "quantity"),
            (_("金额（元）"), "fen")), query


def _months(period: Period):
    r = by_buyer(period)
    return ((_("月份"), "text"), (_("金额（元）"), "fen")), (r.base(r.month, _sum(r.gross)).group_by(r.month)
                                                           .order_by(r.month))


def _households(period: Period):
    r = by_supply(period)
    earned = (r.base(r.t.household_id, _sum(r.credited).label("credited")).where(r.t.household_id != 0)
              .group_by(r.t.household_id).having(_sum(r.credited) != 0).subquery())
    query = (select(Household.id, Household.code, Household.head_name, Household.status, Household.members,
                    earned.c.credited).join(earned, earned.c.household_id == Household.id)
             .order_by(earned.c.credited.desc(), Household.code))
    return ((_("编号"), "int"), (_("户编号"), "text"), (_("户主"), "text"), (_("属性"), "household_status"),
            (_("人口"), "int"), (_("收入（元）"), "fen")), query


def _products(period: Period):
    p = per_product(period)
    query = (select(Product.name, Product.unit, Product.quantity_decimals, _sum(p.c.units), _sum(p.c.gross))
             .join(p, p.c.product_id == Product.id)
             .group_by(Product.name, Product.unit, Product.quantity_decimals).order_by(_sum(p.c.gross).desc()))
    return ((_("商品"), "text"), (_("单位"), "text"), (None, "decimals"), (_("数量"), "quantity"),
            (_("金额（元）"), "fen")), query


def _staff(period: Period):
    """Per government unit: its staff, how many of them bought, and what they spent."""
    r = by_buyer(period)
    staff_counts = select(User.organization_id, func.count(User.id).label("staff")).where(
        User.role == "staff", User.active.is_(True)).group_by(User.organization_id).subquery()
    bought = (r.base(r.t.organization_id.label("org"), func.count(distinct(r.t.buyer_id)).label("buyers"),
                     _sum(r.gross).label("spent"))
              .where(r.t.channel == "retail").group_by(r.t.organization_id).subquery())
    query = (select(Organization.id, Organization.name, func.coalesce(staff_counts.c.staff, 0),
                    func.coalesce(bought.c.buyers, 0), func.coalesce(bought.c.spent, 0))
             .outerjoin(staff_counts, staff_counts.c.organization_id == Organization.id)
             .outerjoin(bought, bought.c.org == Organization.id)
             .where(Organization.kind == "government").order_by(Organization.name))
    if period.organization_id is not None:
        query = query.where(Organization.id == period.organization_id)
    return ((_("单位编号"), "int"), (_("单位"), "text"), (_("职工数"), "int"), (_("参与人数"), "int"),
            (_("金额（元）"), "fen")), query


def _no_sales(period: Period):
    """Households that sold nothing in the period: the ones who still need help."""
    r = by_supply(period)
    sold = r.base(r.t.household_id).where(r.t.household_id != 0, r.t.sales > 0)
    query = (select(Household.code, Household.head_name, Household.status, Household.members)
             .where(Household.id.not_in(sold)).order_by(Household.status.desc(), Household.code))
    return ((_("户编号"), "text"), (_("户主"), "text"), (_("属性"), "household_status"), (_("人口"), "int")), query


def _contracts(period: Period):
    """Each contract's fulfilment in the period: units and value accepted, against its cap."""
    r = by_buyer(period)
    accepted = (r.base(r.t.contract_id.label("contract_id"), _sum(r.units).label("units"),
                       _sum(r.gross).label("value")).where(r.t.contract_id != 0)
                .group_by(r.t.contract_id).subquery())
    query = (select(Contract.number, Organization.name, Product.unit, Product.quantity_decimals,
                    func.coalesce(accepted.c.units, 0), func.coalesce(accepted.c.value, 0), Contract.cap_fen)
             .join(Organization, Organization.id == Contract.organization_id)
             .join(Product, Product.id == Contract.product_id)
             .outerjoin(accepted, accepted.c.contract_id == Contract.id).order_by(Contract.number))
    if period.organization_id is not None:
        query = query.where(Contract.organization_id == period.organization_id)
    return ((_("合同编号"), "text"), (_("采购企业"), "text"), (_("单位"), "text"), (None, "decimals"),
            (_("验收数量"), "quantity"), (_("验收金额（元）"), "fen"), (_("合同总额（元）"), "fen")), query


def _lines(period: Period):
    """销售明细: every sale and refund of the period, one row per order line and supplying lot — which
    household's goods, bought by whom, for how much, and what the household was credited. The evidence
    behind every other figure; large, so exported only."""
    s = Sales(period)
    query = (s.base(local_date(s.at), order_number(Order.placed_at, Order.id), Order.channel, Organization.name,
                    Product.name, Product.unit, Product.quantity_decimals, s.units,
                    OrderLine.unit_price_fen, s.gross, s.fee, s.credited, Household.code, Enterprise.name)
             .join(Product, Product.id == OrderLine.product_id)
             .outerjoin(Organization, Organization.id == Order.organization_id)
             .outerjoin(Household, Household.id == Allocation.household_id)
             .outerjoin(Enterprise, Enterprise.id == Allocation.enterprise_id)
             .order_by(s.at, Order.id, Allocation.id))
    return ((_("日期"), "text"), (_("订单号"), "text"), (_("渠道"), "channel"), (_("购买单位"), "text"),
            (_("商品"), "text"), (_("单位"), "text"), (None, "decimals"), (_("数量"), "quantity"), (_("单价（元）"), "fen"),
            (_("金额（元）"), "fen"), (_("服务费（元）"), "fen"), (_("供货方实得（元）"), "fen"),
            (_("供货农户户编号"), "text"), (_("供货村企"), "text")), query


TABLES = {"channels": _channels, "organizations": _organizations, "categories": _categories, "months": _months,
          "households": _households, "products": _products, "staff": _staff, "no_sales": _no_sales,
          "contracts": _contracts, "lines": _lines}


def _plain(value):
    """SQL sums come back as Decimal on PostgreSQL: whole numbers of fen or units, as int."""
    return int(value) if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else value


def rows(name: str, period: Period) -> list[tuple]:
    """A table's rows as stored: codes and fen (what the pages render)."""
    return [tuple(_plain(v) for v in row) for row in db.session.execute(table(name, period)[1]).all()]


@dataclass(frozen=True)
class Export:
    """One report table ready to write: its header, its query, and how each raw row becomes cells — codes in
    words, fen as yuan with two decimals (exact Decimals), a weighed quantity as its weight (12.3, from 123
    tenths and the row's "decimals" column, which is not written). Everything is resolved up front, so the
    rows can be formatted while they stream, after the request's context is gone."""

    header: list[str]
    query: object
    kinds: tuple[str, ...]
    names: dict[str, dict[str, str]]

    def cells(self, row) -> list:
        scale = next((10 ** int(value or 0) for kind, value in zip(self.kinds, row) if kind == "decimals"), 1)
        return [quantity_number(value, Measure("", scale)) if kind == "quantity" and value is not None
                else self._cell(kind, value) for kind, value in zip(self.kinds, row) if kind != "decimals"]

    def rows(self, rows_iter):
        for row in rows_iter:
            yield self.cells(row)

    def _cell(self, kind: str, value):
        if value is None:
            return None
        if kind == "fen":
            return yuan_decimal(int(value))
        if kind == "int":
            return int(value)
        if kind in self.names:
            return self.names[kind].get(value, value)
        return value


def export(name: str, period: Period) -> Export:
    columns, query = table(name, period)
    kinds = tuple(kind for _title, kind in columns)
    names = {kind: glossary_names(kind) for kind in set(kinds) if kind in ("channel", "category", "household_status")}
    return Export([str(title) for title, kind in columns if kind != "decimals"], query, kinds, names)


def _totals(period: Period) -> tuple[int, int, int]:
    r = by_buyer(period)
    gross, fee, credited = db.session.execute(r.base(_sum(r.gross), _sum(r.fee), _sum(r.credited))).one()
    return int(gross), int(fee), int(credited)


def build(period: Period, today: date, *, for_summary: bool = False) -> Report:
    """The report of a period. `for_summary`: only what the year's summary sentences say — the buying units',
    months', products' and contracts' tables are left empty (the report page and the exports have them)."""
    total, fee, credited = _totals(period)
    by_channel = {channel: 0 for channel in ("retail", "standing", "bulk", "point")}
    by_channel.update(dict(rows("channels", period)))
    households = rows("households", period)
    by_status: dict[str, int] = {}
    monitored = 0
    for _id, _code, _name, status, _members, earned in households:
        if earned > 0:
            by_status[status] = by_status.get(status, 0) + 1
        if status == "monitored":
            monitored += earned
    buyers, supply = by_buyer(period), by_supply(period)
    contract_months = db.session.scalar(buyers.base(func.count(distinct(buyers.month)))
                                        .where(buyers.t.channel == "standing", buyers.t.sales > 0))
    point_households = db.session.scalar(supply.base(func.count(distinct(supply.t.household_id)))
                                         .where(supply.t.channel == "point", supply.t.sales > 0,
                                                supply.t.household_id != 0))
    points_used, _sales = points.sales_in(period.start, period.end)

    def table(name: str) -> list:
        return [] if for_summary else rows(name, period)

    return Report(period, total, by_channel, table("organizations"), rows("categories", period), table("months"),
                  households, db.session.scalar(select(func.count(Household.id))), by_status, monitored,
                  rows("staff", period), table("products")[:10], int(contract_months), tuple(table("contracts")), fee,
                  credited, points_used, int(point_households or 0))


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
    r = by_buyer(Period.year(year))
    spent = dict(db.session.execute(r.base(r.t.organization_id, _sum(r.gross)).group_by(r.t.organization_id)).all())
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
    spent_fen: int                 # this calendar year
    to_my_households_fen: int      # … of which from my own paired households
    twelve_months_fen: int = 0     # the last twelve months
    twelve_months_mine_fen: int = 0


def staff_home(user: User, today: date) -> StaffHome:
    households = list(db.session.scalars(select(Household).join(Pairing).where(Pairing.user_id == user.id)
                                         .order_by(Household.code)))
    stock: dict[int, list[tuple[Product, int]]] = {h.id: [] for h in households}
    if households:
        rows = db.session.execute(
            select(Lot.household_id, Product, func.sum(Lot.remaining)).join(Product, Product.id == Lot.product_id)
            .where(Lot.household_id.in_([h.id for h in households]), Lot.remaining > 0, Product.active.is_(True),
                   Lot.sales_point_id.is_(None),  # what a staff member can put in the cart
                   or_(Lot.best_before.is_(None), Lot.best_before >= today))
            .group_by(Lot.household_id, Product.id).order_by(Product.name)).all()
        for household_id, product, quantity in rows:
            if product.in_season(today):
                stock[household_id].append((product, int(quantity)))
    paired = select(Pairing.household_id).where(Pairing.user_id == user.id)

    def spent(period: Period) -> tuple[int, int]:
        buyers, s = by_buyer(period), Sales(period)
        mine = buyers.base(_sum(buyers.gross)).where(buyers.t.buyer_id == user.id)
        to_mine = s.base(_sum(s.gross)).where(Order.buyer_id == user.id, Allocation.household_id.in_(paired))
        return int(db.session.scalar(mine)), int(db.session.scalar(to_mine))

    this_year, recent = spent(Period.year(today.year)), spent(Period(*twelve_months(today)))
    return StaffHome(households, stock, *this_year, *recent)


# --- the year's summary ------------------------------------------------------------------------------------

def wan(fen: int) -> str:
    """4,470,000 fen (¥44,700) → '4.47' 万元: two decimals, rounded half up, integer arithmetic only."""
    hundredths = (abs(fen) + 5_000) // 10_000  # one hundredth of 万元 is 10,000 fen
    return f"{'-' if fen < 0 else ''}{hundredths // 100}.{hundredths % 100:02d}"


def amount_words(fen: int) -> str:
    """How a work summary writes money: 4.47万元 from ¥10,000 on, 1,654.00元 below. In English, where 万 is no
    unit, the same rounding in yuan: ¥44,700 (and ¥1,654.00 below ¥10,000)."""
    if abs(fen) >= 1_000_000:
        if str(get_locale()) != "zh":
            hundreds = (abs(fen) + 5_000) // 10_000  # the 万元 figure's last digit: hundreds of yuan
            return f"{'-' if fen < 0 else ''}¥{hundreds * 100:,}"
        return _("%(w)s万元", w=wan(fen))
    if str(get_locale()) != "zh":
        return format_fen(fen)
    return _("%(y)s元", y=format_fen(fen).replace("¥", ""))


def _channel_clause(report: Report) -> str:
    """其中职工消费…、环卫公司合同采购… — the channels that sold anything; none, no clause."""
    names = {"retail": _("职工消费"), "standing": _("环卫公司合同采购"), "bulk": _("企业批量采购"),
             "point": _("临时销售点销售")}
    parts = [_("%(what)s%(amount)s", what=names[code], amount=amount_words(report.by_channel[code]))
             for code in ("retail", "standing", "bulk", "point") if report.by_channel.get(code)]
    return _("，其中%(parts)s", parts=_("、").join(parts)) if parts else ""


def summary_sentences(report: Report) -> list[str]:
    """The figures a 帮扶工作总结 needs, as ready sentences. Household income is what the ledger credited,
    net of the platform's service fee."""
    alleviated = [h for h in report.households if h[3] == "alleviated" and h[5] > 0]
    monitored = [h for h in report.households if h[3] == "monitored" and h[5] > 0]
    alleviated_total = sum(h[5] for h in alleviated)
    people = sum(h[4] for h in alleviated)
    money = amount_words
    sentences = [_("全年直接消费帮扶采购共计%(w)s%(parts)s。", w=money(report.total_fen), parts=_channel_clause(report))]
    if report.fee_fen:
        sentences.append(_("扣除平台服务费%(f)s后，农户和村企实得%(c)s。", f=money(report.fee_fen),
                           c=money(report.credited_fen)))
    if alleviated:
        sentences.append(_("带动脱贫户%(n)d户增收%(w)s，户均增收%(a)s，人均增收%(p)s。", n=len(alleviated),
                           w=money(alleviated_total), a=money(alleviated_total // len(alleviated)),
                           p=money(alleviated_total // people) if people else "—"))
    if monitored:
        sentences.append(_("监测户%(n)d户通过消费帮扶增收%(w)s。", n=len(monitored), w=money(report.monitored_earned_fen)))
    sentences.append(_("共有%(n)d户农户有销售收入，占全部%(t)d户的%(s)s。", n=report.households_benefited,
                       t=report.households_total,
                       s=f"{report.households_benefited * 100 // report.households_total}%"
                       if report.households_total else "—"))
    if report.by_channel.get("point"):
        sentences.append(_("设置西瓜临时销售点%(n)d处，销售%(w)s，带动%(h)d户增收。", n=report.points_used,
                           w=money(report.by_channel["point"]), h=report.point_households))
    brooms = next(((q, v) for c, _unit, _decimals, q, v in report.by_category if c == "brooms"), None)
    if brooms and brooms[1]:
        sentences.append(_("环卫公司定点采购扫帚%(q)d把，月均%(m)d把，订单额%(w)s。", q=brooms[0],
                           m=brooms[0] // max(1, report.contract_months), w=money(brooms[1])))
    for _id, name, staff, buyers, spent in report.staff:
        if staff and buyers:
            sentences.append(_("%(o)s%(s)d名干部职工中有%(b)d人参与消费帮扶，采购%(w)s。", o=name, s=staff, b=buyers,
                               w=money(spent)))
    return sentences


# --- verification -------------------------------------------------------------------------------------------

def _ledger_credits(period: Period) -> tuple[int, dict[int, int]]:
    """What the ledger itself says suppliers were credited in a period (sales less refunds), in total and
    per household — the ledger's incomes, counted from the accounts' entries, not through the report's movements."""
    lo, hi = period.bounds
    total = db.session.scalar(
        select(func.coalesce(func.sum(-Entry.amount_fen), 0)).select_from(Entry).join(JournalTransaction)
        .join(Account, Account.id == Entry.account_id)
        .where(Account.kind.in_(SUPPLIER_KINDS), JournalTransaction.kind.in_(("sale", "refund")),
               Entry.created_at >= lo, Entry.created_at < hi))
    households = {h: income.income_fen for h, income in ledger.incomes(None, period.start, period.end).items()
                  if income.income_fen}
    return int(total), households


def verify(years: list[int] | None = None) -> list[str]:
    """For each year with sales: the report's household incomes and its total credited equal the ledger's
    credits for that year, to the fen; its gross sales less the fee (and less refunds the platform bore) are
    what suppliers were credited; its months add up to its total."""
    if years is None:
        year = func.substr(local_date(JournalTransaction.created_at), 1, 4)
        years = sorted(int(y) for y in db.session.scalars(
            select(year).distinct().where(JournalTransaction.kind.in_(("sale", "refund")))))
    problems = []
    for year in years:
        period = Period.year(year)
        report = build(period, clock.today())
        total, households = _ledger_credits(period)
        reported = {h[0]: h[5] for h in report.households}
        if reported != households:
            wrong = sorted(set(reported.items()) ^ set(households.items()))[:5]
            problems.append(f"{year}: household incomes in the report differ from the ledger's credits: {wrong}")
        if report.credited_fen != total:
            problems.append(f"{year}: the report says suppliers were credited {report.credited_fen} fen, "
                            f"the ledger {total} fen")
        if sum(fen for _m, fen in report.by_month) != report.total_fen:
            problems.append(f"{year}: the months add up to {sum(f for _m, f in report.by_month)} fen, "
                            f"the total is {report.total_fen} fen")
        fees = _ledger_fees(period)
        if report.fee_fen != fees:
            problems.append(f"{year}: the report's service fees are {report.fee_fen} fen, the ledger's {fees} fen")
    return problems


def _ledger_fees(period: Period) -> int:
    lo, hi = period.bounds
    return int(db.session.scalar(
        select(func.coalesce(func.sum(-Entry.amount_fen), 0)).join(Account, Account.id == Entry.account_id)
        .join(JournalTransaction).where(Account.code == "fee_income", JournalTransaction.kind.in_(("sale", "refund")),
                                        Entry.created_at >= lo, Entry.created_at < hi)))


# --- the service point's day ------------------------------------------------------------------------------

@dataclass
class ManagerToday:
    """What the service point has to do today, each with how many and the first few."""

    to_pack: int
    to_hand_over: int
    to_confirm: list[Order]       # company bulk orders waiting for a yes or no
    to_deliver: int               # company orders confirmed, not yet delivered
    awaiting_payment: int
    holds_ending: list[Order]     # unpaid orders whose hold ends within the next day
    expiring: list[Lot]           # lots near their best-before
    refused: list[Order]          # units refused at acceptance, not yet restocked or written off
    open_backorders: int
    flagged: int
    sold_today_fen: int
    point_flagged: int = 0        # sales point sales kept for the manager to check


def manager_today(now, within_days: int) -> ManagerToday:
    today = clock.local_day(now)
    queue = contracts.service_point_queue()
    count = lambda condition: db.session.scalar(select(func.count(Order.id)).where(condition))  # noqa: E731
    holds = list(db.session.scalars(
        select(Order).where(Order.status == "pending_payment", Order.reserved_until.is_not(None),
                            Order.reserved_until <= now + timedelta(days=1))
        .options(selectinload(Order.buyer)).order_by(Order.reserved_until).limit(20)))
    since, until = clock.day_bounds(today, today)
    sold = db.session.scalar(select(func.coalesce(func.sum(Order.total_fen), 0))
                             .where(Order.paid_at >= since, Order.paid_at < until))
    return ManagerToday(
        to_pack=count(Order.status == "paid"), to_hand_over=count(Order.status == "packed"),
        to_confirm=queue.by_status.get("requested", []), to_deliver=len(queue.by_status.get("confirmed", [])),
        awaiting_payment=count(Order.status == "pending_payment"), holds_ending=holds,
        expiring=inventory.expiring_lots(within_days, today)[:20], refused=queue.rejected,
        open_backorders=len(queue.backorders), flagged=count(Order.review_reason.is_not(None)),
        sold_today_fen=int(sold or 0), point_flagged=points.flagged_count())


# --- what each household earns: its own page, its staff member's, the watch list ------------------------------

def last_sales(household_ids) -> dict[int, datetime | None]:
    ids = list(household_ids)
    found: dict[int, datetime | None] = {h: None for h in ids}
    if ids:
        found.update(dict(db.session.execute(
            select(Account.household_id, func.max(Entry.created_at)).select_from(Entry).join(JournalTransaction)
            .join(Account, Account.id == Entry.account_id)
            .where(Account.household_id.in_(ids), JournalTransaction.kind == "sale")
            .group_by(Account.household_id)).all()))
    return found


def stock_on_hand(household_ids, today: date) -> dict[int, list[tuple[str, Measure, int]]]:
    """(product, its measure, units) in stock now, per household."""
    ids = list(household_ids)
    found: dict[int, list] = {h: [] for h in ids}
    if ids:
        for household_id, name, unit, decimals, units in db.session.execute(
                select(Lot.household_id, Product.name, Product.unit, Product.quantity_decimals, func.sum(Lot.remaining))
                .join(Product, Product.id == Lot.product_id)
                .where(Lot.household_id.in_(ids), Lot.remaining > 0,
                       or_(Lot.best_before.is_(None), Lot.best_before >= today))
                .group_by(Lot.household_id, Product.name, Product.unit, Product.quantity_decimals)
                .order_by(Product.name)).all():
            found[household_id].append((name, Measure(unit, 10 ** (decimals or 0)), int(units)))
    return found


def monthly_incomes(household_ids, months: int, today: date) -> dict[int, list[tuple[str, int]]]:
    """Each household's income per month, the last `months` months up to this one (zeros included), for all the
    households in one query."""
    ids = list(household_ids)
    last = clock.month_of(today)
    names = [clock.month_after(last, -n) for n in range(months - 1, -1, -1)]
    found = ledger.monthly_incomes(ids, clock.month_start(names[0]), today)
    return {h: [(name, found[h][name].income_fen if name in found[h] else 0) for name in names] for h in ids}


def twelve_months(today: date) -> tuple[date, date]:
    """The last twelve months up to today: what the watch list looks at, so it means the same in January as in
    December."""
    try:
        start = today.replace(year=today.year - 1) + timedelta(days=1)
    except ValueError:  # 29 February
        start = today.replace(year=today.year - 1, day=28) + timedelta(days=1)
    return start, today


def period_presets(today: date) -> list[tuple[str, date, date]]:
    """The report's quick choices: the last twelve months (its default), this year, last year."""
    return [(_("近 12 个月"), *twelve_months(today)), (_("今年"), date(today.year, 1, 1), today),
            (_("%(y)d 年", y=today.year - 1), *clock.year_bounds(today.year - 1))]


def twelve_months_before(today: date) -> tuple[date, date]:
    start, _end = twelve_months(today)
    earlier, _ = twelve_months(start - timedelta(days=1))
    return earlier, start - timedelta(days=1)


@dataclass
class HouseholdFigures:
    household: Household
    this_year_fen: int
    last_year_fen: int            # the whole of last year
    twelve_months_fen: int        # the last twelve months up to today
    twelve_months_before_fen: int  # the twelve months before those
    last_sale: datetime | None
    stock: list[tuple[str, Measure, int]]
    staff: list[User]
    reasons: list[str] = field(default_factory=list)   # why it is on the watch list
    notes: list = field(default_factory=list)

    @property
    def stock_text(self) -> str:
        """What it has in stock now, as people read it: "散养土鸡蛋 120 枚、沙地西瓜 1,234.5 斤"."""
        return "、".join(f"{name} {format_quantity(units, measure)}" for name, measure, units in self.stock)

    @property
    def per_person_fen(self) -> int:
        return self.this_year_fen // max(self.household.members, 1)

    @property
    def twelve_months_per_person_fen(self) -> int:
        return self.twelve_months_fen // max(self.household.members, 1)

    @property
    def last_year_per_person_fen(self) -> int:
        return self.last_year_fen // max(self.household.members, 1)


def _incomes(ids: list[int], start: date, end: date) -> dict[int, int]:
    return {h: income.income_fen for h, income in ledger.incomes(ids, start, end).items()}


def household_figures(households: list[Household], today: date) -> list[HouseholdFigures]:
    ids = [h.id for h in households]
    this_year = _incomes(ids, date(today.year, 1, 1), today)
    last_year = _incomes(ids, *clock.year_bounds(today.year - 1))
    recent = _incomes(ids, *twelve_months(today))
    before = _incomes(ids, *twelve_months_before(today))
    last = last_sales(ids)
    stock = stock_on_hand(ids, today)
    staff: dict[int, list[User]] = {h: [] for h in ids}
    if ids:
        for household_id, user in db.session.execute(select(Pairing.household_id, User).join(User)
                                                      .where(Pairing.household_id.in_(ids)).order_by(User.display_name)):
            staff[household_id].append(user)
    return [HouseholdFigures(h, this_year[h.id], last_year[h.id], recent[h.id], before[h.id], last[h.id], stock[h.id],
                             staff[h.id]) for h in households]


@dataclass(frozen=True)
class WatchRules:
    income_line_fen: int   # per person in the last twelve months: below it, on the list
    drop_percent: int      # fallen by more than this against the twelve months before
    idle_days: int         # no sale for this many days


def watch_list(today: date, rules: WatchRules, *, user: User | None = None) -> list[HouseholdFigures]:
    """防止返贫: monitored and alleviated households whose shop income per person in the last twelve months is
    below the line, has fallen by more than the set share against the twelve months before, or that have not
    sold for `idle_days` — with why, their staff, last sale and stock. `user`: only theirs. A rolling twelve
    months, not the calendar year so far: the list means the same on 3 January as on 3 December."""
    query = select(Household).where(Household.status.in_(("alleviated", "monitored"))).order_by(Household.code)
    if user is not None:
        query = query.where(Household.id.in_(select(Pairing.household_id).where(Pairing.user_id == user.id)))
    households = list(db.session.scalars(query))
    idle_since = clock.day_start(today - timedelta(days=rules.idle_days))
    watched = []
    for figures in household_figures(households, today):
        if figures.twelve_months_per_person_fen < rules.income_line_fen:
            figures.reasons.append(_("近 12 个月人均收入 %(a)s，低于监测线 %(b)s",
                                     a=format_fen(figures.twelve_months_per_person_fen), b=format_fen(rules.income_line_fen)))
        before, now = figures.twelve_months_before_fen, figures.twelve_months_fen
        if before > 0 and (before - now) * 100 > before * rules.drop_percent:
            figures.reasons.append(_("比再往前 12 个月少 %(p)d%%", p=(before - now) * 100 // before))
        if figures.last_sale is None or figures.last_sale < idle_since:
            figures.reasons.append(_("%(d)d 天没有销售", d=rules.idle_days) if figures.last_sale
                                   else _("还没有销售"))
        if figures.reasons:
            watched.append(figures)
    return watched


@dataclass
class HouseholdPage:
    """What a household reads on its own page."""

    household: Household
    year: int
    income_fen: int
    statement: object       # ledger.Statement of this year
    owed_fen: int
    next_payout: date


def next_payout_day(today: date, every_months: int, day: int) -> date:
    """Payouts are made on `day` of every `every_months`-th month (the last month of each quarter by default)."""
    month = today.month
    while True:
        if month % every_months == 0:
            candidate = date(today.year + (month - 1) // 12, (month - 1) % 12 + 1, min(day, 28))
            if candidate >= today:
                return candidate
        month += 1


def household_page(household: Household, today: date, *, every_months: int, payout_day: int) -> HouseholdPage:
    account = ledger.find_account(household_id=household.id)
    statement = ledger.statement(account, date(today.year, 1, 1), today)
    income = ledger.incomes([household.id], date(today.year, 1, 1), today)[household.id].income_fen
    return HouseholdPage(household, today.year, income, statement, -ledger.kept_balance(account) if account else 0,
                         next_payout_day(today, every_months, payout_day))


def tell_watch_digests(today: date, rules: WatchRules) -> int:
    """Once a week, each staff member is told which of their own households are on the watch list, and why."""
    year, week, _day = today.isocalendar()
    staff = db.session.scalars(select(User).where(User.role == "staff", User.active.is_(True),
                                                  User.id.in_(select(Pairing.user_id))).order_by(User.id)).all()
    told = 0
    for user in staff:
        watched = watch_list(today, rules, user=user)
        if not watched:
            continue
        lines = "\n".join(f"{f.household.head_name}（{f.household.code}）：{'；'.join(f.reasons)}" for f in watched)
        told += notices.notify([user], "watch_digest", f"digest:{year}-W{week:02d}",
                               _("本周需要关注的包保户：%(n)d 户", n=len(watched)), lines, "/my", at=clock.now())
    return told

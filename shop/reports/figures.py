"""The consumption-assistance report, counted from what the ledger posted.

Every figure is an SQL aggregate over the ledger's sale and refund postings, one row per allocation
(which household's or enterprise's units, sold to whom), dated when the ledger dated it — a sale when it
was paid (or accepted, for company orders), a refund when it was made. So each household's income in a
report is exactly what its ledger account was credited for the same period, net of the service fee, and
the gross sales, the platform's fee and what suppliers were credited add up to the fen. The number of
queries does not grow with the number of orders.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import case, distinct, func, select

from .. import clock, edge
from ..accounts.models import Organization, User
from ..catalog.models import Product
from ..contracts.models import Contract
from ..errors import ValidationFailed
from ..extensions import db
from ..formatting import Measure, quantity_number, yuan_decimal
from ..glossary import names as glossary_names
from ..ledger import services as ledger
from ..ledger import rollups
from ..ledger.models import SUPPLIER_KINDS, Account, Entry, JournalTransaction, SalesDayBuyer, SalesDaySupply
from ..orders.models import Allocation, Order, OrderLine, Refund
from ..points import services as points
from ..producers.models import Enterprise, Household, Village
from ..orders.models import order_number_sql
from ..sqltime import date_month, local_date
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
        lo, hi = clock.parse_period(start, end, *clock.twelve_months(today))
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
    return (r.base(r.t.product_id, summed(r.units).label("units"), summed(r.gross).label("gross"))
            .group_by(r.t.product_id).subquery("per_product"))


def summed(expr):
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
    villages: tuple = ()      # (name, households, benefited, sold, credited) per village, most sold first
    units_buying: int = 0     # buying units (government units and companies) that bought anything

    @property
    def households_benefited(self) -> int:
        return len([h for h in self.households if h[5] > 0])

    def share(self, part: int) -> str:
        return f"{part * 100 / self.total_fen:.1f}%" if self.total_fen else "—"  # display only, never money


def table(name: str, period: Period):
    """(column titles, query) of one report table: the page and the exports share these."""
    return TABLES[name](period)


def _channels(period: Period):
    r = by_buyer(period)
    return ((_("渠道"), "channel"), (_("金额（元）"), "fen")), r.base(r.t.channel, summed(r.gross)).group_by(r.t.channel)


def _organizations(period: Period):
    r = by_buyer(period)
    query = (r.base(Organization.id, Organization.name, summed(r.gross))
             .join(Organization, Organization.id == r.t.organization_id)
             .group_by(Organization.id, Organization.name).order_by(summed(r.gross).desc()))
    return ((_("单位编号"), "int"), (_("购买单位"), "text"), (_("金额（元）"), "fen")), query


def _categories(period: Period):
    """Per category and unit of measure: quantities are added up within one unit, never across units."""
    p = per_product(period)
    query = (select(Product.category, Product.unit, Product.quantity_decimals, summed(p.c.units), summed(p.c.gross))
             .join(p, p.c.product_id == Product.id)
             .group_by(Product.category, Product.unit, Product.quantity_decimals).order_by(summed(p.c.gross).desc()))
    return ((_("品类"), "category"), (_("单位"), "text"), (None, "decimals"), (_("数量"), "quantity"),
            (_("金额（元）"), "fen")), query


def _months(period: Period):
    r = by_buyer(period)
    return ((_("月份"), "text"), (_("金额（元）"), "fen")), (r.base(r.month, summed(r.gross)).group_by(r.month)
                                                           .order_by(r.month))


def _households(period: Period):
    r = by_supply(period)
    earned = (r.base(r.t.household_id, summed(r.credited).label("credited")).where(r.t.household_id != 0)
              .group_by(r.t.household_id).having(summed(r.credited) != 0).subquery())
    query = (select(Household.id, Household.code, Household.head_name, Household.status, Household.members,
                    earned.c.credited).join(earned, earned.c.household_id == Household.id)
             .order_by(earned.c.credited.desc(), Household.code))
    return ((_("编号"), "int"), (_("户编号"), "text"), (_("户主"), "text"), (_("属性"), "household_status"),
            (_("人口"), "int"), (_("收入（元）"), "fen")), query


def _products(period: Period):
    p = per_product(period)
    query = (select(Product.name, Product.unit, Product.quantity_decimals, summed(p.c.units), summed(p.c.gross))
             .join(p, p.c.product_id == Product.id)
             .group_by(Product.name, Product.unit, Product.quantity_decimals).order_by(summed(p.c.gross).desc()))
    return ((_("商品"), "text"), (_("单位"), "text"), (None, "decimals"), (_("数量"), "quantity"),
            (_("金额（元）"), "fen")), query


def _staff(period: Period):
    """Per government unit: its staff, how many of them bought, and what they spent."""
    r = by_buyer(period)
    staff_counts = select(User.organization_id, func.count(User.id).label("staff")).where(
        User.role == "staff", User.active.is_(True)).group_by(User.organization_id).subquery()
    bought = (r.base(r.t.organization_id.label("org"), func.count(distinct(r.t.buyer_id)).label("buyers"),
                     summed(r.gross).label("spent"))
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


def _villages(period: Period):
    """Per village: what its service point sold, what its households and enterprises were credited, and how
    many of its households earned anything — the county's view of where the buying went."""
    r = by_supply(period)
    sold = (r.base(Product.village_id.label("village_id"), summed(r.gross).label("gross"),
                   summed(r.credited).label("credited"))
            .join(Product, Product.id == r.t.product_id).group_by(Product.village_id).subquery())
    earned = (r.base(r.t.household_id).where(r.t.household_id != 0).group_by(r.t.household_id)
              .having(summed(r.credited) > 0))
    households = (select(Household.village_id, func.count(Household.id).label("households"),
                         func.count(case((Household.id.in_(earned), 1))).label("benefited"))
                  .group_by(Household.village_id).subquery())
    query = (select(Village.name, func.coalesce(households.c.households, 0), func.coalesce(households.c.benefited, 0),
                    func.coalesce(sold.c.gross, 0), func.coalesce(sold.c.credited, 0))
             .outerjoin(households, households.c.village_id == Village.id)
             .outerjoin(sold, sold.c.village_id == Village.id)
             .order_by(func.coalesce(sold.c.gross, 0).desc(), Village.name))
    return ((_("村"), "text"), (_("农户数"), "int"), (_("增收农户"), "int"), (_("服务点销售额（元）"), "fen"),
            (_("农户和村企实得（元）"), "fen")), query


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
    accepted = (r.base(r.t.contract_id.label("contract_id"), summed(r.units).label("units"),
                       summed(r.gross).label("value")).where(r.t.contract_id != 0)
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
    query = (s.base(local_date(s.at), order_number_sql(Order.placed_at, Order.id), Order.channel, Organization.name,
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
          "households": _households, "villages": _villages, "products": _products, "staff": _staff,
          "no_sales": _no_sales,
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
    gross, fee, credited = db.session.execute(r.base(summed(r.gross), summed(r.fee), summed(r.credited))).one()
    return int(gross), int(fee), int(credited)


def _by_product(period: Period) -> list[tuple]:
    """Each product sold in the period — category, unit, decimals, village — with its units, gross and credited:
    one pass over the supply rollup, from which `build` sums the categories' and the villages' rows."""
    r = by_supply(period)
    p = (r.base(r.t.product_id, summed(r.units).label("units"), summed(r.gross).label("gross"),
                summed(r.credited).label("credited")).group_by(r.t.product_id).subquery())
    return [tuple(_plain(v) for v in row) for row in db.session.execute(
        select(Product.category, Product.unit, Product.quantity_decimals, Product.village_id, p.c.units, p.c.gross,
               p.c.credited).join(p, p.c.product_id == Product.id)).all()]


def _categories_of(products: list[tuple]) -> list[tuple]:
    """The `categories` table's rows (`_categories`), summed from `_by_product`."""
    sums: dict[tuple, list[int]] = {}
    for category, unit, decimals, _village, units, gross, _credited in products:
        total = sums.setdefault((category, unit, decimals), [0, 0])
        total[0] += units
        total[1] += gross
    return sorted((key + tuple(total) for key, total in sums.items()), key=lambda row: -row[4])


def _villages_of(products: list[tuple], households: list[tuple]) -> tuple:
    """The `villages` table's rows (`_villages`), from `_by_product` and the households' incomes already read:
    each village's households (a count per village) and those that earned, what it sold and what was credited."""
    names = dict(db.session.execute(select(Village.id, Village.name)).all())
    village_of = dict(db.session.execute(select(Household.id, Household.village_id)).all())
    counted: dict[int, list[int]] = {v: [0, 0, 0, 0] for v in names}  # households, benefited, gross, credited
    for village_id in village_of.values():
        counted[village_id][0] += 1
    for household_id, *_rest, earned in households:
        if earned > 0:
            counted[village_of[household_id]][1] += 1
    for _category, _unit, _decimals, village_id, _units, gross, credited in products:
        counted[village_id][2] += gross
        counted[village_id][3] += credited
    rows = [(names[v], *figures) for v, figures in counted.items()]
    return tuple(sorted(rows, key=lambda row: (-row[3], row[0])))


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
    units_buying = db.session.scalar(select(func.count()).select_from(
        buyers.base(buyers.t.organization_id).where(buyers.t.organization_id != 0)
        .group_by(buyers.t.organization_id).having(summed(buyers.gross) > 0).subquery()))

    def table(name: str) -> list:
        return [] if for_summary else rows(name, period)

    products = _by_product(period)
    return Report(period, total, by_channel, table("organizations"), _categories_of(products), table("months"),
                  households, db.session.scalar(select(func.count(Household.id))), by_status, monitored,
                  rows("staff", period), table("products")[:10], int(contract_months), tuple(table("contracts")), fee,
                  credited, points_used, int(point_households or 0), _villages_of(products, households),
                  int(units_buying or 0))


def period_presets(today: date) -> list[tuple[str, date, date]]:
    """The report's quick choices: the last twelve months (its default), this year, last year."""
    return [(_("近 12 个月"), *clock.twelve_months(today)), (_("今年"), date(today.year, 1, 1), today),
            (_("%(y)d 年", y=today.year - 1), *clock.year_bounds(today.year - 1))]


# --- unit targets -----------------------------------------------------------------------------------------

@dataclass
class TargetProgress:
    organization: Organization
    year: int
    target_fen: int | None
    spent_fen: int
    forecast_fen: int
    welfare_fen: int = 0  # of what was spent, paid from the union's welfare grants (less what refunds gave back)

    @property
    def percent(self) -> int | None:
        return None if not self.target_fen else self.spent_fen * 100 // self.target_fen

    @property
    def private_fen(self) -> int:
        """What staff paid themselves (and the unit on account): the rest of what was spent."""
        return self.spent_fen - self.welfare_fen


def welfare_spent(year: int) -> dict[int, int]:
    """Each unit's buying paid from welfare grants in the year (local time): what orders paid that year drew on
    the grants, less what refunds made that year gave back to them."""
    start, end = clock.day_bounds(*clock.year_bounds(year))
    paid = dict(db.session.execute(
        select(Order.organization_id, func.sum(Order.welfare_fen))
        .where(Order.welfare_fen > 0, Order.paid_at >= start, Order.paid_at < end).group_by(Order.organization_id)).all())
    given = dict(db.session.execute(
        select(Order.organization_id, func.sum(Refund.welfare_fen)).join(Order, Order.id == Refund.order_id)
        .where(Refund.welfare_fen > 0, Refund.created_at >= start, Refund.created_at < end)
        .group_by(Order.organization_id)).all())
    return {org: int(paid.get(org, 0)) - int(given.get(org, 0)) for org in paid.keys() | given.keys()}


def targets(year: int, today: date) -> list[TargetProgress]:
    r = by_buyer(Period.year(year))
    spent = dict(db.session.execute(r.base(r.t.organization_id, summed(r.gross)).group_by(r.t.organization_id)).all())
    goals = dict(db.session.execute(select(OrganizationTarget.organization_id, OrganizationTarget.target_fen)
                                    .where(OrganizationTarget.year == year)).all())
    days = (date(year, 12, 31) - date(year, 1, 1)).days + 1
    elapsed = min(days, max(1, (today - date(year, 1, 1)).days + 1)) if today.year == year else (
        days if today.year > year else 0)
    welfare = welfare_spent(year)
    result = []
    for org in db.session.scalars(select(Organization).order_by(Organization.kind.desc(), Organization.name)):
        value = int(spent.get(org.id, 0))
        forecast = value * days // elapsed if elapsed else 0  # a straight line through the year so far
        result.append(TargetProgress(org, year, goals.get(org.id), value, forecast, welfare.get(org.id, 0)))
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

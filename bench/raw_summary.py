"""The year summary's figures aggregated straight from the ledger's raw movements, as the reports counted them
before the daily rollups: the baseline `summary_speedup_vs_raw` compares the summary page with. The same eight
aggregates — totals, channels, buying units, categories, months, households, products, staff — over the same
movements (`shop.ledger.rollups.movements`), so their figures equal the page's (the benchmark checks that)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import distinct, func, select

from shop.accounts.models import Organization, User
from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.models import Allocation, Order, OrderLine
from shop.producers.models import Household
from shop.reports.services import Period, Sales
from shop.sqltime import local_month


def _sum(expr):
    return func.coalesce(func.sum(expr), 0)


def queries(period: Period) -> dict[str, object]:
    s = Sales(period)
    month = local_month(s.at)
    staff = select(User.organization_id, func.count(User.id).label("staff")).where(
        User.role == "staff", User.active.is_(True)).group_by(User.organization_id).subquery()
    bought = (s.base(Order.organization_id.label("org"), func.count(distinct(Order.buyer_id)).label("buyers"),
                     _sum(s.gross).label("spent")).where(Order.channel == "retail")
              .group_by(Order.organization_id).subquery())
    return {
        "totals": s.base(_sum(s.gross), _sum(s.fee), _sum(s.credited)),
        "channels": s.base(Order.channel, _sum(s.gross)).group_by(Order.channel),
        "organizations": (s.base(Organization.id, Organization.name, _sum(s.gross))
                          .join(Organization, Organization.id == Order.organization_id)
                          .group_by(Organization.id, Organization.name).order_by(_sum(s.gross).desc())),
        "categories": (s.base(Product.category, Product.unit, Product.quantity_decimals, _sum(s.units),
                              _sum(s.gross))
                       .join(Product, Product.id == OrderLine.product_id)
                       .group_by(Product.category, Product.unit, Product.quantity_decimals)
                       .order_by(_sum(s.gross).desc())),
        "months": s.base(month, _sum(s.gross)).group_by(month).order_by(month),
        "households": (s.base(Household.id, _sum(s.credited)).join(Household, Household.id == Allocation.household_id)
                       .group_by(Household.id).having(_sum(s.credited) != 0)
                       .order_by(_sum(s.credited).desc(), Household.id)),
        "products": (s.base(Product.name, _sum(s.units), _sum(s.gross)).join(Product, Product.id == OrderLine.product_id)
                     .group_by(Product.name).order_by(_sum(s.gross).desc())),
        "staff": (select(Organization.id, func.coalesce(staff.c.staff, 0), func.coalesce(bought.c.buyers, 0),
                         func.coalesce(bought.c.spent, 0))
                  .outerjoin(staff, staff.c.organization_id == Organization.id)
                  .outerjoin(bought, bought.c.org == Organization.id)
                  .where(Organization.kind == "government").order_by(Organization.id)),
    }


def _plain(value):
    """Sums come back as Decimal on PostgreSQL: whole fen or units, as int."""
    return int(value) if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else value


def figures(period: Period) -> dict[str, list[tuple]]:
    """Each aggregate's rows, sums as ints."""
    return {name: [tuple(_plain(v) for v in row) for row in db.session.execute(query)]
            for name, query in queries(period).items()}


def agrees(period: Period, report) -> bool:
    """Whether the summary (read from the rollups) says what the raw movements say."""
    raw = figures(period)
    return (raw["totals"] == [(report.total_fen, report.fee_fen, report.credited_fen)]
            and dict(raw["channels"]) == {c: v for c, v in report.by_channel.items() if c in dict(raw["channels"])}
            and raw["months"] == [tuple(m) for m in report.by_month]
            and dict(raw["households"]) == {h[0]: h[5] for h in report.households}
            and sorted(raw["categories"]) == sorted(tuple(c) for c in report.by_category)
            and raw["staff"] == [(o, staff, buyers, spent) for o, _name, staff, buyers, spent in sorted(report.staff)])

"""What each household earns: its own page, the staff home (a staff member's paired households), and the
watch list (防止返贫) — households whose income from the shop is low, falling or idle — told to their staff
once a week. Income is the ledger's (`ledger.incomes`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from .. import clock
from ..accounts.models import User
from ..catalog.models import Product
from ..extensions import db
from ..formatting import Measure, format_fen, format_quantity
from ..inventory.models import Lot
from ..ledger import services as ledger
from ..notifications import services as notices
from ..ledger.models import Account, Entry, JournalTransaction
from ..orders.models import Allocation, Order
from ..producers.models import Household, Pairing
from .figures import Period, Sales, by_buyer, summed


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
        mine = buyers.base(summed(buyers.gross)).where(buyers.t.buyer_id == user.id)
        to_mine = s.base(summed(s.gross)).where(Order.buyer_id == user.id, Allocation.household_id.in_(paired))
        return int(db.session.scalar(mine)), int(db.session.scalar(to_mine))

    this_year, recent = spent(Period.year(today.year)), spent(Period(*clock.twelve_months(today)))
    return StaffHome(households, stock, *this_year, *recent)


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
    recent = _incomes(ids, *clock.twelve_months(today))
    before = _incomes(ids, *clock.twelve_months_before(today))
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

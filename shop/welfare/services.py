"""Union welfare funds (工会福利): a unit's fund topped up by transfer, grants to its members (one by one or from a
list, all or nothing), and the grants that expire going back to the fund.

Money moves only through the ledger's guarded postings: a top-up credits the fund's account, a grant moves money
from the fund's account to its granted account — refused, changing nothing, when the fund does not hold it — and an
expiry moves what is left of a grant back. A grant's remaining amount changes only by a guarded UPDATE, with one
append-only movement each time. Granting takes the fund's row lock first, so the yearly caps are checked against
every grant made before, however many coordinators grant at once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from .. import clock
from ..accounts.models import Organization, User
from ..audit.services import record as audit
from ..errors import ValidationFailed
from ..extensions import db
from ..formatting import format_fen, parse_yuan, yuan_decimal
from ..ledger import services as ledger
from ..orders.holds import welfare_released
from ..catalog.models import Product
from ..models_base import value_fen
from ..orders.models import Allocation, Order, OrderLine, Refund
from ..producers.models import Enterprise, Household, Village
from ..producers.services import ImportRejected
from ..sqlwrite import insert_ignoring_conflicts, lock_row
from ..tabular import Column, NotATable, map_columns, read_rows
from .models import FUND_SOURCES, WelfareFund, WelfareGrant, WelfareMovement, WelfareTopUp

PURPOSE_MAX = 60


# --- the fund ---------------------------------------------------------------------------------------------

def fund_of(organization_id: int) -> WelfareFund:
    """The unit's welfare fund, made (paid by its trade union) the first time it is asked for."""
    fund = db.session.scalar(select(WelfareFund).where(WelfareFund.organization_id == organization_id))
    if fund is None:
        db.session.execute(insert_ignoring_conflicts(WelfareFund.__table__).values(
            organization_id=organization_id, source="union", created_at=clock.now()))
        fund = db.session.scalar(select(WelfareFund).where(WelfareFund.organization_id == organization_id))
    return fund


def set_source(fund: WelfareFund, source: str, *, user_id: int) -> None:
    if source not in FUND_SOURCES:
        raise ValidationFailed.on("source", _("请选择资金来源。"))
    if source != fund.source:
        db.session.execute(update(WelfareFund).where(WelfareFund.id == fund.id).values(source=source))
        audit("welfare.source", None, f"fund {fund.id}: {fund.source}→{source}", user_id=user_id,
              object_type="welfare_fund", object_id=fund.id)
        db.session.refresh(fund)


@dataclass(frozen=True)
class FundFigures:
    """A fund's money, to the fen: topped up = available + granted; granted = unspent + spent − returned + expired
    (what expired went back to available)."""

    topped_up_fen: int
    available_fen: int
    granted_fen: int
    unspent_fen: int
    spent_fen: int
    returned_fen: int
    expired_fen: int


def figures(fund: WelfareFund) -> FundFigures:
    pool, granted_account = ledger.welfare_accounts(fund.id)
    topped = db.session.scalar(select(func.coalesce(func.sum(WelfareTopUp.amount_fen), 0))
                               .where(WelfareTopUp.fund_id == fund.id))
    granted = db.session.scalar(select(func.coalesce(func.sum(WelfareGrant.amount_fen), 0))
                                .where(WelfareGrant.fund_id == fund.id))
    moved = dict(db.session.execute(
        select(WelfareMovement.kind, func.sum(WelfareMovement.amount_fen))
        .join(WelfareGrant, WelfareGrant.id == WelfareMovement.grant_id)
        .where(WelfareGrant.fund_id == fund.id).group_by(WelfareMovement.kind)).all())
    return FundFigures(int(topped), -pool.balance_fen, int(granted), -granted_account.balance_fen,
                       int(moved.get("spend", 0)), int(moved.get("return", 0)), int(moved.get("expire", 0)))


def check_reference(reference: str | None) -> str:
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise ValidationFailed.on("reference", _("请填写转账凭证号。"))
    return reference


def top_up(fund: WelfareFund, amount_fen, *, reference: str, user_id: int, at: datetime | None = None) -> WelfareTopUp:
    """The union (or the unit) transferred money into the fund: recorded with its transfer's reference, and the
    fund's account credited (the platform's bank account debited)."""
    amount_fen = ledger.check_amount(amount_fen)
    reference = check_reference(reference)
    at = at or clock.now()
    topup = WelfareTopUp(fund_id=fund.id, amount_fen=amount_fen, reference=reference, user_id=user_id, created_at=at)
    db.session.add(topup)
    db.session.flush()
    pool, _granted = ledger.welfare_accounts(fund.id)
    ledger.post("welfare", "welfare_topup", topup.id, [ledger.Line(ledger.platform_account("bank"), amount_fen),
                                                       ledger.Line(pool, -amount_fen)],
                user_id=user_id, memo=f"top-up {reference}", at=at)
    audit("welfare.topup", None, f"fund {fund.id}: {amount_fen} fen ({reference})", user_id=user_id,
          object_type="welfare_fund", object_id=fund.id)
    return topup


# --- grants -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GrantAsk:
    """A grant as asked, before it is checked."""

    user: User | None
    amount_fen: int | None
    starts_on: date | None
    expires_on: date | None
    purpose: str


@dataclass
class _Tally:
    """What the fund holds and has granted each member and in all, per year — read once (under the fund's lock),
    then each grant that passes is added, so a list's rows count toward the caps and the fund with the rows
    before them."""

    available: int
    members: dict[tuple[int, int], int]  # (user id, year) → granted
    years: dict[int, int]                # year → granted by the unit

    @classmethod
    def of(cls, fund: WelfareFund) -> "_Tally":
        members: dict[tuple[int, int], int] = {}
        years: dict[int, int] = {}
        for user_id, starts_on, fen in db.session.execute(
                select(WelfareGrant.user_id, WelfareGrant.starts_on, func.sum(WelfareGrant.amount_fen))
                .where(WelfareGrant.fund_id == fund.id).group_by(WelfareGrant.user_id, WelfareGrant.starts_on)):
            members[(user_id, starts_on.year)] = members.get((user_id, starts_on.year), 0) + int(fen)
            years[starts_on.year] = years.get(starts_on.year, 0) + int(fen)
        pool, _granted = ledger.welfare_accounts(fund.id)
        return cls(-pool.balance_fen, members, years)

    def add(self, ask: GrantAsk) -> None:
        year = ask.starts_on.year
        self.members[(ask.user.id, year)] = self.members.get((ask.user.id, year), 0) + ask.amount_fen
        self.years[year] = self.years.get(year, 0) + ask.amount_fen
        self.available -= ask.amount_fen


def _problems(fund: WelfareFund, ask: GrantAsk, today: date, tally: _Tally) -> dict[str, str]:
    """What is wrong with a grant ({field: message}), against what the fund holds and granted (`tally`)."""
    problems: dict[str, str] = {}
    user = ask.user
    if user is None:
        problems["user_id"] = _("请选择本单位的职工。")
    elif user.organization_id != fund.organization_id or not user.active or user.role != "staff":
        # staff only: they spend it at the shop's checkout (a coordinator buys for the unit, on account)
        problems["user_id"] = _("%(u)s 不是本单位在职的职工，不能发放福利。", u=user.display_name)
    if ask.amount_fen is None or ask.amount_fen <= 0:
        problems["amount"] = _("金额必须大于 0，最多两位小数。")
    if ask.starts_on is None or ask.expires_on is None:
        problems["expires_on"] = _("请填写开始和到期日期。")
    elif ask.expires_on < today:
        problems["expires_on"] = _("到期日期 %(d)s 已经过去。", d=ask.expires_on.isoformat())
    elif ask.starts_on > ask.expires_on:
        problems["expires_on"] = _("到期日期不能早于开始日期。")
    purpose = (ask.purpose or "").strip()
    if not purpose or len(purpose) > PURPOSE_MAX:
        problems["purpose"] = _("请填写用途（如 春节慰问），最多 %(n)d 个字。", n=PURPOSE_MAX)
    if problems:
        return problems
    year = ask.starts_on.year
    config = current_app.config
    member_cap, unit_cap = config["SHOP_WELFARE_MEMBER_YEAR_CAP_FEN"], config["SHOP_WELFARE_UNIT_YEAR_CAP_FEN"]
    member_so_far = tally.members.get((user.id, year), 0)
    if member_cap and member_so_far + ask.amount_fen > member_cap:
        problems["amount"] = _("%(u)s %(y)d 年已发放 %(g)s，再发 %(a)s 会超过每人每年 %(c)s 的上限。", u=user.display_name,
                               y=year, g=format_fen(member_so_far), a=format_fen(ask.amount_fen),
                               c=format_fen(member_cap))
    unit_so_far = tally.years.get(year, 0)
    if unit_cap and unit_so_far + ask.amount_fen > unit_cap:
        problems["amount"] = _("本单位 %(y)d 年已发放 %(g)s，再发 %(a)s 会超过每单位每年 %(c)s 的上限。", y=year,
                               g=format_fen(unit_so_far), a=format_fen(ask.amount_fen), c=format_fen(unit_cap))
    if "amount" not in problems and ask.amount_fen > tally.available:
        problems["amount"] = _("基金现有 %(f)s，不够发放 %(a)s。", f=format_fen(tally.available),
                               a=format_fen(ask.amount_fen))
    return problems


def _write_grant(fund: WelfareFund, ask: GrantAsk, *, granted_by: int | None, at: datetime) -> WelfareGrant:
    grant = WelfareGrant(fund_id=fund.id, user_id=ask.user.id, amount_fen=ask.amount_fen, remaining_fen=ask.amount_fen,
                         starts_on=ask.starts_on, expires_on=ask.expires_on, purpose=ask.purpose.strip(),
                         granted_by=granted_by, created_at=at)
    db.session.add(grant)
    db.session.flush()
    pool, granted = ledger.welfare_accounts(fund.id)
    try:
        ledger.post("welfare", "welfare_grant", grant.id, [ledger.Line(pool, ask.amount_fen),
                                                           ledger.Line(granted, -ask.amount_fen)],
                    user_id=granted_by, memo=f"grant to user {ask.user.id}", at=at)
    except ledger.ExceedsBalance:
        raise ValidationFailed.on("amount", _("基金余额不足，不能发放 %(a)s。", a=format_fen(ask.amount_fen))) from None
    return grant


def grant(fund: WelfareFund, ask: GrantAsk, *, granted_by: int, at: datetime | None = None) -> WelfareGrant:
    """Grant one member an amount to spend from `starts_on` to `expires_on`: within what the fund holds and the
    yearly caps, or refused with why and nothing written."""
    at = at or clock.now()
    lock_row(WelfareFund, fund.id)  # grants of one fund one after another: the caps see every earlier grant
    problems = _problems(fund, ask, clock.local_day(at), _Tally.of(fund))
    if problems:
        raise ValidationFailed(problems)
    made = _write_grant(fund, ask, granted_by=granted_by, at=at)
    audit("welfare.grant", None, f"fund {fund.id}: {ask.amount_fen} fen to user {ask.user.id} until "
                                 f"{ask.expires_on}", user_id=granted_by, object_type="welfare_grant", object_id=made.id)
    return made


GRANT_COLUMNS = [
    Column("username", ("用户名", "username", "职工用户名")),
    Column("amount", ("金额", "金额（元）", "amount", "yuan")),
    Column("expires_on", ("到期日期", "expires_on", "有效期至")),
    Column("starts_on", ("开始日期", "starts_on", "生效日期"), required=False),
    Column("purpose", ("用途", "purpose", "事由"), required=False),
]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat((text or "").strip().replace("/", "-"))
    except ValueError:
        return None


def check_grant_import(fund: WelfareFund, data: bytes, *, purpose: str = "", today: date | None = None):
    """Each row of a grant list checked — its member, amount, dates, the caps and, with every row before it,
    what the fund holds — without writing. (Table, [GrantAsk])."""
    today = today or clock.today()
    try:
        table = map_columns(read_rows(data), GRANT_COLUMNS)
    except NotATable as err:
        raise ValidationFailed.on("file", str(err)) from None
    names = {r.values["username"].strip().lower() for r in table.rows}
    users = {u.username.lower(): u for u in db.session.scalars(
        select(User).where(func.lower(User.username).in_(names)))} if names else {}
    tally = _Tally.of(fund)
    asks: list[GrantAsk] = []
    for row in table.rows:
        username = row.values["username"].strip()
        user = users.get(username.lower())
        try:
            amount = parse_yuan(row.values["amount"])
        except ValueError:
            amount = None
        starts = _day(row.values.get("starts_on") or "") if (row.values.get("starts_on") or "").strip() else today
        expires = _day(row.values["expires_on"])
        ask = GrantAsk(user, amount, starts, expires, (row.values.get("purpose") or "").strip() or purpose)
        if user is None:
            row.errors.append(_("未知的用户名“%(u)s”。", u=username))
        if expires is None or starts is None:
            row.errors.append(_("日期请写成 2027-02-28 的样子。"))
        if not row.errors:
            row.errors += list(_problems(fund, ask, today, tally).values())
        if not row.errors:
            asks.append(ask)
            tally.add(ask)
    return table, asks


def import_grants(fund: WelfareFund, data: bytes, *, purpose: str = "", granted_by: int,
                  at: datetime | None = None) -> list[WelfareGrant]:
    """Grant every row of a list — or none: any row's problem refuses the whole list, with every row's reasons."""
    at = at or clock.now()
    lock_row(WelfareFund, fund.id)
    table, asks = check_grant_import(fund, data, purpose=purpose, today=clock.local_day(at))
    if not table.ok:
        raise ImportRejected(table)
    made = [_write_grant(fund, ask, granted_by=granted_by, at=at) for ask in asks]
    audit("welfare.grant_import", None, f"fund {fund.id}: {len(made)} grants, {sum(a.amount_fen for a in asks)} fen",
          user_id=granted_by, object_type="welfare_fund", object_id=fund.id)
    return made


def fund_grants(fund: WelfareFund, *, limit: int = 500) -> list[WelfareGrant]:
    return list(db.session.scalars(select(WelfareGrant).where(WelfareGrant.fund_id == fund.id)
                                   .order_by(WelfareGrant.id.desc()).limit(limit)))


def member_grants(user_id: int) -> list[WelfareGrant]:
    """A member's grants that have not expired, earliest expiry first (the order they are spent in)."""
    return list(db.session.scalars(select(WelfareGrant).where(WelfareGrant.user_id == user_id,
                                                              WelfareGrant.expired_at.is_(None))
                                   .order_by(WelfareGrant.expires_on, WelfareGrant.id)))


# --- spending -----------------------------------------------------------------------------------------------

def refund_rule() -> str:
    return _("退款时，福利支付的部分先退回：福利仍在有效期内的退回原福利，已过期的退回单位福利基金，不退现金。")


def usable_grants(user_id: int, today: date | None = None) -> list[WelfareGrant]:
    """A member's grants that may be spent today, earliest expiry first (the order they are spent in)."""
    today = today or clock.today()
    return list(db.session.scalars(select(WelfareGrant).where(
        WelfareGrant.user_id == user_id, WelfareGrant.expired_at.is_(None), WelfareGrant.remaining_fen > 0,
        WelfareGrant.starts_on <= today, WelfareGrant.expires_on >= today)
        .order_by(WelfareGrant.expires_on, WelfareGrant.id)))


def balance(user_id: int, today: date | None = None) -> int:
    return sum(g.remaining_fen for g in usable_grants(user_id, today))


def check_spend(wanted_fen) -> int:
    if isinstance(wanted_fen, bool) or not isinstance(wanted_fen, int) or wanted_fen < 0:
        raise ValidationFailed.on("welfare", _("福利支付金额必须是 0 或正数，最多两位小数。"))
    return wanted_fen


def spend(placed: list[Order], user: User, wanted_fen: int, *, grant_ids: list[int] | None = None,
          at: datetime | None = None) -> int:
    """Pay up to `wanted_fen` of a checkout just placed (its orders, first to last) from the buyer's own grants
    that may be spent today, earliest expiry first (or only the grants named, which must be the buyer's). Never
    more than the orders' total; more than the grants hold is refused, changing nothing. Each grant is locked
    (in id order, as every path that changes several takes them) and drawn by a guarded UPDATE, with one `spend`
    movement per grant and order; the money moves in the ledger from the members' granted account to the
    platform's `welfare_held` until the order is paid. Returns what was drawn."""
    wanted_fen = check_spend(wanted_fen)
    at = at or clock.now()
    today = clock.local_day(at)
    wanted_fen = min(wanted_fen, sum(order.total_fen for order in placed))
    if grant_ids:
        named = db.session.scalars(select(WelfareGrant).where(WelfareGrant.id.in_(grant_ids))).all()
        if len(named) != len(set(grant_ids)) or any(g.user_id != user.id for g in named):
            raise ValidationFailed.on("grant_ids", _("只能使用发给您本人的福利。"))
    if not wanted_fen:
        return 0
    candidates = [g.id for g in usable_grants(user.id, today) if not grant_ids or g.id in grant_ids]
    for grant_id in sorted(candidates):
        lock_row(WelfareGrant, grant_id)
    grants = [g for g in (db.session.get(WelfareGrant, gid, populate_existing=True) for gid in candidates)
              if g.usable_on(today)]
    grants.sort(key=lambda g: (g.expires_on, g.id))
    held = sum(g.remaining_fen for g in grants)
    if wanted_fen > held:
        raise ValidationFailed.on("welfare", _("您可用的福利只有 %(b)s，不够支付 %(w)s。", b=format_fen(held),
                                               w=format_fen(wanted_fen)))
    left = wanted_fen
    for order in placed:
        part = min(left, order.total_fen)
        if part:
            _draw(order, grants, part, at)
            left -= part
    return wanted_fen


def _draw(order: Order, grants: list[WelfareGrant], amount_fen: int, at: datetime) -> None:
    need = amount_fen
    by_fund: dict[int, int] = {}
    for grant in grants:
        take = min(need, grant.remaining_fen)
        if take <= 0:
            continue
        left_fen = db.session.execute(
            update(WelfareGrant).where(WelfareGrant.id == grant.id, WelfareGrant.expired_at.is_(None),
                                       WelfareGrant.remaining_fen >= take)
            .values(remaining_fen=WelfareGrant.remaining_fen - take).returning(WelfareGrant.remaining_fen)
            .execution_options(synchronize_session=False)).scalar_one_or_none()
        if left_fen is None:
            raise ValidationFailed.on("welfare", _("福利余额刚刚变化，请刷新后重试。"))
        set_committed_value(grant, "remaining_fen", left_fen)  # what the database now holds, for the next order
        db.session.add(WelfareMovement(grant_id=grant.id, kind="spend", amount_fen=take, order_id=order.id,
                                       created_at=at))
        by_fund[grant.fund_id] = by_fund.get(grant.fund_id, 0) + take
        need -= take
        if not need:
            break
    moved = db.session.execute(update(Order).where(Order.id == order.id, Order.welfare_fen == 0,
                                                   Order.status == "pending_payment", Order.total_fen >= amount_fen)
                               .values(welfare_fen=amount_fen).execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        raise AssertionError(f"order {order.id}: welfare drawn twice or beyond its total")
    set_committed_value(order, "welfare_fen", amount_fen)  # as the guarded UPDATE wrote it
    lines = [ledger.Line(ledger.welfare_accounts(fund_id)[1], fen) for fund_id, fen in sorted(by_fund.items())]
    lines.append(ledger.Line(ledger.platform_account("welfare_held"), -amount_fen))
    ledger.post("welfare", "welfare_draw", order.id, lines, order_id=order.id, user_id=order.buyer_id,
                memo=f"welfare paid order {order.id}", at=at)
    db.session.flush()


def _drawn_by(order_id: int) -> list[tuple[int, int]]:
    """(grant id, drawn and not given back) of an order, for each grant it drew on."""
    rows = db.session.execute(
        select(WelfareMovement.grant_id,
               func.sum(WelfareMovement.amount_fen).filter(WelfareMovement.kind == "spend"),
               func.sum(WelfareMovement.amount_fen).filter(WelfareMovement.kind == "return"))
        .where(WelfareMovement.order_id == order_id).group_by(WelfareMovement.grant_id)
        .order_by(WelfareMovement.grant_id)).all()
    return [(grant_id, int(spent or 0) - int(returned or 0)) for grant_id, spent, returned in rows]


def _give_back(order_id: int, amount_fen: int, at: datetime) -> list[ledger.Line]:
    """Give `amount_fen` an order drew back to its grants — the latest-expiring first — each while it may still
    be spent, otherwise to its fund (recorded as returned and expired at once, so each grant's figures stay
    exact). Each grant is locked first (in id order), so an expiry running at the same moment goes before or
    after, never between. The ledger's credit lines (the members' granted or the fund's account)."""
    today = clock.local_day(at)
    drawn = [(gid, fen) for gid, fen in _drawn_by(order_id) if fen > 0]
    for grant_id, _fen in drawn:
        lock_row(WelfareGrant, grant_id)
    grants = {gid: db.session.get(WelfareGrant, gid, populate_existing=True) for gid, _fen in drawn}
    order = sorted(drawn, key=lambda d: (grants[d[0]].expires_on, d[0]), reverse=True)
    lines: list[ledger.Line] = []
    need = amount_fen
    for grant_id, fen in order:
        take = min(need, fen)
        if take <= 0:
            continue
        grant = grants[grant_id]
        pool, granted = ledger.welfare_accounts(grant.fund_id)
        db.session.add(WelfareMovement(grant_id=grant_id, kind="return", amount_fen=take, order_id=order_id,
                                       created_at=at))
        still_valid = grant.expired_at is None and grant.expires_on >= today
        if still_valid:
            db.session.execute(update(WelfareGrant).where(WelfareGrant.id == grant_id,
                                                          WelfareGrant.expired_at.is_(None),
                                                          WelfareGrant.remaining_fen + take <= WelfareGrant.amount_fen)
                               .values(remaining_fen=WelfareGrant.remaining_fen + take)
                               .execution_options(synchronize_session=False))
            lines.append(ledger.Line(granted, -take))
        else:
            db.session.add(WelfareMovement(grant_id=grant_id, kind="expire", amount_fen=take, order_id=order_id,
                                           created_at=at))
            lines.append(ledger.Line(pool, -take))
        need -= take
    if need:
        raise AssertionError(f"order {order_id}: {need} fen of welfare to give back that it never drew")
    db.session.flush()
    return lines


@welfare_released.connect
def _order_cancelled(order: Order, user_id: int | None = None) -> None:
    """An unpaid order that drew on welfare grants was cancelled: what it drew goes back."""
    at = clock.now()
    lines = _give_back(order.id, order.welfare_fen, at)
    lines.append(ledger.Line(ledger.platform_account("welfare_held"), order.welfare_fen))
    ledger.post("welfare", "welfare_release", order.id, lines, order_id=order.id, user_id=user_id,
                memo=f"order {order.id} cancelled: its welfare given back", at=at)


def refund_lines(refund: Refund) -> list[ledger.Line]:
    """A refund's welfare part given back to the grants (or their fund): the ledger's credit lines for it."""
    if not refund.welfare_fen:
        return []
    return _give_back(refund.order_id, refund.welfare_fen, clock.now())


# --- expiry -------------------------------------------------------------------------------------------------

def expire_grants(today: date | None = None, *, at: datetime | None = None) -> list[int]:
    """Every grant past its expiry date: what is left of it goes back to the fund, recorded once. Safe to run from
    cron on several hosts at once: each grant is locked and expired by a guarded UPDATE, and its posting answers
    to the grant. The ids expired."""
    today = today or clock.today()
    at = at or clock.now()
    due = db.session.scalars(select(WelfareGrant.id).where(WelfareGrant.expires_on < today,
                                                           WelfareGrant.expired_at.is_(None))
                             .order_by(WelfareGrant.id)).all()
    expired = []
    for grant_id in due:
        lock_row(WelfareGrant, grant_id)
        row = db.session.execute(
            update(WelfareGrant).where(WelfareGrant.id == grant_id, WelfareGrant.expired_at.is_(None))
            .values(expired_at=at, remaining_fen=0)
            .returning(WelfareGrant.fund_id, WelfareGrant.amount_fen)
            .execution_options(synchronize_session=False)).first()
        if row is None:
            continue  # another host got there first
        fund_id = row[0]
        # what was left: granted − spent + returned, from the movements (the row now says 0)
        left = _left_by_movements(grant_id, int(row[1]))
        if left:
            db.session.add(WelfareMovement(grant_id=grant_id, kind="expire", amount_fen=left, created_at=at))
            pool, granted = ledger.welfare_accounts(fund_id)
            ledger.post("welfare", "welfare_expiry", grant_id, [ledger.Line(granted, left), ledger.Line(pool, -left)],
                        memo=f"grant {grant_id} expired", at=at)
        expired.append(grant_id)
    db.session.flush()
    return expired


def _left_by_movements(grant_id: int, amount_fen: int) -> int:
    moved = dict(db.session.execute(select(WelfareMovement.kind, func.sum(WelfareMovement.amount_fen))
                                    .where(WelfareMovement.grant_id == grant_id)
                                    .group_by(WelfareMovement.kind)).all())
    return amount_fen - int(moved.get("spend", 0)) + int(moved.get("return", 0)) - int(moved.get("expire", 0))


# --- the union's monthly statement ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StatementOrder:
    number: str
    paid_on: date | None
    member: str
    village: str
    total_fen: int
    welfare_fen: int    # paid from this fund's grants
    refunded_fen: int   # of that, given back by refunds this month


@dataclass(frozen=True)
class Reached:
    """A household or enterprise the month's welfare buying reached, and its share of the welfare paid."""

    name: str
    village: str
    welfare_fen: int


@dataclass
class WelfareStatement:
    """What a unit's welfare fund paid in a month, for the union to settle with the service points: members,
    orders, amounts and refunds, and the households and villages the money reached."""

    fund: WelfareFund
    month: str
    orders: list[StatementOrder]
    members: list[tuple[str, int, int, int]]  # (member, orders, welfare paid, refunded)
    reached: list[Reached]
    villages: list[tuple[str, int, int]]      # (village, households and enterprises, welfare paid)
    topped_up_fen: int
    granted_fen: int
    expired_fen: int
    refunds_of_earlier_fen: int  # refunds this month of orders paid in earlier months

    @property
    def spent_fen(self) -> int:
        return sum(o.welfare_fen for o in self.orders)

    @property
    def refunded_fen(self) -> int:
        return sum(o.refunded_fen for o in self.orders) + self.refunds_of_earlier_fen

    @property
    def net_fen(self) -> int:
        return self.spent_fen - self.refunded_fen


def statement(fund: WelfareFund, month: str) -> WelfareStatement:
    """The fund's statement of `month` (local time): orders paid that month from its grants, what refunds gave
    back that month, and the households the month's welfare reached — each order's welfare part split over the
    goods that filled it by value (largest remainder), so the shares add up to the fen."""
    start, end = clock.day_bounds(clock.month_start(month), clock.month_end(month))
    in_month = (WelfareMovement.created_at >= start) & (WelfareMovement.created_at < end)
    of_fund = select(WelfareMovement.order_id, WelfareMovement.kind, WelfareMovement.amount_fen,
                     WelfareMovement.created_at).join(WelfareGrant, WelfareGrant.id == WelfareMovement.grant_id) \
        .where(WelfareGrant.fund_id == fund.id, WelfareMovement.order_id.is_not(None))
    every = of_fund.subquery()
    spent = {oid: int(fen) for oid, fen in db.session.execute(
        select(every.c.order_id, func.sum(every.c.amount_fen)).where(every.c.kind == "spend")
        .group_by(every.c.order_id))}
    moved = of_fund.where(in_month).subquery()
    returned = {oid: int(fen) for oid, fen in db.session.execute(
        select(moved.c.order_id, func.sum(moved.c.amount_fen)).join(Order, Order.id == moved.c.order_id)
        .where(moved.c.kind == "return", Order.paid_at.is_not(None)).group_by(moved.c.order_id))}
    paid = db.session.execute(
        select(Order, User.display_name).join(User, User.id == Order.buyer_id)
        .where(Order.id.in_(spent), Order.paid_at >= start, Order.paid_at < end).order_by(Order.paid_at, Order.id)
    ).all() if spent else []
    village_of = _villages_of([order.id for order, _name in paid])
    orders_ = [StatementOrder(order.number, clock.local_day(order.paid_at), name, village_of.get(order.id, ""),
                              order.total_fen, spent[order.id], returned.get(order.id, 0)) for order, name in paid]
    members: dict[str, list[int]] = {}
    for row in orders_:
        entry = members.setdefault(row.member, [0, 0, 0])
        entry[0] += 1
        entry[1] += row.welfare_fen
        entry[2] += row.refunded_fen
    reached = _reached({order.id: spent[order.id] for order, _name in paid})
    villages: dict[str, list[int]] = {}
    for one in reached:
        entry = villages.setdefault(one.village, [0, 0])
        entry[0] += 1
        entry[1] += one.welfare_fen
    paid_ids = {order.id for order, _name in paid}
    topped = db.session.scalar(select(func.coalesce(func.sum(WelfareTopUp.amount_fen), 0)).where(
        WelfareTopUp.fund_id == fund.id, WelfareTopUp.created_at >= start, WelfareTopUp.created_at < end))
    granted = db.session.scalar(select(func.coalesce(func.sum(WelfareGrant.amount_fen), 0)).where(
        WelfareGrant.fund_id == fund.id, WelfareGrant.created_at >= start, WelfareGrant.created_at < end))
    expired = db.session.scalar(
        select(func.coalesce(func.sum(WelfareMovement.amount_fen), 0))
        .join(WelfareGrant, WelfareGrant.id == WelfareMovement.grant_id)
        .where(WelfareGrant.fund_id == fund.id, WelfareMovement.kind == "expire", WelfareMovement.order_id.is_(None),
               in_month))
    return WelfareStatement(
        fund, month, orders_,
        sorted(((name, *figures_) for name, figures_ in members.items()), key=lambda m: (-m[2], m[0])),
        sorted(reached, key=lambda r: (r.village, -r.welfare_fen, r.name)),
        sorted(((name, n, fen) for name, (n, fen) in villages.items()), key=lambda v: (-v[2], v[0])),
        int(topped), int(granted), int(expired),
        sum(fen for oid, fen in returned.items() if oid not in paid_ids))


def _villages_of(order_ids: list[int]) -> dict[int, str]:
    if not order_ids:
        return {}
    return dict(db.session.execute(
        select(OrderLine.order_id, func.min(Village.name)).join(Product, Product.id == OrderLine.product_id)
        .join(Village, Village.id == Product.village_id).where(OrderLine.order_id.in_(order_ids))
        .group_by(OrderLine.order_id)).all())


def _reached(welfare_by_order: dict[int, int]) -> list[Reached]:
    """Each order's welfare part split over the households and enterprises whose goods filled it, by value."""
    if not welfare_by_order:
        return []
    rows = db.session.execute(
        select(OrderLine.order_id, Allocation.household_id, Allocation.enterprise_id, Allocation.sold,
               OrderLine.unit_price_fen, OrderLine.scale)
        .join(OrderLine, OrderLine.id == Allocation.line_id)
        .where(OrderLine.order_id.in_(welfare_by_order), Allocation.sold > 0)
        .order_by(OrderLine.order_id, Allocation.id)).all()
    by_order: dict[int, list] = {}
    for row in rows:
        by_order.setdefault(row[0], []).append(row)
    shares: dict[tuple[int | None, int | None], int] = {}
    for order_id, allocations in by_order.items():
        parts = ledger.split_largest_remainder(welfare_by_order[order_id],
                                               [value_fen(r[3], r[4], r[5]) for r in allocations])
        for r, part in zip(allocations, parts):
            shares[(r[1], r[2])] = shares.get((r[1], r[2]), 0) + part
    households = {h.id: (h.head_name, h.village.name) for h in db.session.scalars(
        select(Household).where(Household.id.in_([k[0] for k in shares if k[0]])))}
    enterprises = {e.id: (e.name, e.village.name) for e in db.session.scalars(
        select(Enterprise).where(Enterprise.id.in_([k[1] for k in shares if k[1]])))}
    return [Reached(*(households[h] if h else enterprises[e]), fen) for (h, e), fen in shares.items() if fen]


def statement_rows(found: WelfareStatement) -> list[list]:
    """The statement as tables (for its XLSX): the orders, the members, the households reached."""
    orders_ = [[_("工会福利月度对账单"), found.fund.organization.name, found.month],
               [_("订单"), _("付款日期"), _("职工"), _("服务点"), _("订单金额（元）"), _("福利支付（元）"), _("本月退回福利（元）")]]
    orders_ += [[o.number, o.paid_on.isoformat() if o.paid_on else "", o.member, o.village, yuan_decimal(o.total_fen),
                 yuan_decimal(o.welfare_fen), yuan_decimal(o.refunded_fen)] for o in found.orders]
    orders_ += [[_("福利支付合计（元）"), yuan_decimal(found.spent_fen)],
                [_("退回福利合计（元）"), yuan_decimal(found.refunded_fen)],
                [_("应结算（元）"), yuan_decimal(found.net_fen)]]
    members = [[_("职工"), _("订单数"), _("福利支付（元）"), _("退回（元）")]]
    members += [[name, n, yuan_decimal(spent_), yuan_decimal(back)] for name, n, spent_, back in found.members]
    reached = [[_("农户或经营主体"), _("村"), _("福利支付（元）")]]
    reached += [[r.name, r.village, yuan_decimal(r.welfare_fen)] for r in found.reached]
    reached += [[]] + [[_("村"), _("户数"), _("福利支付（元）")]]
    reached += [[name, n, yuan_decimal(fen)] for name, n, fen in found.villages]
    return [(_("订单"), orders_), (_("职工"), members), (_("帮扶到户"), reached)]


# --- verification -------------------------------------------------------------------------------------------

def verify() -> list[str]:
    """The welfare books add up, to the fen: each grant's remaining amount is what its movements leave of it; each
    fund's granted account holds exactly its grants' remaining amounts, and its fund account exactly its top-ups
    less what it granted plus what expired; so Σ granted = Σ spent − Σ returned + Σ unspent + Σ expired."""
    problems = []
    moved = (select(WelfareMovement.grant_id,
                    func.sum(WelfareMovement.amount_fen).filter(WelfareMovement.kind == "spend").label("spent"),
                    func.sum(WelfareMovement.amount_fen).filter(WelfareMovement.kind == "return").label("returned"),
                    func.sum(WelfareMovement.amount_fen).filter(WelfareMovement.kind == "expire").label("expired"))
             .group_by(WelfareMovement.grant_id).subquery())
    for grant_id, amount, remaining, spent, returned, expired in db.session.execute(
            select(WelfareGrant.id, WelfareGrant.amount_fen, WelfareGrant.remaining_fen,
                   func.coalesce(moved.c.spent, 0), func.coalesce(moved.c.returned, 0),
                   func.coalesce(moved.c.expired, 0))
            .outerjoin(moved, moved.c.grant_id == WelfareGrant.id).order_by(WelfareGrant.id)):
        if remaining != amount - spent + returned - expired:
            problems.append(f"welfare grant {grant_id}: {remaining} fen left, but granted {amount} − spent {spent} + "
                            f"returned {returned} − expired {expired} = {amount - spent + returned - expired}")
    problems += _verify_orders()
    for fund in db.session.scalars(select(WelfareFund).order_by(WelfareFund.id)):
        f = figures(fund)
        left = int(db.session.scalar(select(func.coalesce(func.sum(WelfareGrant.remaining_fen), 0))
                                     .where(WelfareGrant.fund_id == fund.id)))
        if f.unspent_fen != left:
            problems.append(f"welfare fund {fund.id}: granted account holds {f.unspent_fen} fen, grants have {left} left")
        if f.available_fen != f.topped_up_fen - f.granted_fen + f.expired_fen:
            problems.append(f"welfare fund {fund.id}: holds {f.available_fen} fen, but topped up {f.topped_up_fen} − "
                            f"granted {f.granted_fen} + expired {f.expired_fen} = "
                            f"{f.topped_up_fen - f.granted_fen + f.expired_fen}")
        if f.granted_fen != f.spent_fen - f.returned_fen + f.unspent_fen + f.expired_fen:
            problems.append(f"welfare fund {fund.id}: granted {f.granted_fen} fen ≠ spent {f.spent_fen} − returned "
                            f"{f.returned_fen} + unspent {f.unspent_fen} + expired {f.expired_fen}")
    return problems


def _verify_orders() -> list[str]:
    """What orders drew on grants adds up: each order's movements net what it kept of its welfare payment (what it
    paid less what refunds gave back; nothing once cancelled unpaid), and `welfare_held` holds exactly what unpaid
    orders drew."""
    problems = []
    given = (select(Refund.order_id, func.sum(Refund.welfare_fen).label("given"))
             .group_by(Refund.order_id).subquery())
    net = (select(WelfareMovement.order_id,
                  func.sum(case((WelfareMovement.kind == "spend", WelfareMovement.amount_fen),
                                (WelfareMovement.kind == "return", -WelfareMovement.amount_fen), else_=0))
                  .label("net"))
           .where(WelfareMovement.order_id.is_not(None)).group_by(WelfareMovement.order_id).subquery())
    for order_id, status, drawn, refunded, kept in db.session.execute(
            select(Order.id, Order.status, Order.welfare_fen, func.coalesce(given.c.given, 0),
                   func.coalesce(net.c.net, 0))
            .outerjoin(given, given.c.order_id == Order.id).outerjoin(net, net.c.order_id == Order.id)
            .where(or_(Order.welfare_fen > 0, net.c.net.is_not(None))).order_by(Order.id)):
        expected = 0 if status == "cancelled" else int(drawn) - int(refunded)
        if int(kept) != expected:
            problems.append(f"order {order_id}: its welfare movements net {kept} fen, but it kept {expected} "
                            f"(paid {drawn} from welfare, {refunded} given back, {status})")
    unpaid = int(db.session.scalar(select(func.coalesce(func.sum(Order.welfare_fen), 0))
                                   .where(Order.status == "pending_payment")))
    held = -ledger.platform_balance("welfare_held")
    if held != unpaid:
        problems.append(f"welfare_held holds {held} fen, but unpaid orders drew {unpaid}")
    return problems


def units_with_funds() -> list[Organization]:
    return list(db.session.scalars(select(Organization).join(WelfareFund, WelfareFund.organization_id == Organization.id)
                                   .order_by(Organization.name)))

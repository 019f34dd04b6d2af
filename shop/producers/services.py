"""Producer rules: households, enterprises, villages, pairings and their imports.

Services flush, never commit; the caller owns the unit of work.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask_babel import gettext as _
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import aliased
from werkzeug.security import check_password_hash, generate_password_hash

from .. import clock, edge
from ..accounts.models import User
from ..errors import ValidationFailed
from ..extensions import db
from ..links import absolute_url
from ..models_base import COUNTY_WIDE
from ..tabular import Column, NotATable, Table, map_columns, read_rows
from ..uploads import drop_import, load_import, stash_import
from .models import (ENTERPRISE_KINDS, HOUSEHOLD_STATUSES, Enterprise, Household, HouseholdCard, HouseholdMove, Pairing,
                     PointManager, SupportedVillage, Village, VisitNote)
from ..audit.services import record as audit

PHONE_RE = re.compile(r"^[0-9+\-\s]{5,32}$")
CODE_RE = re.compile(r"^[0-9A-Za-z\-_]{2,40}$")

STATUS_WORDS = {
    "alleviated": "alleviated", "脱贫户": "alleviated", "脱贫": "alleviated",
    "monitored": "monitored", "监测户": "monitored", "监测": "monitored",
    "ordinary": "ordinary", "一般户": "ordinary", "一般": "ordinary",
}
YES_WORDS = {"是", "已消除", "yes", "y", "true", "1"}
NO_WORDS = {"否", "未消除", "no", "n", "false", "0", ""}


@dataclass
class HouseholdData:
    code: str
    head_name: str
    members: int
    status: str
    risk_eliminated: bool | None
    phone: str | None
    village_id: int
    note: str | None = None


def search_households(q: str | None = None, status: str | None = None):
    query = select(Household).order_by(Household.code)
    if q:
        q = q.strip()
        query = query.where(or_(Household.head_name.contains(q), Household.code.startswith(q)))
    if status in HOUSEHOLD_STATUSES:
        query = query.where(Household.status == status)
    return query


def check_household(data: HouseholdData, *, exclude_id: int | None = None) -> dict[str, str]:
    """Every problem with a household's data, as {field: message}."""
    problems: dict[str, str] = {}
    if not data.code or not CODE_RE.match(data.code):
        problems["code"] = _("户编号应为 2–40 位字母、数字或连字符。")
    else:
        query = select(Household.id).where(Household.code == data.code)
        if exclude_id is not None:
            query = query.where(Household.id != exclude_id)
        if db.session.scalar(query, execution_options=COUNTY_WIDE) is not None:  # codes are the county's
            problems["code"] = _("户编号 %(c)s 已存在。", c=data.code)
    if not data.head_name or len(data.head_name) > 40:
        problems["head_name"] = _("请填写户主姓名（最多 40 个字）。")
    if not isinstance(data.members, int) or data.members < 1 or data.members > 50:
        problems["members"] = _("家庭人口数应为 1–50 的整数。")
    if data.status not in HOUSEHOLD_STATUSES:
        problems["status"] = _("未知的户属性。")
    elif data.status != "monitored" and data.risk_eliminated is not None:
        problems["risk_eliminated"] = _("只有监测户才有“风险是否消除”。")
    if data.phone and not PHONE_RE.match(data.phone):
        problems["phone"] = _("电话号码格式不正确。")
    if db.session.get(Village, data.village_id) is None:
        problems["village_id"] = _("未知的村。")
    return problems


def _apply(household: Household, data: HouseholdData) -> None:
    household.code = data.code
    household.head_name = data.head_name
    household.members = data.members
    household.status = data.status
    household.risk_eliminated = (bool(data.risk_eliminated) if data.status == "monitored" else None)
    household.phone = data.phone or None
    household.village_id = data.village_id
    household.note = data.note or None


def create_household(data: HouseholdData) -> Household:
    problems = check_household(data)
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    household = Household()
    _apply(household, data)
    db.session.add(household)
    db.session.flush()
    return household


def update_household(household: Household, data: HouseholdData, *, user_id: int | None = None) -> Household:
    """Save a household's data. A move to another village is checked first (`check_move`) and recorded with the
    rest, or nothing is saved."""
    problems = check_household(data, exclude_id=household.id)
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    moved_from = household.village_id if data.village_id != household.village_id else None
    if moved_from is not None:
        check_move(household, data.village_id)
    _apply(household, data)
    if moved_from is not None:
        db.session.add(HouseholdMove(household_id=household.id, from_village_id=moved_from,
                                     to_village_id=data.village_id, user_id=user_id, moved_at=clock.now()))
        audit("household.move", household, f"{household.code}: village {moved_from}→{data.village_id}",
              user_id=user_id)
    db.session.flush()
    return household


def check_move(household: Household, village_id: int) -> None:
    """A household may move to another village only with a responsible staff member (if any) whose unit supports
    the new village (and, `inventory.save_household` checks, none of its stock left at the old village's service
    point). Its past sales, income and payouts stay where they happened."""
    pairing = db.session.scalar(select(Pairing).where(Pairing.household_id == household.id),
                                execution_options=COUNTY_WIDE)
    if pairing is not None and not supports(pairing.user.organization_id, village_id):
        village = db.session.get(Village, village_id, execution_options=COUNTY_WIDE)
        raise ValidationFailed.on("village_id", _(
            "农户 %(c)s 由 %(u)s 包保，其单位不帮扶%(v)s；请先解除包保或改由帮扶该村的单位包保，再迁户。",
            c=household.code, u=pairing.user.display_name, v=village.name if village else ""))


@dataclass(frozen=True)
class MoveLine:
    moved_at: datetime
    from_village: str
    to_village: str
    by: str | None


def household_moves(household_id: int) -> list[MoveLine]:
    """A household's moves between villages, oldest first, with both villages' names (a village a manager does
    not run is still named in its households' history)."""
    old, new = aliased(Village), aliased(Village)
    rows = db.session.execute(
        select(HouseholdMove.moved_at, old.name, new.name, User.display_name)
        .join(old, old.id == HouseholdMove.from_village_id).join(new, new.id == HouseholdMove.to_village_id)
        .outerjoin(User, User.id == HouseholdMove.user_id)
        .where(HouseholdMove.household_id == household_id).order_by(HouseholdMove.moved_at, HouseholdMove.id),
        execution_options=COUNTY_WIDE)
    return [MoveLine(*row) for row in rows]


def create_village(name: str, town: str | None = None) -> Village:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed.on("name", _("请填写村名。"))
    if db.session.scalar(select(Village.id).where(Village.name == name), execution_options=COUNTY_WIDE) is not None:
        raise ValidationFailed.on("name", _("村 %(n)s 已存在。", n=name))
    village = Village(name=name, town=(town or "").strip() or None)
    db.session.add(village)
    db.session.flush()
    return village


def save_enterprise(enterprise: Enterprise | None, *, name: str, kind: str, village_id: int,
                    contact_name: str | None, phone: str | None) -> Enterprise:
    name = (name or "").strip()
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = _("请填写企业名称。")
    else:
        query = select(Enterprise.id).where(Enterprise.name == name)
        if enterprise is not None:
            query = query.where(Enterprise.id != enterprise.id)
        if db.session.scalar(query, execution_options=COUNTY_WIDE) is not None:
            problems["name"] = _("企业 %(n)s 已存在。", n=name)
    if kind not in ENTERPRISE_KINDS:
        problems["kind"] = _("未知的企业类型。")
    if db.session.get(Village, village_id) is None:
        problems["village_id"] = _("未知的村。")
    if phone and not PHONE_RE.match(phone):
        problems["phone"] = _("电话号码格式不正确。")
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    if enterprise is None:
        enterprise = Enterprise()
        db.session.add(enterprise)
    enterprise.name, enterprise.kind, enterprise.village_id = name, kind, village_id
    enterprise.contact_name, enterprise.phone = (contact_name or None), (phone or None)
    db.session.flush()
    return enterprise


# --- pairings ---------------------------------------------------------------------------

def pair(user: User, household: Household) -> Pairing:
    """Make ``user`` the responsible staff member of ``household``."""
    if user.role != "staff":
        raise ValidationFailed.on("user_id", _("只有帮扶责任人可以包保农户。"))
    if not supports(user.organization_id, household.village_id):
        raise ValidationFailed.on("household_code", not_supported(user, household))
    existing = db.session.scalar(select(Pairing).where(Pairing.household_id == household.id),
                                 execution_options=COUNTY_WIDE)
    if existing is not None:
        if existing.user_id == user.id:
            return existing
        raise ValidationFailed.on("household_code", held_by_message(household.code, existing.id))
    pairing = Pairing(user=user, household=household)
    db.session.add(pairing)
    db.session.flush()
    audit("pairing.create", pairing, f"{user.username} ↔ {household.code}")
    return pairing


def pair_by_code(user: User | None, household_code: str) -> Pairing:
    code = (household_code or "").strip()
    household = db.session.scalar(select(Household).where(Household.code == code))
    if household is None:
        raise ValidationFailed.on("household_code", _("未知的户编号“%(c)s”。", c=code))
    if user is None:
        raise ValidationFailed.on("user_id", _("只有帮扶责任人可以包保农户。"))
    return pair(user, household)


def held_by_message(code: str, pairing_id: int) -> str:
    """Why a household cannot be paired again: who holds it — or, when the one asking may not see that staff member
    (another unit's), only that another unit does."""
    visible = db.session.execute(select(User.display_name, User.username).join(Pairing, Pairing.user_id == User.id)
                                 .where(Pairing.id == pairing_id)).first()  # a query, so the asker's scope applies
    if visible is None:
        return _("农户 %(c)s 已由其他单位的责任人包保。", c=code)
    return _("农户 %(c)s 已由 %(u)s（%(n)s）包保。", c=code, u=visible[0], n=visible[1])


def not_supported(user: User, household: Household) -> str:
    """Why a staff member may not be paired with a household: their unit does not support its village."""
    return _("%(u)s 所在的%(o)s不帮扶%(v)s，不能包保农户 %(c)s；请选择帮扶该村的单位的责任人，或先为单位添加帮扶村。",
             u=user.display_name, o=user.organization.name if user.organization else "", v=household.village.name,
             c=household.code)


def unpair(pairing: Pairing) -> None:
    audit("pairing.delete", pairing, f"{pairing.user.username} ↔ {pairing.household.code}")
    db.session.delete(pairing)
    db.session.flush()


def paired_households(user: User) -> list[Household]:
    return list(db.session.scalars(
        select(Household).join(Pairing).where(Pairing.user_id == user.id).order_by(Household.code)
    ))


# --- imports: all-or-nothing with row-level errors ----------------------------------------

HOUSEHOLD_COLUMNS = [
    Column("code", ("户编号", "code", "户码", "registry_code")),
    Column("head_name", ("户主姓名", "head_name", "户主", "name")),
    Column("members", ("家庭人口", "members", "人口数", "人口")),
    Column("status", ("属性", "status", "户属性", "户类型")),
    Column("risk_eliminated", ("风险已消除", "risk_eliminated", "风险是否消除"), required=False),
    Column("phone", ("电话", "phone", "联系电话"), required=False),
]

PAIRING_COLUMNS = [
    Column("username", ("用户名", "username", "帮扶责任人用户名")),
    Column("household_code", ("户编号", "household_code", "code", "户码")),
]


class ImportRejected(ValidationFailed):
    def __init__(self, table: Table):
        super().__init__(_("导入被拒绝：%(n)d 处问题，未导入任何数据。", n=table.error_count))
        self.table = table


def _parse_household_row(values: dict[str, str], village_id: int) -> tuple[HouseholdData | None, list[str]]:
    errors: list[str] = []
    status = STATUS_WORDS.get(values.get("status", "").strip().lower())
    if status is None:
        errors.append(_("未知的户属性“%(s)s”（应为 脱贫户、监测户 或 一般户）。", s=values.get("status", "")))
    raw_members = values.get("members", "").strip()
    try:  # ASCII or full-width digits only: "²" is not a count
        members = edge.parse_int(raw_members, "members", minimum=0, maximum=edge.MAX_ID)
    except ValidationFailed:
        members = None
    if members is None:
        errors.append(_("家庭人口“%(m)s”不是正整数。", m=raw_members))
    raw_risk = values.get("risk_eliminated", "").strip().lower()
    risk: bool | None
    if raw_risk in YES_WORDS:
        risk = True
    elif raw_risk in NO_WORDS:
        risk = False if status == "monitored" else None
    else:
        risk = None
        errors.append(_("“风险已消除”应填 是 或 否，而不是“%(r)s”。", r=raw_risk))
    if errors:
        return None, errors
    data = HouseholdData(code=values["code"].strip(), head_name=values["head_name"].strip(), members=members,
                         status=status, risk_eliminated=risk, phone=values.get("phone", "").strip() or None,
                         village_id=village_id)
    return data, []


def check_household_import(data: bytes, village_id: int) -> tuple[Table, list[HouseholdData]]:
    table = map_columns(read_rows(data), HOUSEHOLD_COLUMNS)
    parsed: list[HouseholdData] = []
    seen: dict[str, int] = {}
    for row in table.rows:
        household, errors = _parse_household_row(row.values, village_id)
        row.errors.extend(errors)
        if household is None:
            continue
        row.errors.extend(check_household(household).values())
        if household.code in seen:
            row.errors.append(_("户编号 %(c)s 与第 %(n)d 行重复。", c=household.code, n=seen[household.code]))
        seen.setdefault(household.code, row.number)
        parsed.append(household)
    return table, parsed


def import_households(data: bytes, village_id: int) -> list[Household]:
    table, parsed = check_household_import(data, village_id)
    if not table.ok:
        raise ImportRejected(table)
    created = []
    for item in parsed:
        household = Household()
        _apply(household, item)
        db.session.add(household)
        created.append(household)
    db.session.flush()
    return created


def check_pairing_import(data: bytes) -> tuple[Table, list[tuple[User, Household]]]:
    table = map_columns(read_rows(data), PAIRING_COLUMNS)
    pairs: list[tuple[User, Household]] = []
    seen: dict[str, int] = {}
    usernames = {r.values["username"].lower() for r in table.rows}
    codes = {r.values["household_code"] for r in table.rows}
    users = {u.username.lower(): u for u in db.session.scalars(select(User).where(func.lower(User.username).in_(usernames)))} if usernames else {}
    households = {h.code: h for h in db.session.scalars(select(Household).where(Household.code.in_(codes)))} if codes else {}
    current = {p.household_id: p for p in db.session.scalars(
        select(Pairing).where(Pairing.household_id.in_([h.id for h in households.values()])),
        execution_options=COUNTY_WIDE)} if households else {}
    unit_villages: dict[int | None, frozenset[int]] = {}
    for row in table.rows:
        username, code = row.values["username"], row.values["household_code"]
        user, household = users.get(username.lower()), households.get(code)
        if user is None:
            row.errors.append(_("未知的用户名“%(u)s”。", u=username))
        elif user.role != "staff":
            row.errors.append(_("用户 %(u)s 不是帮扶责任人。", u=username))
        if household is None:
            row.errors.append(_("未知的户编号“%(c)s”。", c=code))
        elif user is not None and user.role == "staff" and household.village_id not in unit_villages.setdefault(
                user.organization_id, supported_villages(user.organization_id)):
            row.errors.append(not_supported(user, household))
        else:
            existing = current.get(household.id)
            if existing is not None and (user is None or existing.user_id != user.id):
                row.errors.append(held_by_message(code, existing.id))
        if code in seen:
            row.errors.append(_("户编号 %(c)s 与第 %(n)d 行重复。", c=code, n=seen[code]))
        seen.setdefault(code, row.number)
        if not row.errors:
            pairs.append((user, household))
    return table, pairs


def import_pairings(data: bytes) -> list[Pairing]:
    table, pairs = check_pairing_import(data)
    if not table.ok:
        raise ImportRejected(table)
    return [pair(user, household) for user, household in pairs]


# --- the import flow: upload → a preview of every row → confirm; all or nothing -----------------------------

@dataclass(frozen=True)
class ImportKind:
    check: Callable           # (data[, village_id]) → (Table, parsed)
    do_import: Callable       # (data[, village_id]) → created records
    with_village: bool


IMPORTS = {
    "households": ImportKind(check_household_import, import_households, with_village=True),
    "pairings": ImportKind(check_pairing_import, import_pairings, with_village=False),
}


@dataclass
class ImportPreview:
    table: Table
    token: str | None  # set when every row passed: the file is kept until it is confirmed


def _village_for(kind: ImportKind, village_id) -> int | None:
    if not kind.with_village:
        return None
    if not isinstance(village_id, int) or db.session.get(Village, village_id) is None:
        raise ValidationFailed.on("village_id", _("请选择村。"))
    return village_id


def _read(kind: ImportKind, data: bytes, village_id: int | None):
    try:
        return kind.check(data, village_id) if kind.with_village else kind.check(data)
    except NotATable as err:
        raise ValidationFailed.on("file", err.message) from None


def preview_import(name: str, user_id: int, data: bytes, village_id=None) -> ImportPreview:
    """Check every row of an uploaded file without writing anything; a file that passes is kept (by a token)
    for the confirmation."""
    kind = IMPORTS[name]
    village = _village_for(kind, village_id)
    table, _parsed = _read(kind, data, village)
    return ImportPreview(table, stash_import(name, user_id, data) if table.ok else None)


def confirm_import(name: str, user_id: int, token: str, village_id=None) -> list:
    """Import the file a preview kept: every row, or — if anything changed since and a row fails — none
    (ImportRejected, with the table of row problems)."""
    kind = IMPORTS[name]
    data = load_import(name, user_id, token)
    if data is None:
        raise ValidationFailed.on("file", _("导入文件已失效，请重新上传。"))
    village = _village_for(kind, village_id)
    try:
        return kind.do_import(data, village) if kind.with_village else kind.do_import(data)
    except NotATable as err:
        raise ValidationFailed.on("file", err.message) from None


def forget_import(name: str, user_id: int, token: str) -> None:
    drop_import(name, user_id, token)


# --- a household's card: its own page, opened with a PIN ------------------------------------------------

CARD_ATTEMPTS = 5                      # wrong PINs in a row, then the card rests
CARD_REST = timedelta(minutes=30)      # … for this long (or until the manager sets a new PIN)


@dataclass
class PinResult:
    card: HouseholdCard | None
    ok: bool = False
    left: int = 0          # attempts left after a wrong PIN
    locked: bool = False   # resting after too many wrong PINs (or revoked / unknown: nothing is said)
    checked: bool = False  # whether this attempt's PIN was compared at all


def _new_pin() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def current_card(household_id: int) -> HouseholdCard | None:
    return db.session.scalar(select(HouseholdCard).where(HouseholdCard.household_id == household_id,
                                                         HouseholdCard.revoked_at.is_(None))
                             .order_by(HouseholdCard.id.desc()).limit(1))


def issue_card(household: Household, *, user_id: int, pin: str | None = None,
               token: str | None = None) -> tuple[HouseholdCard, str]:
    """A new card (any earlier one stops working) and its PIN, which is shown this once and kept only hashed.
    (`pin` and `token` are chosen only for the demo village, whose card is printed in the README.)"""
    now = clock.now()
    db.session.execute(update(HouseholdCard).where(HouseholdCard.household_id == household.id,
                                                   HouseholdCard.revoked_at.is_(None))
                       .values(revoked_at=now).execution_options(synchronize_session=False))
    pin = pin or _new_pin()
    card = HouseholdCard(household_id=household.id, token=token or secrets.token_urlsafe(24),
                         pin_hash=generate_password_hash(pin),
                         pin_version=1, failed_attempts=0, created_at=now, created_by_id=user_id)
    db.session.add(card)
    db.session.flush()
    audit("household.card", household, "issued", user_id=user_id)
    return card, pin


def reset_pin(household: Household, *, user_id: int) -> tuple[HouseholdCard, str]:
    """A new PIN for the household's card: pages opened with the old one close, and its rest ends."""
    card = current_card(household.id)
    if card is None:
        raise ValidationFailed.on("card", _("这户还没有卡，请先制卡。"))
    pin = _new_pin()
    db.session.execute(update(HouseholdCard).where(HouseholdCard.id == card.id).values(
        pin_hash=generate_password_hash(pin), pin_version=HouseholdCard.pin_version + 1, failed_attempts=0,
        locked_until=None).execution_options(synchronize_session=False))
    audit("household.card", household, "new PIN", user_id=user_id)
    return db.session.get(HouseholdCard, card.id, populate_existing=True), pin


def revoke_card(household: Household, *, user_id: int) -> None:
    changed = db.session.execute(update(HouseholdCard).where(HouseholdCard.household_id == household.id,
                                                             HouseholdCard.revoked_at.is_(None))
                                 .values(revoked_at=clock.now()).execution_options(synchronize_session=False))
    if not changed.rowcount:
        raise ValidationFailed.on("card", _("这户没有在用的卡。"))
    audit("household.card", household, "revoked", user_id=user_id)


def card_url(card: HouseholdCard) -> str:
    """The address on a household's card (its QR code): the household's own page."""
    return absolute_url("producers.household_card_page", token=card.token)


def card_by_token(token: str) -> HouseholdCard | None:
    """The working card with this token (a revoked or unknown token is None: it opens nothing)."""
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(HouseholdCard).where(HouseholdCard.token == token,
                                                         HouseholdCard.revoked_at.is_(None)))


def try_pin(token: str, pin: str, *, now=None) -> PinResult:
    """One attempt at a card's PIN. The attempt is counted *before* the PIN is checked, by a guarded UPDATE,
    so however many attempts arrive at once at most CARD_ATTEMPTS PINs are ever checked; then the card rests
    for CARD_REST. A right PIN clears the count."""
    now = now or clock.now()
    card = card_by_token(token)
    if card is None:
        return PinResult(None, locked=True)
    # a rest that is over starts the count again (guarded: of many racers, one does it)
    db.session.execute(update(HouseholdCard).where(HouseholdCard.id == card.id, HouseholdCard.locked_until <= now)
                       .values(failed_attempts=0, locked_until=None).execution_options(synchronize_session=False))
    taken = db.session.execute(
        update(HouseholdCard).where(HouseholdCard.id == card.id, HouseholdCard.revoked_at.is_(None),
                                    HouseholdCard.failed_attempts < CARD_ATTEMPTS, HouseholdCard.locked_until.is_(None))
        .values(failed_attempts=HouseholdCard.failed_attempts + 1)
        .returning(HouseholdCard.failed_attempts, HouseholdCard.pin_hash)).first()
    if taken is None:
        return PinResult(card, locked=True)
    count, pin_hash = taken
    if isinstance(pin, str) and pin.isascii() and pin.isdigit() and len(pin) == 6 and check_password_hash(pin_hash, pin):
        db.session.execute(update(HouseholdCard).where(HouseholdCard.id == card.id)
                           .values(failed_attempts=0, locked_until=None).execution_options(synchronize_session=False))
        return PinResult(card, ok=True, checked=True)
    if count >= CARD_ATTEMPTS:
        db.session.execute(update(HouseholdCard).where(HouseholdCard.id == card.id)
                           .values(locked_until=now + CARD_REST).execution_options(synchronize_session=False))
        return PinResult(card, locked=True, checked=True)
    return PinResult(card, left=CARD_ATTEMPTS - count, checked=True)


# --- visits -------------------------------------------------------------------------------------------------

def add_visit_note(user: User, household: Household, *, visited_on, note: str) -> VisitNote:
    """A staff member's note after visiting one of their own households."""
    if user.role == "staff" and not db.session.scalar(select(Pairing.id).where(Pairing.user_id == user.id,
                                                                               Pairing.household_id == household.id)):
        raise ValidationFailed.on("household", _("只能为自己包保的农户记录走访。"))
    note = (note or "").strip()
    if not note or len(note) > 2000:
        raise ValidationFailed.on("note", _("请写下走访情况（2000 字以内）。"))
    if visited_on is None or visited_on > clock.today():
        raise ValidationFailed.on("visited_on", _("走访日期不能晚于今天。"))
    made = VisitNote(household_id=household.id, user_id=user.id, visited_on=visited_on, note=note,
                     created_at=clock.now())
    db.session.add(made)
    db.session.flush()
    return made


def visit_notes(household_ids: list[int], per_household: int = 3) -> dict[int, list[VisitNote]]:
    notes: dict[int, list[VisitNote]] = {h: [] for h in household_ids}
    if household_ids:
        for found in db.session.scalars(select(VisitNote).where(VisitNote.household_id.in_(household_ids))
                                        .order_by(VisitNote.visited_on.desc(), VisitNote.id.desc())):
            if len(notes[found.household_id]) < per_household:
                notes[found.household_id].append(found)
    return notes


# --- which villages a manager runs ----------------------------------------------------------


def managed_villages(user_id: int) -> frozenset[int]:
    """The villages whose service points this manager runs (their grants; none, none seen)."""
    rows = db.session.connection().execute(select(PointManager.village_id).where(PointManager.user_id == user_id))
    return frozenset(row[0] for row in rows)


def set_managed_villages(user_id: int, village_ids: set[int]) -> None:
    """Grant exactly these villages to the manager: grants added and removed, history (their records) kept."""
    known = set(db.session.scalars(select(Village.id).where(Village.id.in_(village_ids)))) if village_ids else set()
    unknown = set(village_ids) - known
    if unknown:
        raise ValidationFailed.on("villages", _("未知的村。"))
    held = set(managed_villages(user_id))
    if held - known:
        db.session.execute(delete(PointManager).where(PointManager.user_id == user_id,
                                                      PointManager.village_id.in_(held - known)))
    db.session.add_all(PointManager(user_id=user_id, village_id=v) for v in sorted(known - held))
    db.session.flush()


def village_choices() -> list[tuple[int, str]]:
    """The villages the current user may put things in (a manager: theirs; the county: all), by name."""
    return [(v.id, v.name) for v in db.session.scalars(select(Village).order_by(Village.name))]


def check_village(village_id: int | None, field: str = "village_id") -> dict[str, str]:
    """{field: message} when the village is unknown or not the user's; {} when it may be used."""
    if village_id is None:
        return {field: _("请选择所属的村。")}
    if not isinstance(village_id, int) or isinstance(village_id, bool) or db.session.get(Village, village_id) is None:
        return {field: _("未知的村，或不是你负责的村。")}
    return {}


def only_village() -> int | None:
    """The one village the current user may use, when there is exactly one (so no one has to choose it)."""
    ids = db.session.scalars(select(Village.id).limit(2)).all()
    return ids[0] if len(ids) == 1 else None


# --- units supporting villages (结对帮扶) -----------------------------------------------------------

def supported_villages(organization_id: int | None) -> frozenset[int]:
    """The villages a unit supports (its staff are paired with their households)."""
    if organization_id is None:
        return frozenset()
    return frozenset(db.session.scalars(select(SupportedVillage.village_id)
                                        .where(SupportedVillage.organization_id == organization_id),
                                        execution_options=COUNTY_WIDE))


def supported_village_names() -> dict[int, list[str]]:
    """{unit id: names of the villages it supports}, every unit in one query (the units page)."""
    names: dict[int, list[str]] = {}
    for org_id, name in db.session.execute(
            select(SupportedVillage.organization_id, Village.name)
            .join(Village, Village.id == SupportedVillage.village_id)
            .order_by(SupportedVillage.organization_id, Village.name), execution_options=COUNTY_WIDE):
        names.setdefault(org_id, []).append(name)
    return names


def supports(organization_id: int | None, village_id: int) -> bool:
    return village_id in supported_villages(organization_id)


def set_supported_villages(organization_id: int, village_ids: set[int], *, user_id: int | None = None) -> None:
    """The unit supports exactly these villages. A village is dropped only when none of the unit's staff is
    still paired with one of its households (unpair or re-pair them first)."""
    known = set(db.session.scalars(select(Village.id).where(Village.id.in_(village_ids)),
                                   execution_options=COUNTY_WIDE)) if village_ids else set()
    if set(village_ids) - known:
        raise ValidationFailed.on("villages", _("未知的村。"))
    held = set(supported_villages(organization_id))
    dropped = held - known
    if dropped:
        still = db.session.execute(
            select(Village.name, func.count(Pairing.id)).join(Household, Household.village_id == Village.id)
            .join(Pairing, Pairing.household_id == Household.id).join(User, User.id == Pairing.user_id)
            .where(User.organization_id == organization_id, Village.id.in_(dropped))
            .group_by(Village.name).order_by(Village.name), execution_options=COUNTY_WIDE).first()
        if still is not None:
            raise ValidationFailed.on("villages", _("单位的责任人还包保着%(v)s的 %(n)d 户，请先解除这些包保，再取消帮扶该村。",
                                                    v=still[0], n=still[1]))
        db.session.execute(delete(SupportedVillage).where(SupportedVillage.organization_id == organization_id,
                                                          SupportedVillage.village_id.in_(dropped)))
    db.session.add_all(SupportedVillage(organization_id=organization_id, village_id=v) for v in sorted(known - held))
    if known != held:
        audit("unit.villages", None, f"unit {organization_id}: villages {sorted(held)}→{sorted(known)}",
              user_id=user_id, object_type="organization", object_id=organization_id)
    db.session.flush()

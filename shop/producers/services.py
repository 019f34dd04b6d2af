"""Producer rules: households, enterprises, villages, pairings and their imports.

Services flush, never commit; the caller owns the unit of work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from .. import edge
from ..accounts.models import User
from ..errors import ValidationFailed
from ..extensions import db
from ..tabular import Column, NotATable, Table, map_columns, read_rows
from ..uploads import drop_import, load_import, stash_import
from .models import ENTERPRISE_KINDS, HOUSEHOLD_STATUSES, Enterprise, Household, Pairing, Village
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
        if db.session.scalar(query) is not None:
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


def update_household(household: Household, data: HouseholdData) -> Household:
    problems = check_household(data, exclude_id=household.id)
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    _apply(household, data)
    db.session.flush()
    return household


def create_village(name: str, town: str | None = None) -> Village:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed.on("name", _("请填写村名。"))
    if db.session.scalar(select(Village.id).where(Village.name == name)) is not None:
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
        if db.session.scalar(query) is not None:
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
    existing = db.session.scalar(select(Pairing).where(Pairing.household_id == household.id))
    if existing is not None:
        if existing.user_id == user.id:
            return existing
        raise ValidationFailed.on("household_code", _("农户 %(c)s 已由 %(u)s 包保。", c=household.code, u=existing.user.display_name))
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
    current = {p.household_id: p for p in db.session.scalars(select(Pairing).where(Pairing.household_id.in_([h.id for h in households.values()])))} if households else {}
    for row in table.rows:
        username, code = row.values["username"], row.values["household_code"]
        user, household = users.get(username.lower()), households.get(code)
        if user is None:
            row.errors.append(_("未知的用户名“%(u)s”。", u=username))
        elif user.role != "staff":
            row.errors.append(_("用户 %(u)s 不是帮扶责任人。", u=username))
        if household is None:
            row.errors.append(_("未知的户编号“%(c)s”。", c=code))
        else:
            existing = current.get(household.id)
            if existing is not None and (user is None or existing.user_id != user.id):
                row.errors.append(_("农户 %(c)s 已由 %(u)s 包保。", c=code, u=existing.user.username))
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

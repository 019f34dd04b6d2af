"""Account rules. Services flush, never commit: the caller owns the unit of work."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, has_request_context, session
from flask_babel import gettext as _
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import joinedload, make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from werkzeug.security import check_password_hash, generate_password_hash

from .. import clock, unit_of_work
from ..errors import ValidationFailed
from ..extensions import cache, db
from ..sqlwrite import insert_ignoring_conflicts
from .models import ROLES, ApiToken, LoginSession, Organization, RequestKey, User
from ..audit.services import record as audit

MIN_PASSWORD_LENGTH = 10
# Compared against when the username is unknown, so both paths cost the same.
_DUMMY_HASH: dict[str, str] = {}


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


# a login is checked with one statement on every page: the user's row, if this login of theirs still holds
_USER_COLUMNS = list(User.__table__.columns)
_LOGIN_CHECK = (select(*_USER_COLUMNS).join(LoginSession, LoginSession.user_id == User.id)
                .where(User.id == bindparam("user_id"), User.session_version == bindparam("version"),
                       User.active.is_(True), LoginSession.token_hash == bindparam("token_hash"),
                       LoginSession.revoked_at.is_(None), LoginSession.expires_at > bindparam("now")))


def load_user(session_id: str) -> User | None:
    """flask-login's loader: the cookie carries "id:version" and a login token; both must still hold."""
    try:
        user_id, version = (int(part) for part in session_id.split(":", 1))
    except (ValueError, AttributeError):
        return None
    if not has_request_context():
        user = db.session.get(User, user_id)
        return user if user is not None and user.active and user.session_version == version else None
    token = session.get("sid")
    if not token:
        return None
    values = {"user_id": user_id, "version": version, "token_hash": _token_hash(token), "now": clock.now()}
    row = unit_of_work.read(lambda: _checked_login(values))
    if row is None:
        return None
    known = db.session.identity_map.get(identity_key(User, user_id))
    if known is not None:  # the request shares a session that holds the user already (a command, a test)
        return known
    user = User(**{column.key: row[column.key] for column in _USER_COLUMNS})
    make_transient_to_detached(user)  # as though loaded by a query: nothing to write back
    db.session.add(user)
    return user


def _checked_login(values: dict):
    """The check on its own pooled connection in autocommit: one round trip — no BEGIN before it, no ROLLBACK
    after — so a page that needs nothing else from the database (a cached catalog) costs one."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(_LOGIN_CHECK, values).mappings().first()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login_session(user: User, *, ip: str | None, user_agent: str | None) -> str:
    """A new server-side login; the returned token goes into the (signed) session cookie."""
    token = secrets.token_urlsafe(32)
    hours = current_app.config["SHOP_SESSION_HOURS"]
    db.session.add(LoginSession(token_hash=_token_hash(token), user_id=user.id, expires_at=clock.now() + timedelta(hours=hours),
                                ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:200] or None))
    db.session.flush()
    return token


def record_login(user: User, *, ip: str | None, user_agent: str | None) -> str:
    """A successful login: its server-side session and its line in the audit log. Returns the session token."""
    token = start_login_session(user, ip=ip, user_agent=user_agent)
    audit("login", user, user.username, user_id=user.id)
    return token


def end_login_session(token: str | None) -> None:
    if token:
        db.session.execute(update(LoginSession).where(LoginSession.token_hash == _token_hash(token),
                                                      LoginSession.revoked_at.is_(None)).values(revoked_at=clock.now()))


def end_other_login_sessions(user: User, keep: str | None) -> None:
    query = update(LoginSession).where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
    if keep:
        query = query.where(LoginSession.token_hash != _token_hash(keep))
    db.session.execute(query.values(revoked_at=clock.now()))


def authenticate(username: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(func.lower(User.username) == (username or "").strip().lower()))
    if user is None:
        method = current_app.config["PASSWORD_HASH_METHOD"]
        dummy = _DUMMY_HASH.setdefault(method, generate_password_hash("not-a-password", method=method))
        check_password_hash(dummy, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    return user


def record_failed_login(username: str | None) -> User | None:
    """A wrong password (or an unknown username): its line in the audit log. Returns the active user the
    username names, if any, so the caller can tell them when guessing at their password is being slowed."""
    name = (username or "").strip()
    audit("login.failed", detail=name[:64])
    return db.session.scalar(select(User).where(func.lower(User.username) == name.lower(), User.active.is_(True)))


def check_password_rules(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.on("password", _("密码至少需要 %(n)d 个字符。", n=MIN_PASSWORD_LENGTH))


def change_password(user: User, current: str, new: str) -> None:
    if not check_password_hash(user.password_hash, current or ""):
        raise ValidationFailed.on("current_password", _("当前密码不正确。"))
    check_password_rules(new)
    user.password_hash = hash_password(new)
    user.session_version += 1  # every other session of this user ends
    audit("user.password", user, user.username, user_id=user.id)
    revoke_all_api_tokens(user, why="password changed")
    db.session.flush()


def _check_role_and_org(role: str, organization: Organization | None) -> None:
    if role not in ROLES:
        raise ValidationFailed.on("role", _("未知的角色。"))
    if role == "company" and (organization is None or organization.kind != "company"):
        raise ValidationFailed.on("organization_id", _("企业采购员必须属于一家企业。"))
    if role == "staff" and (organization is None or organization.kind != "government"):
        raise ValidationFailed.on("organization_id", _("帮扶责任人必须属于一个机关单位。"))
    if role == "coordinator" and organization is None:
        raise ValidationFailed.on("organization_id", _("单位协调员必须属于一个单位。"))


def _unique_username(username: str, exclude_id: int | None = None) -> None:
    query = select(User.id).where(func.lower(User.username) == username.lower())
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    if db.session.scalar(query) is not None:
        raise ValidationFailed.on("username", _("用户名 %(u)s 已被使用。", u=username))


def create_user(*, username: str, display_name: str, role: str, password: str,
                organization: Organization | None = None, phone: str | None = None, active: bool = True) -> User:
    username = username.strip()
    _unique_username(username)
    _check_role_and_org(role, organization)
    check_password_rules(password)
    user = User(username=username, display_name=display_name.strip(), role=role, organization=organization,
                phone=phone or None, active=active, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    audit("user.create", user, f"{username} role={role}")
    return user


def update_user(user: User, *, display_name: str, role: str, organization: Organization | None,
                phone: str | None, active: bool, new_password: str | None = None) -> User:
    _check_role_and_org(role, organization)
    ends_sessions = (role != user.role) or (not active and user.active)
    if role != user.role or active != user.active:
        audit("user.role", user, f"{user.username}: {user.role}→{role}, active {user.active}→{active}")
    user.display_name = display_name.strip()
    user.role = role
    user.organization = organization
    user.phone = phone or None
    user.active = active
    if new_password:
        check_password_rules(new_password)
        user.password_hash = hash_password(new_password)
        ends_sessions = True
    if ends_sessions:
        user.session_version += 1
    if new_password or not active:
        revoke_all_api_tokens(user, why="password reset" if active else "user deactivated")
    db.session.flush()
    return user


def create_organization(name: str, kind: str) -> Organization:
    name = name.strip()
    if db.session.scalar(select(Organization.id).where(Organization.name == name)) is not None:
        raise ValidationFailed.on("name", _("单位 %(n)s 已存在。", n=name))
    org = Organization(name=name, kind=kind)
    db.session.add(org)
    db.session.flush()
    return org


# --- API tokens -----------------------------------------------------------------------------------

API_TOKEN_PREFIX = "shop_"


def set_email(user: User, email: str | None) -> User:
    """Where the user's notifications are emailed (none: no email)."""
    email = (email or "").strip() or None
    if email is not None and (len(email) > 120 or "@" not in email):
        raise ValidationFailed.on("email", _("请填写正确的邮箱地址。"))
    user.email = email
    audit("user.email", user, "set" if email else "cleared", user_id=user.id)
    db.session.flush()
    return user


def create_api_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token for the user. Returns the row and the token, which is never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed.on("name", _("请为令牌起一个名称（最多 80 个字符）。"))
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_token_hash(secret), prefix=secret[:12])
    db.session.add(token)
    db.session.flush()
    audit("api_token.create", token, f"{user.username}: {name}", user_id=user.id)
    return token, secret


def revoke_all_api_tokens(user: User, *, why: str) -> int:
    """End every live API token of the user (a new password, a deactivated account); recorded in the audit log."""
    result = db.session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                                .values(revoked_at=clock.now()).execution_options(synchronize_session=False))
    if result.rowcount:
        audit("api_token.revoke", user, f"{user.username}: all {result.rowcount} tokens, {why}")
    return result.rowcount


def api_tokens(user: User) -> list[tuple[ApiToken, datetime | None]]:
    """The user's live tokens, each with when it was last used."""
    tokens = db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                                .order_by(ApiToken.id))
    return [(token, token_last_used(token)) for token in tokens]


def revoke_api_token(user: User, token_id: int) -> None:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise ValidationFailed.on("token", _("没有这个令牌。"))
    token.revoked_at = clock.now()
    audit("api_token.revoke", token, f"{user.username}: {token.name}", user_id=user.id)
    db.session.flush()


def user_for_api_token(secret: str) -> User | None:
    """The active user a bearer token belongs to, or None. Reading only: when it was last used is noted in
    the shared cache (see `token_last_used`), never written to the database on a read."""
    if not secret or len(secret) > 200:
        return None
    found = db.session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                               .options(joinedload(User.organization))  # the same statement: orders name it
                               .where(ApiToken.token_hash == _token_hash(secret))).first()
    if found is None:
        return None
    token, user = found
    if token.revoked_at is not None or not user.active:
        return None
    cache.set(f"api-token-used:{token.id}", clock.now().isoformat(), timeout=TOKEN_USE_MEMORY)
    return user


TOKEN_USE_MEMORY = 90 * 24 * 3600  # how long the cache remembers a token's last use


def token_last_used(token: ApiToken):
    """When a token was last used: the cache's note, else the time kept on the row."""
    noted = cache.get(f"api-token-used:{token.id}")
    if noted:
        return datetime.fromisoformat(noted)
    return token.last_used_at


# --- request keys: a request made twice has one effect -----------------------------------------------

REQUEST_KEY_DAYS = 2  # keys are kept at least a day (two, to be sure)


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def claim_request_key(user_id: int, key: str, fingerprint_: str) -> RequestKey | None:
    """Claim a key for this request, in the request's own transaction — or None if another request has it
    (a concurrent one waits here until that one commits or rolls back)."""
    db.session.execute(delete(RequestKey).where(RequestKey.user_id == user_id,
                                                RequestKey.created_at < clock.now() - timedelta(days=REQUEST_KEY_DAYS)))
    claimed = db.session.execute(insert_ignoring_conflicts(RequestKey.__table__).values(
        user_id=user_id, key=key, fingerprint=fingerprint_, created_at=clock.now())
        .returning(RequestKey.id)).first()
    return db.session.get(RequestKey, claimed[0]) if claimed else None


def record_answer(request_key: RequestKey, status_code: int, body: str) -> None:
    request_key.status_code, request_key.body = status_code, body
    db.session.flush()


def find_request_key(user_id: int, key: str) -> RequestKey | None:
    return db.session.scalar(select(RequestKey).where(RequestKey.user_id == user_id, RequestKey.key == key))

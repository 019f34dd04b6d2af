"""Settings, all read from the environment (README lists every one)."""
from __future__ import annotations

import ipaddress
import os
import secrets
import urllib.parse
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from limits import parse

from .clock import DEFAULT_TIMEZONE, check_zone

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_PATH = PROJECT_ROOT / "instance"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the shop refuses to start."""


def normalize_database_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` forms and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _int_env(env: dict, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool_env(env: dict, name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _limit_env(env: dict, name: str, default: str) -> str:
    """A rate limit as the limits library writes it ("10 per 15 minutes"), checked when the shop starts."""
    raw = env.get(name, "").strip() or default
    try:
        parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must read like '10 per 15 minutes', got {raw!r}") from exc
    return raw


def _development_secret_key(instance_path: Path, name: str = "secret_key", make=lambda: secrets.token_hex(32)) -> str:
    """Generated once and kept under instance/, so sessions (and sealed secrets) survive restarts."""
    path = instance_path / name
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _sealing_keys(env: dict, instance_path: Path, shop_env: str) -> tuple[str, ...]:
    """SHOP_SECRETS_KEY: Fernet keys, comma-separated — the first seals, every one unseals (so a new key goes
    first and the old one after it until `flask secrets rotate` has run). Generated under instance/ in
    development; in production the shop runs without one, but refuses to store a channel's password."""
    raw = env.get("SHOP_SECRETS_KEY", "").strip()
    if not raw:
        if shop_env == "production":
            return ()
        raw = _development_secret_key(instance_path, "secrets_key", lambda: Fernet.generate_key().decode())
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError("SHOP_SECRETS_KEY must hold Fernet keys (python -c 'from cryptography.fernet import "
                              "Fernet; print(Fernet.generate_key().decode())'), comma-separated") from exc
    return keys


def _base_url(env: dict) -> str:
    """SHOP_BASE_URL: where the shop is served (scheme and host, perhaps a path), without a trailing slash."""
    raw = env.get("SHOP_BASE_URL", "").strip().rstrip("/")
    if raw:
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"SHOP_BASE_URL must read like https://shop.example.cn, got {raw!r}")
    return raw


def _networks(env: dict, name: str) -> tuple:
    out = []
    for item in env.get(name, "").split(","):
        if item.strip():
            try:
                out.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(f"{name}: {item.strip()!r} is not a network (10.0.0.0/8, 192.168.1.5/32)") from exc
    return tuple(out)


def _hosts(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())


def load_config(instance_path: Path, env: dict | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    shop_env = env.get("SHOP_ENV", "development").strip() or "development"
    if shop_env not in {"development", "production"}:
        raise ConfigError(f"SHOP_ENV must be 'development' or 'production', got {shop_env!r}")

    secret_key = env.get("SECRET_KEY", "").strip()
    if not secret_key:
        if shop_env == "production":
            raise ConfigError("SECRET_KEY must be set when SHOP_ENV=production")
        secret_key = _development_secret_key(instance_path)

    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{instance_path / 'shop.sqlite3'}"
    https = _bool_env(env, "SHOP_HTTPS")

    session_hours = _int_env(env, "SHOP_SESSION_HOURS", 12, minimum=1, maximum=24 * 30)
    time_zone = env.get("SHOP_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        check_zone(time_zone)
    except ValueError as exc:
        raise ConfigError(f"SHOP_TIMEZONE: {exc}") from exc
    return {
        "SHOP_ENV": shop_env,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=session_hours),
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", "").strip() or None,
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", "").strip() or None,
        "REDIS_URL": env.get("REDIS_URL", "").strip() or None,
        "RATELIMIT_STORAGE_URI": env.get("REDIS_URL", "").strip() or "memory://",
        "RATELIMIT_KEY_PREFIX": env.get("SHOP_RATELIMIT_PREFIX", "shop"),
        "RATELIMIT_HEADERS_ENABLED": False,
        "SHOP_LOGIN_LIMIT_USER": _limit_env(env, "SHOP_LOGIN_LIMIT_USER", "10 per 15 minutes"),
        "SHOP_LOGIN_LIMIT_ADDRESS": _limit_env(env, "SHOP_LOGIN_LIMIT_ADDRESS", "50 per 15 minutes"),
        "SHOP_LOGIN_LIMIT_USER_ADDRESS": _limit_env(env, "SHOP_LOGIN_LIMIT_USER_ADDRESS", "10 per 15 minutes"),
        "SHOP_TRUSTED_PROXIES": _int_env(env, "SHOP_TRUSTED_PROXIES", 0, minimum=0, maximum=5),
        "SHOP_SERVICE_FEE_PERMILLE": _int_env(env, "SHOP_SERVICE_FEE_PERMILLE", 0, minimum=0, maximum=1000),
        "SHOP_HTTPS": https,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # the cookie is not signed and sent again on every page: a login ends at its own expiry (login_session)
        "SESSION_REFRESH_EACH_REQUEST": False,
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": https,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "MAX_CONTENT_LENGTH": _int_env(env, "SHOP_MAX_UPLOAD_MB", 8, minimum=1, maximum=200) * 1024 * 1024,
        "UPLOAD_FOLDER": str(instance_path / "uploads"),
        "PASSWORD_HASH_METHOD": "scrypt",
        "BABEL_DEFAULT_LOCALE": "zh",
        "BABEL_DEFAULT_TIMEZONE": time_zone,
        "SHOP_TIMEZONE": time_zone,
        "LANGUAGES": ("zh", "en"),
        "SHOP_SESSION_HOURS": session_hours,
        # the catalog's product grid (with the units in stock) is rendered at most this often; 0 turns it off
        "SHOP_CATALOG_CACHE_SECONDS": _int_env(env, "SHOP_CATALOG_CACHE_SECONDS", 5, minimum=0, maximum=300),
        "SHOP_RESERVATION_MINUTES": _int_env(env, "SHOP_RESERVATION_MINUTES", 30, minimum=30, maximum=24 * 60),
        "SHOP_OFFLINE_HOLD_HOURS": _int_env(env, "SHOP_OFFLINE_HOLD_HOURS", 48, minimum=1, maximum=24 * 14),
        # welfare grants (工会福利): at most this much granted to one member, and by one unit, per year (0: no cap)
        "SHOP_WELFARE_MEMBER_YEAR_CAP_FEN": _int_env(env, "SHOP_WELFARE_MEMBER_YEAR_CAP_FEN", 200_000, minimum=0),
        "SHOP_WELFARE_UNIT_YEAR_CAP_FEN": _int_env(env, "SHOP_WELFARE_UNIT_YEAR_CAP_FEN", 0, minimum=0),
        "SHOP_WATCH_INCOME_LINE_FEN": _int_env(env, "SHOP_WATCH_INCOME_LINE_FEN", 50_000, minimum=0, maximum=10**9),
        "SHOP_WATCH_DROP_PERCENT": _int_env(env, "SHOP_WATCH_DROP_PERCENT", 30, minimum=1, maximum=100),
        "SHOP_WATCH_IDLE_DAYS": _int_env(env, "SHOP_WATCH_IDLE_DAYS", 60, minimum=1, maximum=3650),
        "SHOP_PAYOUT_EVERY_MONTHS": _int_env(env, "SHOP_PAYOUT_EVERY_MONTHS", 3, minimum=1, maximum=12),
        "SHOP_PAYOUT_DAY": _int_env(env, "SHOP_PAYOUT_DAY", 25, minimum=1, maximum=28),
        "SHOP_BASE_URL": _base_url(env),
        "SHOP_OUTBOUND_HOSTS": _hosts(env, "SHOP_OUTBOUND_HOSTS", ("qyapi.weixin.qq.com", "oapi.dingtalk.com")),
        "SHOP_OUTBOUND_ALLOW_NETWORKS": _networks(env, "SHOP_OUTBOUND_ALLOW_NETWORKS"),
        "SHOP_OUTBOUND_TIMEOUT": _int_env(env, "SHOP_OUTBOUND_TIMEOUT", 5, minimum=1, maximum=30),
        "SHOP_SMTP_CA_FILE": env.get("SHOP_SMTP_CA_FILE", "").strip() or None,
        "SHOP_SECRETS_KEY": _sealing_keys(env, instance_path, shop_env),
        "SHOP_CARD_LIMIT_ADDRESS": _limit_env(env, "SHOP_CARD_LIMIT_ADDRESS", "30 per 15 minutes"),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", "").strip() or None,
        "SHOP_STRIPE_WALLETS": tuple(w for w in (x.strip() for x in env.get("SHOP_STRIPE_WALLETS", "").split(","))
                                     if w in ("alipay", "wechat_pay")),
        "SHOP_STRIPE_MIN_FEN": _int_env(env, "SHOP_STRIPE_MIN_FEN", 400, minimum=1, maximum=10**9),
        "SHOP_EXPIRY_WARNING_DAYS": _int_env(env, "SHOP_EXPIRY_WARNING_DAYS", 3, minimum=0, maximum=365),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }

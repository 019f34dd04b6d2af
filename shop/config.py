"""Settings, all read from the environment (README lists every one)."""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

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


def _development_secret_key(instance_path: Path) -> str:
    """Generated once and kept under instance/, so sessions survive restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


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
        "SHOP_LOGIN_LIMIT_USER": env.get("SHOP_LOGIN_LIMIT_USER", "").strip() or "10 per 15 minutes",
        "SHOP_LOGIN_LIMIT_ADDRESS": env.get("SHOP_LOGIN_LIMIT_ADDRESS", "").strip() or "50 per 15 minutes",
        "SHOP_TRUSTED_PROXIES": _int_env(env, "SHOP_TRUSTED_PROXIES", 0, minimum=0, maximum=5),
        "SHOP_SERVICE_FEE_PERMILLE": _int_env(env, "SHOP_SERVICE_FEE_PERMILLE", 0, minimum=0, maximum=1000),
        "SHOP_HTTPS": https,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
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
        "SHOP_WATCH_INCOME_LINE_FEN": _int_env(env, "SHOP_WATCH_INCOME_LINE_FEN", 50_000, minimum=0, maximum=10**9),
        "SHOP_WATCH_DROP_PERCENT": _int_env(env, "SHOP_WATCH_DROP_PERCENT", 30, minimum=1, maximum=100),
        "SHOP_WATCH_IDLE_DAYS": _int_env(env, "SHOP_WATCH_IDLE_DAYS", 60, minimum=1, maximum=3650),
        "SHOP_PAYOUT_EVERY_MONTHS": _int_env(env, "SHOP_PAYOUT_EVERY_MONTHS", 3, minimum=1, maximum=12),
        "SHOP_PAYOUT_DAY": _int_env(env, "SHOP_PAYOUT_DAY", 25, minimum=1, maximum=28),
        "SHOP_BASE_URL": env.get("SHOP_BASE_URL", "").strip(),
        "SHOP_CARD_LIMIT_ADDRESS": env.get("SHOP_CARD_LIMIT_ADDRESS", "").strip() or "30 per 15 minutes",
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", "").strip() or None,
        "SHOP_STRIPE_WALLETS": tuple(w for w in (x.strip() for x in env.get("SHOP_STRIPE_WALLETS", "").split(","))
                                     if w in ("alipay", "wechat_pay")),
        "SHOP_STRIPE_MIN_FEN": _int_env(env, "SHOP_STRIPE_MIN_FEN", 400, minimum=1, maximum=10**9),
        "SHOP_EXPIRY_WARNING_DAYS": _int_env(env, "SHOP_EXPIRY_WARNING_DAYS", 3, minimum=0, maximum=365),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }

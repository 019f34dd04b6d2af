"""How often a login may fail: per username and per address, counted atomically in the limiter's storage
(Redis when REDIS_URL is set, so every worker shares the counts).

A username's attempts are counted *before* its password is checked, one slot each, so forty guesses at once
cost at most the limit's number of password checks; a correct password clears them. An address counts only
its failed attempts, and only refuses further failures: a correct password is never refused because others
behind the same address (a proxy, an office's NAT) got theirs wrong.
"""
from __future__ import annotations

from flask import current_app
from limits import parse

from ..extensions import limiter


def _items():
    config = current_app.config
    return parse(config["SHOP_LOGIN_LIMIT_USER"]), parse(config["SHOP_LOGIN_LIMIT_ADDRESS"]), config["RATELIMIT_KEY_PREFIX"]


def user_may_try(username: str) -> bool:
    """Take one of the username's attempts; False (nothing checked) when it has none left."""
    per_user, _per_address, prefix = _items()
    return limiter.limiter.hit(per_user, prefix, "login-user", _normal(username))


def succeeded(username: str) -> None:
    """A correct password: the username's failed attempts are forgotten."""
    per_user, _per_address, prefix = _items()
    limiter.limiter.clear(per_user, prefix, "login-user", _normal(username))


def address_may_fail(address: str | None) -> bool:
    """Count a failed attempt from an address; False when the address is over its limit."""
    _per_user, per_address, prefix = _items()
    return limiter.limiter.hit(per_address, prefix, "login-address", address or "unknown")


def card_address_may_fail(address: str | None) -> bool:
    """Count a wrong household-card PIN from an address (across all cards); False when over its limit."""
    limit = parse(current_app.config["SHOP_CARD_LIMIT_ADDRESS"])
    return limiter.limiter.hit(limit, current_app.config["RATELIMIT_KEY_PREFIX"], "card-address", address or "unknown")


def card_address_blocked(address: str | None) -> bool:
    limit = parse(current_app.config["SHOP_CARD_LIMIT_ADDRESS"])
    return not limiter.limiter.test(limit, current_app.config["RATELIMIT_KEY_PREFIX"], "card-address",
                                    address or "unknown")


def _normal(username: str) -> str:
    return (username or "").strip().lower()[:64]

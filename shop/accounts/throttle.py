"""How often a login may fail — counted in the limiter's storage (Redis when REDIS_URL is set, so every worker
shares the counts), each counter changed by one atomic increment.

Three counts, each over its window (SHOP_LOGIN_LIMIT_*, e.g. "50 per 15 minutes", the window starting at the
first failure):

* **per address** — failures from one address, whatever the usernames. Checked *before* any password is
  verified: an address over its limit has no password checked at all, so spraying many usernames from one
  address checks at most the limit's number of passwords.
* **per username and address** — failures for one username from one address. Also checked before the
  password: one address guessing one user's password gets the limit's number of checks.
* **per username** — failures for one username from every address. It never refuses on its own: past the
  limit, each further failure doubles a wait (1, 2, 4 … seconds, at most the window) that only addresses
  which have themselves failed for that username must sit out; the user and the admins are told once. So a
  correct password from an address that has not been failing for that user is always checked — nobody can
  lock anyone out, the coordinator included — while guessing from anywhere is slowed.

A slot is taken (incremented) before the password is checked and given back when the password was right, so
concurrent guesses cannot get more checks than the limit, and correct passwords cost nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from limits import parse

from ..extensions import limiter


class TooManyAttempts(Exception):
    """Refused before any password was checked; `wait` seconds until trying again makes sense."""

    def __init__(self, message: str, wait: int):
        super().__init__(message)
        self.message, self.wait = message, max(1, int(wait))


@dataclass
class Attempt:
    """One login attempt's slots in the counts, taken before its password is checked."""

    username: str
    address: str
    address_key: str
    pair_key: str
    user_key: str
    wait_key: str
    window: int


def _limit(name: str) -> tuple[int, int]:
    item = parse(current_app.config[name])
    return item.amount, item.get_expiry()


def _key(*parts: str) -> str:
    return "/".join((current_app.config["RATELIMIT_KEY_PREFIX"], "login", *parts))


def normal(username: str | None) -> str:
    return (username or "").strip().lower()[:64]


def begin(username: str | None, address: str | None) -> Attempt:
    """Take this attempt's slots before its password is checked; TooManyAttempts (having taken nothing) when
    the address, or this address for this username, is over its limit, or this address must wait."""
    storage = limiter.storage
    name, where = normal(username), (address or "unknown")[:64]
    per_address, address_window = _limit("SHOP_LOGIN_LIMIT_ADDRESS")
    per_pair, pair_window = _limit("SHOP_LOGIN_LIMIT_USER_ADDRESS")
    _per_user, user_window = _limit("SHOP_LOGIN_LIMIT_USER")
    attempt = Attempt(name, where, _key("address", where), _key("pair", name, where), _key("user", name),
                      _key("wait", name), user_window)
    if storage.incr(attempt.address_key, address_window) > per_address:
        storage.incr(attempt.address_key, address_window, amount=-1)
        raise TooManyAttempts(_("这个网络地址登录失败的次数过多，请 %(m)d 分钟后再试。", m=_minutes(address_window)),
                              _left(storage, attempt.address_key, address_window))
    failed_here = storage.incr(attempt.pair_key, pair_window)
    if failed_here > per_pair:
        _give_back(storage, attempt)
        raise TooManyAttempts(_("这个账号在这台设备上密码错误的次数过多，请 %(m)d 分钟后再试，或请管理员重设密码。",
                                m=_minutes(pair_window)), _left(storage, attempt.pair_key, pair_window))
    if failed_here > 1 and storage.get(attempt.wait_key):
        _give_back(storage, attempt)  # this address has failed for this user, and guessing is being slowed
        wait = _left(storage, attempt.wait_key, 1)
        raise TooManyAttempts(_("这个账号近期多次密码错误，为安全起见，请 %(s)d 秒后再试。", s=wait), wait)
    return attempt


def succeeded(attempt: Attempt) -> None:
    """The password was right: the slots are given back, and this address's failures for the user forgotten."""
    storage = limiter.storage
    _per_address, address_window = _limit("SHOP_LOGIN_LIMIT_ADDRESS")
    storage.incr(attempt.address_key, address_window, amount=-1)
    storage.clear(attempt.pair_key)


def failed(attempt: Attempt) -> int:
    """The password was wrong: the slots stay taken; count the failure against the username, and past its
    limit make addresses that failed for it wait twice as long as last time. Returns the username's failures
    in its window (the caller tells the user and the admins when it first reaches the limit)."""
    storage = limiter.storage
    per_user, user_window = _limit("SHOP_LOGIN_LIMIT_USER")
    count = storage.incr(attempt.user_key, user_window)
    if count >= per_user:
        wait = min(2 ** (count - per_user), user_window)
        storage.clear(attempt.wait_key)
        storage.incr(attempt.wait_key, wait)
    return count


def user_limit() -> int:
    return _limit("SHOP_LOGIN_LIMIT_USER")[0]


def counts(username: str, address: str) -> dict[str, int]:
    """The counts as they stand (for the admin's eyes and the tests)."""
    storage, name = limiter.storage, normal(username)
    return {"address": storage.get(_key("address", address)), "pair": storage.get(_key("pair", name, address)),
            "user": storage.get(_key("user", name))}


def _give_back(storage, attempt: Attempt) -> None:
    _per_address, address_window = _limit("SHOP_LOGIN_LIMIT_ADDRESS")
    _per_pair, pair_window = _limit("SHOP_LOGIN_LIMIT_USER_ADDRESS")
    storage.incr(attempt.address_key, address_window, amount=-1)
    storage.incr(attempt.pair_key, pair_window, amount=-1)


def _left(storage, key: str, default: int) -> int:
    return max(1, round(storage.get_expiry(key) - time.time())) if storage.get(key) else default


def _minutes(seconds: int) -> int:
    return max(1, seconds // 60)


# --- household cards --------------------------------------------------------------------------------------

def card_address_may_fail(address: str | None) -> bool:
    """Count a wrong household-card PIN from an address (across all cards); False when over its limit."""
    limit = parse(current_app.config["SHOP_CARD_LIMIT_ADDRESS"])
    return limiter.limiter.hit(limit, current_app.config["RATELIMIT_KEY_PREFIX"], "card-address", address or "unknown")


def card_address_blocked(address: str | None) -> bool:
    limit = parse(current_app.config["SHOP_CARD_LIMIT_ADDRESS"])
    return not limiter.limiter.test(limit, current_app.config["RATELIMIT_KEY_PREFIX"], "card-address",
                                    address or "unknown")

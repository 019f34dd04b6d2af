"""The one unit of work: every web view, API view and command that writes runs its service through `run`.

`run(work)` calls the service, commits once, and on anything that says "try again" — a deadlock or
serialization failure on PostgreSQL, a busy database on SQLite, a lost race the service detected
(`RetryTransaction`), or a connection that was lost or reset before the commit — rolls the whole
transaction back and runs it again, a few times, with jittered back-off. Anything else rolls back and
propagates: a domain refusal (`DomainError`) becomes the form's messages or the API's error body in the
caller, having changed nothing. Services only flush; nothing else in the shop commits or rolls back.

A connection lost *during* the commit is not retried: the commit may have happened. The API's idempotency
keys and the forms' one-time tokens make a client's own retry of such a request safe.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from .extensions import db

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# connection_exception (08…), admin/crash shutdown, cannot connect now: the server went away before we committed
DISCONNECT_SQLSTATES = {"57P01", "57P02", "57P03"}


class RetryTransaction(Exception):
    """Raised inside a unit of work when what it read is no longer true (a lost race)."""


class CommitFailed(Exception):
    """The connection was lost while committing: the work may or may not have been committed."""


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_disconnect(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    state = _sqlstate(exc) or ""
    return bool(exc.connection_invalidated) or state.startswith("08") or state in DISCONNECT_SQLSTATES


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, DBAPIError):
        if _sqlstate(exc) in RETRYABLE_SQLSTATES or is_disconnect(exc):
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
            return True
    return False


def run(work: Callable[[], T], *, attempts: int = 12) -> T:
    """Run ``work()`` and commit; on a retryable failure before the commit, roll back and run it again."""
    for attempt in range(1, attempts + 1):
        try:
            result = work()
        except Exception as exc:
            discard()
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying unit of work after %s (attempt %d)", type(exc).__name__, attempt)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
            continue
        try:
            db.session.commit()
        except Exception as exc:
            discard()
            if is_disconnect(exc):
                raise CommitFailed(str(exc)) from exc
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying unit of work after %s at commit (attempt %d)", type(exc).__name__, attempt)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
            continue
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def read(query: Callable[[], T], *, attempts: int = 5) -> T:
    """Run reads that come before a request's unit of work (who is asking, what they ask about); if the
    connection is lost or reset under them, they are read again on a fresh one."""
    for attempt in range(1, attempts + 1):
        try:
            return query()
        except DBAPIError as exc:
            discard()
            if not is_disconnect(exc) or attempt == attempts:
                raise
            log.info("reading again after a lost connection (attempt %d)", attempt)
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))
    raise AssertionError("unreachable")  # pragma: no cover


def read_only(query: Callable[[], T]) -> T:
    """`read`, then end the transaction the reads began: what comes next (a call to another server) runs with no
    transaction open."""
    try:
        return read(query)
    finally:
        discard()


def discard() -> None:
    """Roll back whatever the current unit left unfinished (a refusal, an error, the end of a request)."""
    try:
        db.session.rollback()
    except DBAPIError:  # the connection is gone: there is nothing left to roll back
        db.session.close()
        log.warning("the connection was lost; the session was closed instead of rolled back")


"""The caller's unit of work: one commit, retried when the database says "try again".

Concurrent checkouts may meet a deadlock or serialization failure on PostgreSQL, a busy
database on SQLite, or find that a lot they planned to take from was emptied in the
meantime. None of these is the user's problem: the whole transaction is rolled back and
run again (the service re-reads the stock), a few times, with jittered back-off.
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


class RetryTransaction(Exception):
    """Raised inside a unit of work when what it read is no longer true (a lost race)."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if sqlstate in RETRYABLE_SQLSTATES:
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
            return True
    return False


def commit_with_retry(work: Callable[[], T], *, attempts: int = 12) -> T:
    """Run ``work()`` and commit; on a retryable failure roll back and run it again."""
    for attempt in range(1, attempts + 1):
        try:
            result = work()
            db.session.commit()
            return result
        except Exception as exc:
            db.session.rollback()
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.info("retrying unit of work after %s (attempt %d)", type(exc).__name__, attempt)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
    raise AssertionError("unreachable")  # pragma: no cover

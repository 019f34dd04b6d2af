"""Running many actors at once against the real database, each in its own session and transaction."""
from __future__ import annotations

import threading
from typing import Callable

from shop.errors import DomainError
from shop.extensions import db


def race(app, actors: int, work: Callable[[int], object], *, timeout: float = 120) -> list[str]:
    """Start ``actors`` threads at the same instant; each runs ``work(n)`` as one unit of work (committed,
    retried on deadlocks and lost races). Returns each actor's outcome: "ok", the code of the domain error
    that refused it, or "error: …" for anything else (which a test should treat as a failure)."""
    from shop.unit_of_work import run as commit_with_retry

    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(actors)

    def actor(n: int) -> None:
        with app.app_context():
            try:
                start.wait()
                commit_with_retry(lambda: work(n))
                outcome = "ok"
            except DomainError as err:
                outcome = err.code
            except Exception as exc:  # noqa: BLE001 - reported to the test
                outcome = f"error: {exc!r}"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=actor, args=(n,)) for n in range(actors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    db.session.expire_all()
    errors = [o for o in outcomes if o.startswith("error")]
    assert not errors, errors[:3]
    assert len(outcomes) == actors, f"only {len(outcomes)} of {actors} actors finished"
    return outcomes

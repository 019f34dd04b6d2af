"""Idempotency-Key on the API's writes: the same request sent again — after a time-out, a lost connection, by
a client that retries — has one effect and gets the first answer back."""
import threading

import pytest
from sqlalchemy import event, func, select, text

from shop.accounts.models import RequestKey
from shop.extensions import db
from shop.inventory.models import Lot
from shop.orders.models import Order

ORDER = {"lines": [{"product_id": None, "quantity": 3}], "pickup_point_id": None, "payment_method": "offline"}


def _order_request(world):
    return {**ORDER, "lines": [{"product_id": world.eggs.id, "quantity": 3}], "pickup_point_id": world.point.id}


def _post(app, token, path, body, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = app.test_client().post("/api/v1" + path, json=body, headers=headers)
    return response.status_code, response.get_json(), response.headers


def test_the_same_key_replays_the_first_answer(app, api, world):
    token = api.token_for("staff01")
    first = _post(app, token, "/orders", _order_request(world), key="order-2026-12-01-a")
    again = _post(app, token, "/orders", _order_request(world), key="order-2026-12-01-a")
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first[2]
    assert db.session.scalar(select(func.count(Order.id))) == 1
    assert db.session.get(Lot, world.lot.id).reserved == 3
    other = _post(app, token, "/orders", _order_request(world), key="order-2026-12-01-b")  # a new key: a new order
    assert other[0] == 201 and other[1]["id"] != first[1]["id"]


def test_the_same_key_with_another_request_is_refused(app, api, world):
    token = api.token_for("staff01")
    assert _post(app, token, "/orders", _order_request(world), key="k-1")[0] == 201
    changed = {**_order_request(world), "lines": [{"product_id": world.eggs.id, "quantity": 4}]}
    status, body, _headers = _post(app, token, "/orders", changed, key="k-1")
    assert status == 422 and "Idempotency-Key" in body["error"]["fields"]
    assert db.session.scalar(select(func.count(Order.id))) == 1


def test_keys_are_per_user(app, api, world):
    first = _post(app, api.token_for("staff01"), "/orders", _order_request(world), key="shared")
    second = _post(app, api.token_for("staff02"), "/orders", _order_request(world), key="shared")
    assert first[0] == second[0] == 201 and first[1]["id"] != second[1]["id"]


def test_a_refused_request_keeps_no_key_and_may_be_sent_again(app, api, world):
    """The key is written in the same transaction as the effect: a refusal leaves neither."""
    token = api.token_for("staff01")
    too_many = {**_order_request(world), "lines": [{"product_id": world.eggs.id, "quantity": 31}]}
    assert _post(app, token, "/orders", too_many, key="retry-me")[0] == 409
    assert db.session.scalar(select(func.count(RequestKey.id))) == 0
    from tests.factories import receive

    receive(world.h2, world.manager, (world.eggs, 10))
    db.session.commit()
    status, body, _headers = _post(app, token, "/orders", too_many, key="retry-me")
    assert status == 201 and body["total_fen"] == 31 * 120


@pytest.mark.parametrize("key", ["", "x" * 256, "键", "a\tb"])
def test_a_malformed_key_is_a_422(app, api, world, key):
    status, body, _headers = _post(app, api.token_for("staff01"), "/orders", _order_request(world), key=key)
    assert status in (400, 422) and body["error"]["code"] in ("invalid", "bad_request")
    assert db.session.scalar(select(func.count(Order.id))) == 0


@pytest.mark.postgres_only
def test_ten_copies_of_one_request_at_once_make_one_order_and_ten_identical_answers(app, api, world):
    token = api.token_for("staff01")
    body = _order_request(world)
    answers, start = [], threading.Barrier(10)

    def client():
        with app.app_context():
            start.wait()
            answers.append(_post(app, token, "/orders", body, key="ten-at-once")[:2])
            db.session.remove()

    threads = [threading.Thread(target=client) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    db.session.expire_all()
    assert len(answers) == 10
    assert {status for status, _body in answers} == {201}
    assert len({str(sorted(answer.items())) for _status, answer in answers}) == 1
    assert db.session.scalar(select(func.count(Order.id))) == 1
    assert db.session.get(Lot, world.lot.id).reserved == 3


@pytest.mark.postgres_only
def test_a_connection_reset_after_the_commit_still_answers_with_the_order(app, api, world):
    """The answer is made inside the transaction that placed the order, so a connection that dies right after
    the commit — before anything else is read — cannot turn a placed order into an error."""
    token = api.token_for("staff01")
    request = _order_request(world)
    armed = {"after_commit": False}

    def after_commit(session):
        armed["after_commit"] = True

    def kill_next(conn, cursor, statement, parameters, context, executemany):
        if armed["after_commit"] and not statement.lstrip().upper().startswith(("ROLLBACK", "SELECT PG_TERMINATE")):
            armed["after_commit"] = False
            with db.engine.connect() as other:  # the server ends the request's connection, as a reset would
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": conn.connection.dbapi_connection.info.backend_pid})
                other.commit()

    event.listen(db.session, "after_commit", after_commit)  # (the test's own commits happened before this)
    event.listen(db.engine, "before_cursor_execute", kill_next)
    try:
        status, body, _headers = _post(app, token, "/orders", request, key="reset-after-commit")
    finally:
        event.remove(db.engine, "before_cursor_execute", kill_next)
        event.remove(db.session, "after_commit", after_commit)
    assert status == 201 and body["total_fen"] == 360
    assert armed["after_commit"], "the request read the database after its commit"
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == 1
    again = _post(app, token, "/orders", request, key="reset-after-commit")
    assert again[0] == 201 and again[1] == body


@pytest.mark.postgres_only
def test_requests_in_flight_during_connection_resets_are_retried_not_failed(app, api, world):
    """While the database drops every connection ten times a second, twenty buyers place orders: a connection
    lost before the commit is retried by the unit of work; one lost during the commit (or through every retry)
    is answered 503 and the client's retry with the same Idempotency-Key finds the order placed once — never
    two, never a 500."""
    token = api.token_for("staff01")
    body = {**_order_request(world), "lines": [{"product_id": world.eggs.id, "quantity": 1}]}
    engine, lot_id = db.engine, world.lot.id
    database = engine.url.database
    mine = db.session.connection().connection.dbapi_connection.info.backend_pid  # the test's own: spared
    results, start, done = [], threading.Barrier(21), threading.Event()

    def buyer(n):
        with app.app_context():
            start.wait()
            for _attempt in range(8):
                status, answer, _headers = _post(app, token, "/orders", body, key=f"reset-{n}")
                if status != 503:
                    break
            results.append((status, answer.get("id")))
            db.session.remove()

    def resets():
        start.wait()
        while not done.is_set():
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                                  "AND pid NOT IN (pg_backend_pid(), :mine) AND backend_type = 'client backend'"),
                             {"d": database, "mine": mine})
                conn.commit()
            done.wait(0.1)

    killer = threading.Thread(target=resets)
    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(20)]
    for thread in [killer, *threads]:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    done.set()
    killer.join(timeout=30)
    engine.dispose()
    db.session.remove()
    assert len(results) == 20 and {status for status, _id in results} == {201}, results
    assert len({order_id for _status, order_id in results}) == 20
    assert db.session.scalar(select(func.count(Order.id))) == 20
    assert db.session.get(Lot, lot_id).reserved == 20

"""The login limit holds across gunicorn workers when REDIS_URL is set (two workers, the local Redis)."""
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means no Redis to test with
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, database_url=None, **settings):
    """The shop under gunicorn with two workers and the local Redis; yields its base URL."""
    bin_dir = Path(sys.executable).parent
    prefix = f"test-{uuid.uuid4().hex}"
    env = {**os.environ, "SECRET_KEY": "rate-limit-test",
           "DATABASE_URL": database_url or f"sqlite:///{tmp_path}/shop.sqlite3",
           "REDIS_URL": REDIS, "SHOP_RATELIMIT_PREFIX": prefix, **settings}
    flask = [str(bin_dir / "flask"), "--app", "shop"]
    subprocess.run(flask + ["db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    for username, role in (("manager", "manager"), ("admin", "admin")):
        subprocess.run(flask + ["users", "create", username, "--role", role, "--name", username,
                                "--password", "a-good-password"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([str(bin_dir / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "shop:create_app()"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90  # workers boot slowly on a busy machine
    while True:
        try:
            if requests.get(base + "/healthz", timeout=10).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()
        time.sleep(0.3)
    server.prefix = prefix
    return server, base


def _login(base, username, password, client_address=None):
    browser = requests.Session()  # a new connection each time, so both workers take turns
    headers = {"Connection": "close"}
    if client_address:
        headers["X-Forwarded-For"] = client_address  # as the reverse proxy in front of the shop sends it
    page = browser.get(base + "/login", headers=headers, timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return browser.post(base + "/login", data={"csrf_token": token, "username": username, "password": password},
                        headers=headers, allow_redirects=False, timeout=30)


@pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS}: the shared limit needs one")
def test_failed_login_limit_is_shared_by_two_gunicorn_workers(tmp_path):
    server, base = _serve(tmp_path, SHOP_LOGIN_LIMIT_USER_ADDRESS="4 per 15 minutes")
    try:
        statuses = [_login(base, "manager", "wrong-password").status_code for _ in range(6)]
        assert statuses[:4] == [422] * 4
        assert statuses[4:] == [429, 429]
        assert "次数过多" in _login(base, "manager", "wrong-password").text
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS}: the shared limit needs one")
def test_behind_a_proxy_one_address_cannot_lock_everyone_out(tmp_path):
    """Behind nginx every request comes from the proxy; SHOP_TRUSTED_PROXIES=1 reads the client's address
    from X-Forwarded-For. Failures from one client stop that client only."""
    server, base = _serve(tmp_path, SHOP_TRUSTED_PROXIES="1", SHOP_LOGIN_LIMIT_ADDRESS="5 per 15 minutes",
                          SHOP_LOGIN_LIMIT_USER_ADDRESS="3 per 15 minutes")
    try:
        attacker = [_login(base, f"guess{n}", "wrong-password", "203.0.113.66").status_code for n in range(7)]
        assert attacker[:5] == [422] * 5 and attacker[5:] == [429, 429]
        assert _login(base, "manager", "wrong-password", "198.51.100.7").status_code == 422  # another client
        assert _login(base, "admin", "a-good-password", "198.51.100.7").status_code == 302
        assert _login(base, "manager", "a-good-password", "198.51.100.8").status_code == 302
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def throwaway_postgres():
    """An empty PostgreSQL database of its own for a served shop (the suite's database is the tests' own)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from shop.config import normalize_database_url

    server_url = make_url(normalize_database_url(url))
    name = f"shop_login_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS}: the shared limit needs one")
def test_guessing_and_spraying_against_two_workers_on_postgresql(tmp_path, throwaway_postgres):
    """PostgreSQL, two gunicorn workers, Redis, behind a proxy: 60 wrong passwords for the admin from address A
    get 10 password checks and then wait or are refused; the right password from address B logs in. Spraying
    200 usernames from address C checks exactly the address limit's number of passwords. The counts are exact."""
    import concurrent.futures

    import redis
    from sqlalchemy import create_engine, text

    server, base = _serve(tmp_path, throwaway_postgres, SHOP_TRUSTED_PROXIES="1",
                          SHOP_LOGIN_LIMIT_ADDRESS="50 per 15 minutes", SHOP_LOGIN_LIMIT_USER_ADDRESS="10 per 15 minutes",
                          SHOP_LOGIN_LIMIT_USER="10 per 15 minutes")
    engine = create_engine(throwaway_postgres.replace("postgresql://", "postgresql+psycopg://", 1))
    store = redis.Redis.from_url(REDIS)

    def failures_recorded() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM audit_event WHERE action = 'login.failed'")).scalar()

    def count(*parts: str) -> int:
        keys = store.keys(f"*{server.prefix}/login/{'/'.join(parts)}")
        return int(store.get(keys[0])) if keys else 0

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            guesses = list(pool.map(lambda n: _login(base, "admin", f"wrong-{n}", "203.0.113.10").status_code,
                                    range(60)))
        assert guesses.count(422) == 10 and guesses.count(429) == 50
        assert failures_recorded() == 10
        assert (count("pair", "admin", "203.0.113.10"), count("user", "admin")) == (10, 10)
        assert _login(base, "admin", "a-good-password", "198.51.100.20").status_code == 302

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            sprayed = list(pool.map(lambda n: _login(base, f"user{n:03d}", "Winter2026!", "203.0.113.30").status_code,
                                    range(200)))
        assert sprayed.count(422) == 50 and sprayed.count(429) == 150
        assert failures_recorded() == 10 + 50
        assert count("address", "203.0.113.30") == 50
        with engine.connect() as conn:  # the admin was told, once, that guessing at the password is slowed
            told = conn.execute(text("SELECT count(*) FROM notification n JOIN user_account u ON u.id = n.user_id "
                                     "WHERE n.event = 'login_failures'")).scalar()
        assert told == 1
    finally:
        engine.dispose()
        server.terminate()
        server.wait(timeout=10)

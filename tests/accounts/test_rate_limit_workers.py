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


@pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS}: the shared limit needs one")
def test_failed_login_limit_is_shared_by_two_gunicorn_workers(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "SECRET_KEY": "rate-limit-test", "DATABASE_URL": f"sqlite:///{tmp_path}/shop.sqlite3",
           "REDIS_URL": REDIS, "SHOP_RATELIMIT_PREFIX": f"test-{uuid.uuid4().hex}",
           "SHOP_LOGIN_LIMIT_USER": "4 per 15 minutes"}
    flask = [str(bin_dir / "flask"), "--app", "shop"]
    subprocess.run(flask + ["db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run(flask + ["users", "create", "manager", "--role", "manager", "--name", "管理员",
                            "--password", "a-good-password"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([str(bin_dir / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "shop:create_app()"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90  # workers boot slowly on a busy machine
        while True:
            try:
                if requests.get(base + "/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()
            time.sleep(0.3)
        statuses = []
        for _ in range(6):
            browser = requests.Session()  # a new connection each time, so both workers take turns
            page = browser.get(base + "/login", headers={"Connection": "close"}, timeout=30)
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
            response = browser.post(base + "/login", data={"csrf_token": token, "username": "manager",
                                                           "password": "wrong-password"},
                                    headers={"Connection": "close"}, allow_redirects=False, timeout=30)
            statuses.append(response.status_code)
        assert statuses[:4] == [422] * 4
        assert statuses[4:] == [429, 429]
        assert "尝试次数过多" in response.text
    finally:
        server.terminate()
        server.wait(timeout=10)

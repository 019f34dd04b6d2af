"""The factory, the settings, the health check, the error pages."""
import pytest

from shop import create_app
from shop.config import ConfigError, load_config, normalize_database_url
from tests.conftest import text_of


def test_secret_key_is_generated_once_and_kept_under_instance(tmp_path):
    first = load_config(tmp_path, {})["SECRET_KEY"]
    second = load_config(tmp_path, {})["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").read_text().strip() == first


def test_production_refuses_to_start_without_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(tmp_path, {"SHOP_ENV": "production"})
    assert load_config(tmp_path, {"SHOP_ENV": "production", "SECRET_KEY": "s3cret"})["SECRET_KEY"] == "s3cret"


def test_settings_come_from_the_environment(tmp_path):
    config = load_config(tmp_path, {
        "SECRET_KEY": "k", "DATABASE_URL": "postgres://u@db/shop", "STRIPE_SECRET_KEY": "sk_test_1",
        "STRIPE_WEBHOOK_SECRET": "whsec_1", "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SHOP_SERVICE_FEE_PERMILLE": "15", "SHOP_HTTPS": "1",
    })
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/shop"
    assert config["STRIPE_SECRET_KEY"] == "sk_test_1" and config["STRIPE_WEBHOOK_SECRET"] == "whsec_1"
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert config["SHOP_SERVICE_FEE_PERMILLE"] == 15
    assert config["SESSION_COOKIE_SECURE"] is True


def test_defaults(tmp_path):
    config = load_config(tmp_path, {"SECRET_KEY": "k"})
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    assert config["SHOP_SERVICE_FEE_PERMILLE"] == 0
    assert config["STRIPE_SECRET_KEY"] is None and config["REDIS_URL"] is None
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["SESSION_COOKIE_HTTPONLY"] and config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize("value", ["abc", "-1", "1001", "1.5"])
def test_bad_service_fee_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="SHOP_SERVICE_FEE_PERMILLE"):
        load_config(tmp_path, {"SECRET_KEY": "k", "SHOP_SERVICE_FEE_PERMILLE": value})


def test_database_url_forms():
    assert normalize_database_url("postgresql://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_database_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_database_url("sqlite:////x.db") == "sqlite:////x.db"


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_unreachable_database(tmp_path):
    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k"},
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/shop.sqlite3"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "error"}


def test_unknown_page_is_a_404_in_the_layout(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "页面不存在" in text_of(response) and "消费帮扶商城" in text_of(response)


def test_unknown_id_is_a_404(client, world):
    client.login("manager")
    assert client.get("/manage/households/999999").status_code == 404


def test_server_error_page_is_in_the_layout_and_logged(app, client, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    boom.access_rule = frozenset({"public"})
    response = client.get("/boom")
    assert response.status_code == 500
    assert "服务器出错了" in text_of(response)
    assert "kaboom" not in response.get_data(as_text=True)
    assert any("unhandled error" in r.message for r in caplog.records)


def test_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_asset_comes_from_the_internet(client, world):
    html = client.get("/").get_data(as_text=True)
    assert "http://" not in html.replace("http://shop.test", "") and "https://" not in html
    css = client.get("/static/vendor/pico/pico.green.min.css")
    assert css.status_code == 200


def test_content_security_policy_allows_no_inline_script(client, world):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    assert client.get("/").headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_templates_hold_no_inline_javascript():
    import re
    from pathlib import Path

    for template in Path(__file__).resolve().parent.parent.joinpath("templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert "javascript:" not in text, template


def test_hsts_and_secure_cookies_when_https_is_configured(tmp_path, database_url):
    from shop import create_app

    app = create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k", "SHOP_HTTPS": "1"},
                      "SQLALCHEMY_DATABASE_URI": database_url})
    response = app.test_client().get("/healthz", base_url="https://shop.test")
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_the_kept_header_carries_each_users_own_name_count_and_way_back(app, client, world):
    """The header is rendered once per role and language; what is a user's own goes into it on every page."""
    from shop.extensions import db
    from shop.notifications import services as notices

    world.staff2.display_name = '王<b>秀英</b>'
    db.session.commit()
    notices.notify([world.staff2], "ready_for_pickup", "order-1-ready", "你的订单已备好")
    db.session.commit()

    client.login("staff01")
    first = client.get("/?q=鸡蛋&x=1").get_data(as_text=True)
    assert ">康本树</summary>" in first and "data-unread" not in first
    assert "next=%2F%3Fq%3D%E9%B8%A1%E8%9B%8B%26x%3D1" in first  # the way back, encoded once
    client.logout()

    client.login("staff02")
    second = client.get("/").get_data(as_text=True)
    assert "康本树" not in second
    assert "王&lt;b&gt;秀英&lt;/b&gt;</summary>" in second and "<b>秀英" not in second
    assert 'data-unread>1<' in second
    assert second.count('name="csrf_token"') >= 1 and "\x00" not in second

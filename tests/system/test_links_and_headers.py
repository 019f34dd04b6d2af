"""Behind the README's nginx: the client's address and scheme come from the proxy, the host never does; every
printed or sent link is made from SHOP_BASE_URL when it is set; a household's own page sends no referrer."""
from __future__ import annotations

import pytest

from shop import create_app
from shop.producers import services as producers
from shop.unit_of_work import run

EVIL = {"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https",
        "Referer": "https://localhost/"}  # Flask-WTF checks the referrer of a form posted over HTTPS


@pytest.fixture
def proxied(app, database_url, tmp_path, world):
    """The shop as deployed behind one proxy, with or without SHOP_BASE_URL."""
    def make(base_url: str = ""):
        served = create_app({"INSTANCE_PATH": tmp_path / "proxied", "SQLALCHEMY_DATABASE_URI": database_url,
                             "ENVIRON": {"SECRET_KEY": "test-secret-key", "SHOP_TRUSTED_PROXIES": "1",
                                         "SHOP_BASE_URL": base_url},
                             "TESTING": True, "PASSWORD_HASH_METHOD": app.config["PASSWORD_HASH_METHOD"]})
        served.test_client_class = app.test_client_class
        return served
    return make


def _card_page(served, world) -> str:
    client = served.test_client()
    client.post("/login", data={"username": "manager", "password": "correct-horse-battery"}, headers=EVIL)
    return client.post(f"/manage/households/{world.h1.id}/card", data={}, headers=EVIL).get_data(as_text=True)


def test_a_forwarded_host_never_reaches_a_printed_link(proxied, world):
    page = _card_page(proxied(), world)
    assert "evil.example" not in page and "https://localhost/h/" in page  # the proxy's scheme, nginx's own Host


def test_printed_and_sent_links_come_from_the_base_url(proxied, world):
    page = _card_page(proxied("https://shop.xxc.example"), world)
    assert "evil.example" not in page and "https://shop.xxc.example/h/" in page
    served = proxied("https://shop.xxc.example")
    client = served.test_client()
    client.post("/login", data={"username": "manager", "password": "correct-horse-battery"}, headers=EVIL)
    label = client.get(f"/manage/lots/{world.lot.id}/label", headers=EVIL).get_data(as_text=True)
    assert "https://shop.xxc.example/t/" in label and "evil.example" not in label


def test_a_base_url_that_is_not_an_address_stops_the_shop_from_starting(tmp_path):
    from shop.config import ConfigError

    with pytest.raises(ConfigError):
        create_app({"INSTANCE_PATH": tmp_path, "ENVIRON": {"SECRET_KEY": "k", "SHOP_BASE_URL": "shop.example.cn"}})


def test_a_households_own_page_sends_no_referrer(app, client, world):
    card, pin = run(lambda: producers.issue_card(world.h1, user_id=world.manager.id))
    assert client.get(f"/h/{card.token}").headers["Referrer-Policy"] == "no-referrer"
    assert client.post(f"/h/{card.token}", data={"pin": pin}).headers["Referrer-Policy"] == "no-referrer"
    assert client.get(f"/h/{card.token}").headers["Referrer-Policy"] == "no-referrer"  # opened
    assert client.get("/h/not-a-card-at-all-xxxxxxxx").headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/").headers["Referrer-Policy"] == "same-origin"

"""Chinese first, English available, and no text left untranslated."""
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from tests.conftest import text_of

ROOT = Path(__file__).resolve().parent.parent


def test_pages_are_chinese_by_default(client, world):
    response = client.get("/")
    assert 'lang="zh-CN"' in response.get_data(as_text=True)
    assert "XX村的农产品" in text_of(response)


def test_english_can_be_chosen_and_sticks(client, world):
    response = client.get("/lang/en?next=/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    page = client.get("/")
    assert 'lang="en"' in page.get_data(as_text=True)
    text = text_of(page)
    assert "Produce of XX Village" in text and "Eggs" in text and "¥1.20" in text
    client.get("/lang/zh")
    assert "XX村的农产品" in text_of(client.get("/"))


def test_form_errors_come_in_the_chosen_language(client, world):
    client.get("/lang/en")
    response = client.post("/login", data={"username": "staff01", "password": "wrong-password"})
    assert "Wrong username or password." in text_of(response)


def test_unknown_language_and_offsite_next_are_ignored(client, world):
    response = client.get("/lang/fr?next=https://evil.example/")
    assert "evil.example" not in response.headers["Location"]
    assert 'lang="zh-CN"' in client.get("/").get_data(as_text=True)


def test_every_text_has_an_english_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(ROOT / "babel.cfg"),
                    "-k", "_l", "-k", "lazy_gettext", "-o", str(pot), "--no-location", "."],
                   check=True, cwd=ROOT, capture_output=True)
    wanted = {m.id for m in read_po(pot.open("rb")) if m.id}
    with (ROOT / "shop/translations/en/LC_MESSAGES/messages.po").open("rb") as fh:
        english = {m.id: m.string for m in read_po(fh) if m.id}
    missing = sorted(msgid for msgid in wanted if not english.get(msgid))
    assert not missing, f"run `make translations-update` and translate: {missing}"


def test_the_chosen_language_survives_login_and_logout(client, world):
    client.get("/lang/en")
    client.login("staff01")
    assert 'lang="en"' in client.get("/my").get_data(as_text=True)
    client.logout()
    assert 'lang="en"' in client.get("/").get_data(as_text=True)

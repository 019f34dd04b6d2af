"""The three main journeys in a real browser (Playwright driving Debian's Chromium), on a phone screen.

Each journey saves screenshots under test-artifacts/. Skipped, saying why, where Chromium is absent;
.ci/run installs it, so CI runs them.
"""
import re
import shutil
import socket
import threading
from datetime import datetime
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from shop.extensions import db
from tests.factories import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def live(app, backend, world):
    if backend != "sqlite":
        pytest.skip("the browser journeys run once, against SQLite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.config.update(SERVER_NAME=f"127.0.0.1:{port}", WTF_CSRF_SSL_STRICT=False)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


class Person:
    def __init__(self, browser, base: str, username: str, shots: Path, journey: str):
        self.page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
        self.base, self.shots, self.journey, self.n = base, shots, journey, 0
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.go("/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("main form button[type=submit]")

    def go(self, path: str):
        self.page.goto(self.base + path)

    def shot(self, name: str):
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.journey}-{self.n:02d}-{name}.png"), full_page=True)

    def text(self) -> str:
        return self.page.inner_text("main")


def test_staff_buys_eggs_on_a_phone_and_the_household_is_credited(live, browser, world, artifacts_dir):
    staff = Person(browser, live, "staff01", artifacts_dir, "staff")
    staff.go("/my")
    assert "李建国" in staff.text()  # the staff member reads their own households by full name
    staff.shot("home")
    staff.page.click("text=加入购物车")
    staff.go("/cart")
    staff.shot("cart")
    staff.page.click("button[name=place]")
    assert "待付款" in staff.text()
    staff.shot("order")
    order_url = staff.page.url

    manager = Person(browser, live, "manager", artifacts_dir, "staff")
    manager.page.goto(order_url)
    manager.page.fill("input[name=reference]", "R-2023-001")
    manager.page.click("text=登记收款")
    manager.page.click("text=标记已打包")
    manager.page.fill("input[name=handed_over_to]", "康本树")
    manager.page.click("form[action$='/hand-over'] button")
    assert "已交付" in manager.text()
    manager.shot("handed-over")
    manager.go(f"/manage/ledger/household/{world.h1.id}/statement")
    statement = manager.text()
    assert "散养土鸡蛋" in statement and "¥1.20" in statement and "县XX局" in statement
    manager.shot("statement")
    assert not staff.errors and not manager.errors  # no script errors, no blocked resources


def test_company_accepts_a_standing_broom_order_with_a_shortfall(live, browser, world, artifacts_dir):
    from tests.factories import receive
    from shop.contracts import services as contracts

    receive(world.h3, world.manager, (world.brooms, 500))
    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-浏览器", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=300, first_month="2020-01", last_month="2099-12", cap_fen=19_000_000,
        delivery_address="劲旅环卫城区作业站", delivery_day=5, payment_terms_days=30, status="active"),
        user_id=world.admin.id)
    month = f"{datetime.now():%Y-%m}"
    order = contracts.generate_for(contract, month).order
    db.session.commit()

    buyer = Person(browser, live, "buyer-jinlv", artifacts_dir, "company")
    buyer.go(f"/company/contracts/{contract.id}")
    assert month in buyer.text()
    buyer.shot("contract")
    manager = Person(browser, live, "manager", artifacts_dir, "company")
    manager.go("/manage/company-orders")
    manager.page.click("text=登记送货")
    manager.shot("delivered")
    buyer.go(f"/company/orders/{order.id}/accept")
    buyer.page.fill(f"input[name=accepted-{order.lines[0].id}]", "290")
    buyer.page.fill("textarea[name=note]", "10 把断柄")
    buyer.page.click("main form button[type=submit]")
    assert "已验收" in buyer.text()
    buyer.go(f"/companies/{world.jinlv.id}/statements/{month}")
    assert "¥1,595.00" in buyer.text()  # 290 × ¥5.50
    buyer.shot("statement")


def test_intake_label_and_traceability(live, browser, world, artifacts_dir):
    manager = Person(browser, live, "manager", artifacts_dir, "intake")
    manager.go(f"/manage/intake/household/{world.h2.id}")
    manager.page.select_option("select[name='rows-0-product_id']", str(world.peanuts.id))
    manager.page.fill("input[name='rows-0-quantity']", "40")
    manager.page.click("main form button[type=submit]")
    assert "收货单" in manager.text() and "40 斤" in manager.text()
    manager.shot("receipt")
    manager.page.click("text=打印标签")
    assert manager.page.locator(".qr svg").count() == 1
    manager.shot("label")
    link = manager.page.get_attribute("#trace-link", "href")
    assert re.search(r"/t/[\w-]{20,}$", link)
    visitor = browser.new_context(viewport=PHONE).new_page()
    visitor.goto(link)
    text = visitor.inner_text("main")
    assert "花生米" in text and "张**" in text and "张秀英" not in text
    visitor.screenshot(path=str(artifacts_dir / "intake-99-trace.png"), full_page=True)

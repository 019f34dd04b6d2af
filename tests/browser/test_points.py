"""The sales point's phone in a real browser: it loads and sells with no network, and every sale arrives once."""
import re

from playwright.sync_api import expect
from sqlalchemy import func, select

from shop.extensions import db
from shop.points.models import PointSale
from tests.browser.test_journeys import PHONE, browser, live  # noqa: F401 - the journeys' fixtures
from tests.factories import PASSWORD
from tests.points.helpers import season

SALES = [("12.3", "cash", 1845), ("5", "cash", 750), ("8.7", "grower_qr", 1305), ("10", "cash", 1500),
         ("0.4", "cash", 60)]


def _phone(browser, live, point_id):  # noqa: F811
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    page.goto(live + "/login")
    page.fill("#username", "op01")
    page.fill("#password", PASSWORD)
    page.click("main form button[type=submit]")
    page.goto(live + f"/op/points/{point_id}")
    page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
    expect(page.locator("#sell")).to_have_attribute("data-cached", "1")
    expect(page.locator("select[name=grower] option")).to_have_count(2)
    return context, page


def test_two_phones_sell_past_the_lot_offline_and_the_excess_is_flagged(live, browser, world):  # noqa: F811
    s = season(world, stock_tenths=1000)  # 100 斤 at the point
    phones = [_phone(browser, live, s.point.id) for _ in range(2)]
    for context, page in phones:
        context.set_offline(True)
        page.select_option("select[name=grower]", f"h{world.h1.id}")
        page.select_option("select[name=product]", str(s.melon.id))
        for _ in range(6):  # each phone sells 60 斤 of the 100: together 120
            page.fill("input[name=quantity]", "10")
            page.click("text=记一笔")
            expect(page.locator("input[name=quantity]")).to_have_value("")
        expect(page.locator("[data-waiting-count]")).to_have_text("6")
    for context, page in phones:
        context.set_offline(False)
        page.evaluate("window.dispatchEvent(new Event('online'))")
    for _context, page in phones:
        expect(page.locator("[data-waiting-count]")).to_have_text("0", timeout=15000)
    db.session.expire_all()
    statuses = dict(db.session.execute(select(PointSale.status, func.count()).group_by(PointSale.status)).all())
    assert statuses == {"recorded": 10, "flagged": 2}
    db.session.refresh(s.lot)
    assert s.lot.remaining == 0
    receipts = db.session.scalars(select(PointSale.receipt_number)).all()
    assert len(set(receipts)) == 12 and {r.split("-")[1] for r in receipts} == {"02", "03"}


def test_the_operator_sells_offline_and_every_sale_arrives_exactly_once(live, browser, world, artifacts_dir):  # noqa: F811
    s = season(world)
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live + "/login")
    page.fill("#username", "op01")
    page.fill("#password", PASSWORD)
    page.click("main form button[type=submit]")
    assert "我的销售点" in page.inner_text("main")
    page.goto(live + f"/op/points/{s.point.id}")
    page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
    expect(page.locator("#sell")).to_have_attribute("data-cached", "1")
    expect(page.locator("[data-device-code]")).to_have_text("-02")  # the phone got its own code
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)  # claimed: it serves reloads

    context.set_offline(True)
    page.reload()  # no network: the service worker serves the page, IndexedDB the point's data
    expect(page.locator("select[name=grower] option")).to_have_count(2)
    expect(page.locator("[data-net]")).to_contain_text("离线")
    page.select_option("select[name=grower]", f"h{world.h1.id}")
    page.select_option("select[name=product]", str(s.melon.id))
    for weight, payment, _fen in SALES:
        page.fill("input[name=quantity]", weight)
        if weight == "12.3":
            expect(page.locator("[data-amount]")).to_have_text("¥18.45")
        page.check(f"input[name=payment][value={payment}]")
        page.click("text=记一笔")
        expect(page.locator("input[name=quantity]")).to_have_value("")
    expect(page.locator("[data-waiting-count]")).to_have_text("5")
    assert db.session.scalar(select(func.count(PointSale.id))) == 0
    page.screenshot(path=str(artifacts_dir / "point-01-offline.png"), full_page=True)

    told = []
    page.on("dialog", lambda dialog: (told.append(dialog.message), dialog.dismiss()))
    page.click("header summary:has-text('赵大姐')")
    page.click("text=退出登录")
    page.wait_for_timeout(500)
    assert told and "5 笔销售没有上传" in told[0]  # it refuses to log out while sales wait
    page.click("header summary:has-text('赵大姐')")  # close the menu again

    context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("[data-waiting-count]")).to_have_text("0", timeout=15000)
    db.session.expire_all()
    amounts = sorted(db.session.scalars(select(PointSale.amount_fen).where(PointSale.status == "recorded")).all())
    assert amounts == sorted(fen for _w, _p, fen in SALES)
    page.screenshot(path=str(artifacts_dir / "point-02-sent.png"), full_page=True)

    # the same batch sent again (as after a time-out): nothing new
    page.evaluate("""() => new Promise(done => {
        const open = indexedDB.open('shop-point-sales', 1);
        open.onsuccess = () => {
          const t = open.result.transaction('sales', 'readwrite'), store = t.objectStore('sales');
          store.getAll().onsuccess = e => e.target.result.forEach(s => { s.state = 'waiting'; store.put(s); });
          t.oncomplete = done;
        };
    })""")
    page.click("text=立即上传")
    expect(page.locator("[data-waiting-count]")).to_have_text("0", timeout=15000)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(PointSale.id))) == 5
    assert not [e for e in errors if "Failed to load resource" not in e]


def test_waiting_sales_are_kept_warned_about_and_exported_for_the_manager(live, browser, world, app):  # noqa: F811
    """The phone asks the browser to keep its data and says whether it will; while sales wait, leaving the page
    asks first; the waiting sales can be exported as a file, which the manager imports once."""
    import io
    import json
    from pathlib import Path

    s = season(world)
    context, page = _phone(browser, live, s.point.id)
    expect(page.locator("[data-persist]")).to_have_attribute("data-persisted", re.compile("^[01]$"))
    assert page.locator("[data-persist]").inner_text().strip()
    expect(page.locator("[data-export]")).to_be_hidden()
    context.set_offline(True)
    page.select_option("select[name=grower]", f"h{world.h1.id}")
    page.select_option("select[name=product]", str(s.melon.id))
    for weight in ("12.3", "4"):
        page.fill("input[name=quantity]", weight)
        page.click("text=记一笔")
        expect(page.locator("input[name=quantity]")).to_have_value("")
    expect(page.locator("[data-waiting-count]")).to_have_text("2")
    with page.expect_download() as download:
        page.click("text=导出待上传的销售")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["format"] == "shop-point-sales" and exported["point_id"] == s.point.id
    assert sorted(sale["amount_fen"] for sale in exported["sales"]) == [600, 1845]
    expect(page.locator("[data-export-done]")).to_contain_text("已导出 2 笔")

    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]

    client = app.test_client()
    client.login("manager")
    for _ in range(2):
        client.post(f"/manage/points/{s.point.id}/import", content_type="multipart/form-data",
                    data={"import-file": (io.BytesIO(json.dumps(exported).encode()), "sales.json")})
    db.session.expire_all()
    assert db.session.scalar(select(func.count(PointSale.id))) == 2
    context.close()

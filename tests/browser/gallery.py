"""The phone gallery (`make gallery`): the main pages of each role on a 390 × 844 screen, over the demo village as
`make run` loads it, saved to docs/gallery/ with docs/gallery.md listing them. Run after a change to a main page's
layout; the README links the gallery."""
from __future__ import annotations

import logging
import socket
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from shop import create_app, demo, unit_of_work
from tests.browser.test_journeys import CHROMIUM, PHONE

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "gallery"

# (file, who, path, what it shows); ids are looked up in the demo by `_path`
PAGES = [
    ("01-catalog", None, "/", "商品目录：谁都能看，按品类筛选"),
    ("02-staff-home", "staff01", "/my", "帮扶责任人：我的包保户、它们现有的货、近 12 个月的收入"),
    ("03-cart", "staff01", "/cart", "购物车：数量即所见，合计始终在屏幕底部"),
    ("04-manager-today", "manager", "/manage/today", "服务点：今日工作，八个数字两列排开"),
    ("05-orders", "manager", "/manage/orders?status=all", "订单：在全部订单中查找"),
    ("06-picklist", "manager", "/manage/orders/picklist", "拣货单：数量和订单数不出屏"),
    ("07-stock", "manager", "/manage/stock", "库存：称重商品以斤计，表格可左右滑动"),
    ("08-statement", "manager", "{statement}", "农户对账单：每笔销售写订单号"),
    ("09-watch", "manager", "/manage/watch", "防止返贫监测：只列出数据显示有风险的几户"),
    ("10-sell", "op01", "{sell}", "销售点手机页：离线也能卖，称重计价"),
    ("11-day-close", "op01", "{close}", "日结：清点现金，分户销售单"),
    ("12-company", "buyer-jinlv", "/company", "环卫公司：合同、待验收、对账单"),
    ("13-bulk", "buyer-jinlv", "/company/bulk", "批量订购：数量框在屏幕内"),
    ("14-report", "admin", "/admin/report", "消费帮扶统计：近 12 个月，按品类分单位合计"),
    ("15-summary", "admin", "/admin/report/summary", "年度总结：可直接复制的句子"),
]


def _ids() -> dict[str, str]:
    from sqlalchemy import select

    from shop.extensions import db
    from shop.points.models import PointOperator, SalesPoint
    from shop.producers.models import Household

    grower = db.session.scalar(select(Household).where(Household.code == "XXC008"))
    point = db.session.scalar(select(SalesPoint).join(PointOperator).where(PointOperator.user.has(username="op01"))
                              .order_by(SalesPoint.last_day.desc()))
    return {"statement": f"/manage/ledger/household/{grower.id}/statement", "sell": f"/op/points/{point.id}",
            "close": f"/op/points/{point.id}/close"}


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="gallery-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app({"INSTANCE_PATH": folder, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'shop.sqlite3'}",
                      "ENVIRON": {"SECRET_KEY": "gallery"}, "SERVER_NAME": f"127.0.0.1:{port}"})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        unit_of_work.run(demo.load)
        ids = _ids()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# The shop on a phone", "",
             "The main pages of each role at 390 × 844, over the demo village (`make gallery` takes them again).", ""]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        contexts = {}
        for name, who, path, caption in PAGES:
            if who not in contexts:
                context = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=1)
                page = context.new_page()
                if who:
                    page.goto(base + "/login")
                    page.fill("#username", who)
                    page.fill("#password", demo.DEMO_PASSWORD)
                    page.click("main form button[type=submit]")
                contexts[who] = page
            page = contexts[who]
            page.goto(base + path.format(**ids))
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / f"{name}.png"))
            lines += [f"## {caption}", "", f"`{path.format(**ids)}` as {who or 'a visitor'}", "",
                      f"![{caption}](gallery/{name}.png)", ""]
        browser.close()
    (ROOT / "docs" / "gallery.md").write_text("\n".join(lines), encoding="utf-8")
    server.shutdown()
    print(f"{len(PAGES)} pages in {OUT}")


if __name__ == "__main__":
    main()

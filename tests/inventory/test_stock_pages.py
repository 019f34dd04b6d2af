"""Intake, stock pages, labels and the public traceability page."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop import clock
from shop.inventory.models import Intake, Lot, StockMovement
from tests.conftest import text_of
from tests.factories import receive


def intake_rows(*rows, note=""):
    data = {"note": note}
    for i in range(5):
        product_id, quantity, best_before = rows[i] if i < len(rows) else ("", "", "")
        data[f"rows-{i}-product_id"] = str(product_id)
        data[f"rows-{i}-quantity"] = str(quantity)
        data[f"rows-{i}-best_before"] = str(best_before)
    return data


def counts():
    return (db.session.scalar(select(func.count(Lot.id))), db.session.scalar(select(func.count(StockMovement.id))),
            db.session.scalar(select(func.count(Intake.id))))


def test_one_visit_with_several_products_and_a_receipt_to_sign(client, world):
    client.login("manager")
    soon = clock.today() + timedelta(days=10)
    response = client.post(f"/manage/intake/household/{world.h2.id}",
                           data=intake_rows((world.eggs.id, 60, soon.isoformat()), (world.peanuts.id, 25, "")))
    assert response.status_code == 302
    visit = db.session.scalars(select(Intake).order_by(Intake.id.desc())).first()
    assert [(lot.product_id, lot.quantity_received, lot.remaining) for lot in visit.lots] == [
        (world.eggs.id, 60, 60), (world.peanuts.id, 25, 25)]
    receipt = text_of(client.get(response.headers["Location"]))
    assert "张秀英" in receipt and "散养土鸡蛋" in receipt and "60 枚" in receipt and "25 斤" in receipt
    assert "供货方签字" in receipt


def test_supplier_search_by_name_code_or_enterprise(client, world):
    client.login("manager")
    assert "李建国" in text_of(client.get("/manage/intake?q=李"))
    assert "刘德明" in text_of(client.get("/manage/intake?q=XXC003"))
    assert "种植专业合作社" in text_of(client.get("/manage/intake?q=合作社"))


def test_enterprise_intake(client, world):
    client.login("manager")
    response = client.post(f"/manage/intake/enterprise/{world.enterprise.id}", data=intake_rows((world.peanuts.id, 100, "")))
    assert response.status_code == 302
    lot = db.session.scalars(select(Lot).order_by(Lot.id.desc())).first()
    assert lot.enterprise_id == world.enterprise.id and lot.household_id is None


@pytest.mark.parametrize("row,message", [
    (("EGGS", 0, ""), None),
    (("EGGS", -5, ""), None),
    (("EGGS", "2.5", ""), None),
    (("EGGS", "十", ""), None),
    (("EGGS", 10**8, ""), None),
    (("99999", 5, ""), "未知的商品"),
    (("RETIRED", 5, ""), "已下架"),
    (("EGGS", 5, "2020-01-01"), "保质期不能早于入库日期"),
    (("EGGS", 5, "someday"), None),
    (("EGGS", "", ""), "请同时选择商品并填写数量"),
    (("", 5, ""), "请同时选择商品并填写数量"),
])
def test_bad_intake_rows_change_nothing(client, world, row, message):
    client.login("manager")
    product_id = {"EGGS": world.eggs.id, "RETIRED": world.retired.id}.get(row[0], row[0])
    before = counts()
    response = client.post(f"/manage/intake/household/{world.h1.id}",
                           data=intake_rows((world.peanuts.id, 5, ""), (product_id, row[1], row[2])))
    assert response.status_code == 422
    if message:
        assert message in text_of(response)
    assert counts() == before


def test_nothing_to_take_in_is_refused(client, world):
    client.login("manager")
    before = counts()
    response = client.post(f"/manage/intake/household/{world.h1.id}", data=intake_rows())
    assert response.status_code == 422 and "请至少填写" in text_of(response)
    assert counts() == before


def test_unknown_supplier_kind_or_id_is_a_404(client, world):
    client.login("manager")
    assert client.get(f"/manage/intake/village/{world.h1.id}").status_code == 404
    assert client.get("/manage/intake/household/99999").status_code == 404


def test_adjustment_through_the_lot_page(client, world):
    client.login("manager")
    response = client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "spoiled", "quantity": "4", "note": "坏了"})
    assert response.status_code == 302
    db.session.refresh(world.lot)
    assert world.lot.remaining == 26
    page = text_of(client.get(f"/manage/lots/{world.lot.id}"))
    assert "变质" in page and "-4" in page and "服务点管理员" in page
    response = client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "damaged", "quantity": "27"})
    assert response.status_code == 422 and "剩余 26" in text_of(response)
    response = client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "count_correction", "quantity": "-26"})
    assert response.status_code == 302
    db.session.refresh(world.lot)
    assert world.lot.remaining == 0


def test_stock_overview_low_stock_and_expiring(client, world):
    client.login("manager")
    receive(world.h3, world.manager, (world.peanuts, 8, clock.today() + timedelta(days=2)))
    db.session.commit()
    response = client.post(f"/manage/stock/products/{world.peanuts.id}/threshold", data={"low_stock_threshold": "10"})
    assert response.status_code == 302
    page = text_of(client.get("/manage/stock?low=1"))
    assert "花生米" in page and "低库存" in page and "散养土鸡蛋" not in page
    page = text_of(client.get("/manage/stock?days=3"))
    assert "3 天内到期的批次" in page and "刘德明" in page
    assert "刘德明" not in text_of(client.get("/manage/stock?days=1")).split("天内到期的批次")[1]


def test_household_movement_history(client, world):
    client.login("manager")
    page = text_of(client.get(f"/manage/households/{world.h1.id}/stock"))
    assert "散养土鸡蛋" in page and "入库" in page and "+30" in page


def test_label_has_a_qr_code_pointing_at_the_trace_page(client, world):
    client.login("manager")
    html = client.get(f"/manage/lots/{world.lot.id}/label").get_data(as_text=True)
    assert "<svg" in html
    link = re.search(r'id="trace-link">([^<]+)<', html).group(1)
    assert link.endswith(f"/t/{world.lot.token}")
    client.logout()
    page = text_of(client.get(link.replace("http://shop.test", "")))
    assert "散养土鸡蛋" in page and "XX村" in page and "李**" in page


def test_trace_page_shows_nothing_private(client, world):
    html = client.get(f"/t/{world.lot.token}").get_data(as_text=True)
    assert "李**" in html
    for private in ("李建国", "13812341234", "XXC001", "脱贫户", "alleviated", "康本树"):
        assert private not in html
    assert client.get("/t/not-a-token").status_code == 404
    assert client.get(f"/t/{world.lot.id}").status_code == 404  # ids are not tokens


def test_tokens_are_unguessable(world):
    assert len(world.lot.token) >= 24 and not world.lot.token.isdigit()


def test_catalog_and_product_pages_show_what_can_be_bought_now(client, world):
    receive(world.h2, world.manager, (world.eggs, 12))
    from datetime import datetime

    receive(world.h3, world.manager, (world.eggs, 5, clock.today() - timedelta(days=1)),
            received_at=datetime.utcnow() - timedelta(days=10))  # taken in ten days ago, expired yesterday
    db.session.commit()
    catalog = text_of(client.get("/"))
    assert "现货 42 枚" in catalog and "暂时缺货" in catalog  # peanuts have none
    page = client.get(f"/products/{world.eggs.id}")
    text = text_of(page)
    assert "现货 42 枚" in text
    assert "李** · 30 枚" in text and "张** · 12 枚" in text
    assert "刘**" not in text  # expired lots are not stock on hand
    html = page.get_data(as_text=True)
    assert "李建国" not in html and "监测户" not in html and "脱贫户" not in html


def test_admin_can_look_but_not_touch(client, world):
    client.login("admin")
    assert client.get("/manage/stock").status_code == 200
    assert client.get(f"/manage/lots/{world.lot.id}").status_code == 200
    assert client.post(f"/manage/lots/{world.lot.id}/adjust", data={"reason": "spoiled", "quantity": "1"}).status_code == 403
    db.session.refresh(world.lot)
    assert world.lot.remaining == 30

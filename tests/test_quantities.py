"""A weighed quantity is tenths in the database and 12.3 斤 everywhere people read it: every page and export that
shows a weighed product's quantity, checked for the figure — and never the tenths, nor a total across units."""
from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from shop.extensions import db
from shop.formatting import Measure, format_quantity, quantity_totals
from shop.points.models import PointSale
from tests.conftest import text_of
from tests.points.helpers import sale, season, send

BROUGHT, SOLD = 98765, 123          # tenths of a 斤: 9,876.5 斤 brought to the point, 12.3 斤 sold
LEFT = BROUGHT - SOLD               # 9,864.2 斤


def test_the_one_formatter():
    jin, ba = Measure("斤", 10), Measure("把", 1)
    assert format_quantity(123, jin) == "12.3 斤" and format_quantity(2697695, jin) == "269,769.5 斤"
    assert format_quantity(-4, jin) == "-0.4 斤" and format_quantity(1200, ba) == "1,200 把"
    assert format_quantity(123, jin, unit=False) == "12.3"
    assert quantity_totals([(300, ba), (90, Measure("枚")), (365, jin), (5, ba)]) == "305 把 · 90 枚 · 36.5 斤"


@pytest.fixture
def weighed(world, client):
    s = season(world, stock_tenths=BROUGHT)
    client.login("op01")
    sold = sale(s, SOLD)
    assert send(client, s, sold).get_json()["results"][0]["status"] == "recorded"
    client.logout()
    s.order_id = db.session.scalar(select(PointSale.order_id).where(PointSale.client_id == sold["id"]))
    return s


def _pages(world, s) -> dict[str, tuple[str, str]]:
    """(who, url) → the figure each must show."""
    h1, lot = world.h1.id, s.lot.id
    return {
        "stock": ("manager", "/manage/stock", "9,864.2 斤"),
        "lot": ("manager", f"/manage/lots/{lot}", "9,864.2 斤"),
        "lot received": ("manager", f"/manage/lots/{lot}", "9,876.5 斤"),
        "product lots": ("manager", f"/manage/stock/products/{s.melon.id}", "9,864.2 斤"),
        "household stock": ("manager", f"/manage/households/{h1}/stock", "9,864.2 斤"),
        "order": ("manager", f"/orders/{s.order_id}", "12.3 斤"),
        "receipt": ("manager", f"/orders/{s.order_id}/receipt", "12.3 斤"),
        "refund form": ("manager", f"/manage/orders/{s.order_id}/refund", "12.3 斤"),
        "supplier ledger": ("manager", f"/manage/ledger/household/{h1}", "12.3 斤"),
        "statement": ("manager", f"/manage/ledger/household/{h1}/statement", "12.3 斤"),
        "watch list": ("manager", "/manage/watch", "9,864.2 斤"),
        "arrivals": ("op01", f"/op/points/{s.point.id}/arrivals", "9,864.2 斤"),
        "day sheet": ("op01", f"/op/points/{s.point.id}/close", "12.3 斤"),
        "staff home": ("staff01", "/my", "9,864.2 斤"),
        "report": ("admin", "/admin/report", "12.3 斤"),
    }


def test_every_page_that_shows_a_weighed_quantity_shows_it_in_jin(app, world, weighed):
    app.config["SHOP_WATCH_INCOME_LINE_FEN"] = 10**8  # h1 on the watch list, with its stock
    for name, (who, url, figure) in _pages(world, weighed).items():
        client = app.test_client()
        client.login(who)
        page = text_of(client.get(url))
        assert figure in page, (name, url, page[:600])
        for raw in (f"{BROUGHT}", f"{LEFT}", f"{SOLD} 斤", "9864.2斤", "0.1斤"):
            assert raw not in page, (name, url, raw)


def test_every_export_writes_a_weighed_quantity_as_its_weight(app, client, world, weighed):
    from decimal import Decimal

    client.login("admin")
    for name in ("categories", "products", "lines"):
        rows = list(csv.reader(io.StringIO(client.post(f"/admin/report/export/{name}.csv", data={})
                                           .get_data().decode("utf-8-sig"))))
        melon = next(r for r in rows if "斤" in r)
        assert "12.3" in melon and str(SOLD) not in melon and "0.1斤" not in melon, (name, rows[0], melon)
        sheet = load_workbook(io.BytesIO(client.post(f"/admin/report/export/{name}.xlsx", data={}).data)).active
        cells = [c for row in sheet.iter_rows(values_only=True) if "斤" in row for c in row]
        assert Decimal("12.3") in cells or 12.3 in cells, (name, cells)
    client.logout()
    client.login("manager")
    book = load_workbook(io.BytesIO(client.post(f"/manage/ledger/household/{world.h1.id}/statement.xlsx",
                                                data={}).data)).active
    assert any(c == Decimal("12.3") or c == 12.3 for row in book.iter_rows(values_only=True) for c in row)
    app.config["SHOP_WATCH_INCOME_LINE_FEN"] = 10**8
    watch = client.post("/manage/watch/export.csv", data={}).get_data().decode("utf-8-sig")
    assert "9,864.2 斤" in watch and str(LEFT) not in watch


def test_a_delivery_note_totals_per_unit_never_across_units(app, client, world):
    from shop.contracts import services as contracts
    from tests.factories import receive

    receive(world.h3, world.manager, (world.brooms, 5))
    order = contracts.request_bulk_order(world.buyer, [(world.eggs.id, 20), (world.brooms.id, 1)])
    db.session.commit()
    client.login("manager")
    assert client.post(f"/manage/orders/{order.id}/confirm", data={}).status_code in (302, 303)
    note = text_of(client.get(f"/orders/{order.id}/delivery-note"))
    assert "合计 20 枚 · 1 把" in note and "合计 21" not in note

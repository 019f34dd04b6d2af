"""The public catalog and the manager's product and pickup-point pages."""
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from shop.catalog.models import PickupPoint, Product
from shop.extensions import db
from tests.conftest import text_of


def product_form(**overrides):
    data = {"name": "绿豆", "category": "mung_beans", "unit": "斤", "price": "8.50", "description": "明绿豆",
            "season_start_month": "", "season_end_month": "", "active": "y"}
    data.update(overrides)
    return data


def products() -> int:
    return db.session.scalar(select(func.count(Product.id)))


def test_catalog_filters_by_category_and_search(client, world):
    page = text_of(client.get("/?category=eggs"))
    assert "散养土鸡蛋" in page and "花生米" not in page
    page = text_of(client.get("/?q=花生"))
    assert "花生米" in page and "散养土鸡蛋" not in page
    page = text_of(client.get("/?category=nonsense&q=" + "x" * 500))
    assert "没有找到商品" in page


def test_the_product_grid_is_rendered_at_most_once_per_cache_period(app, client, world):
    """With SHOP_CATALOG_CACHE_SECONDS set, the grid (and its stock counts) is reused until it expires:
    its queries are not repeated, the language and filters each have their own copy, and the
    logged-in buyer's menu is never part of what is shared."""
    from sqlalchemy import event

    from shop.extensions import cache
    from tests.factories import receive

    app.config["SHOP_CATALOG_CACHE_SECONDS"] = 5
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    first = text_of(client.get("/?category=eggs"))
    assert "现货 30 枚" in first
    before = len(statements)
    receive(world.h2, world.manager, (world.eggs, 5))
    db.session.commit()
    again = client.get("/?category=eggs")
    assert "现货 30 枚" in text_of(again)  # the cached grid, for up to five seconds
    assert not any("FROM lot" in s for s in statements[before:])
    client.get("/lang/en")
    assert "35 枚 in stock" in text_of(client.get("/?category=eggs"))  # English has a copy of its own
    client.get("/lang/zh")
    client.login("staff01")
    response = client.get("/?category=eggs")
    html, page = response.get_data(as_text=True), text_of(response)
    # buyers share a copy of their own, with a quantity stepper on each card; the user's menu and CSRF
    # token are filled in around and into it per request, never shared
    assert "现货 35 枚" in page and "康本树" in page and "加入购物车" in page
    assert "__csrf_token__" not in html and 'name="quantity"' in html
    receive(world.h2, world.manager, (world.eggs, 5))
    db.session.commit()
    client.login("staff02")
    page = text_of(client.get("/?category=eggs"))
    assert "现货 35 枚" in page  # still the buyers' shared copy
    cache.clear()
    assert "现货 40 枚" in text_of(client.get("/?category=eggs"))


def test_product_page_shows_price_unit_and_season(client, world):
    page = text_of(client.get(f"/products/{world.melon.id}"))
    assert "沙地西瓜" in page and "¥1.20 / 斤" in page and "6–8 月" in page


def test_manager_adds_a_product_priced_in_yuan_kept_in_fen(client, world):
    client.login("manager")
    response = client.post("/manage/products/new", data=product_form())
    assert response.status_code == 302
    item = db.session.scalar(select(Product).where(Product.name == "绿豆"))
    assert item.price_fen == 850 and isinstance(item.price_fen, int)
    assert "¥8.50" in text_of(client.get(f"/products/{item.id}"))


@pytest.mark.parametrize("price", ["0", "-1", "abc", "1.234", "1e3", "", "12,50", "99999999999"])
def test_bad_prices_are_refused(client, world, price):
    client.login("manager")
    before = products()
    response = client.post("/manage/products/new", data=product_form(price=price))
    assert response.status_code == 422
    assert products() == before


@pytest.mark.parametrize("overrides,message", [
    ({"name": "散养土鸡蛋"}, "已存在"),
    ({"category": "gold"}, None),
    ({"unit": "吨"}, None),
    ({"season_start_month": "6"}, "同时填写"),
    ({"season_start_month": "13", "season_end_month": "2"}, None),
])
def test_bad_product_input_changes_nothing(client, world, overrides, message):
    client.login("manager")
    before = products()
    response = client.post("/manage/products/new", data=product_form(**overrides))
    assert response.status_code == 422
    if message:
        assert message in text_of(response)
    assert products() == before


def test_edit_keeps_price_and_shows_it_in_yuan(client, world):
    client.login("manager")
    assert 'value="1.20"' in client.get(f"/manage/products/{world.eggs.id}/edit").get_data(as_text=True)
    response = client.post(f"/manage/products/{world.eggs.id}/edit", data=product_form(name="散养土鸡蛋", category="eggs",
                                                                                         unit="枚", price="1.30"))
    assert response.status_code == 302
    db.session.refresh(world.eggs)
    assert world.eggs.price_fen == 130


def test_deactivated_product_leaves_the_catalog(client, world):
    client.login("manager")
    assert client.post(f"/manage/products/{world.eggs.id}/active", data={}).status_code == 302
    client.logout()
    assert f'href="/products/{world.eggs.id}"' not in client.get("/").get_data(as_text=True)
    assert client.get(f"/products/{world.eggs.id}").status_code == 404
    client.login("manager")
    assert "已下架" in text_of(client.get(f"/products/{world.eggs.id}"))


def png_bytes(fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 180, 40)).save(out, format=fmt)
    return out.getvalue()


def test_photo_is_checked_re_encoded_and_served_safely(client, world):
    client.login("manager")
    data = product_form(photo=(io.BytesIO(png_bytes()), "eggs.png"))
    assert client.post("/manage/products/new", data=data, content_type="multipart/form-data").status_code == 302
    item = db.session.scalar(select(Product).where(Product.name == "绿豆"))
    assert item.photo and item.photo.endswith(".png")
    response = client.get(f"/media/products/{item.photo}")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert Image.open(io.BytesIO(response.data)).size == (40, 30)


@pytest.mark.parametrize("payload,name", [
    (b"<html><script>alert(1)</script></html>", "photo.png"),
    (b"GIF89a" + b"\x00" * 20, "photo.gif"),
    (png_bytes()[:40], "truncated.png"),
])
def test_photos_that_are_not_images_are_refused(client, world, payload, name):
    client.login("manager")
    before = products()
    data = product_form(photo=(io.BytesIO(payload), name))
    response = client.post("/manage/products/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "图片" in text_of(response)
    assert products() == before


def test_upload_size_is_limited(app, client, world):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    client.login("manager")
    data = product_form(photo=(io.BytesIO(b"x" * 4096), "big.png"))
    response = client.post("/manage/products/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "太大" in text_of(response)


def test_photo_names_cannot_escape_the_folder(client, world):
    assert client.get("/media/products/..%2F..%2Fsecret_key").status_code == 404
    assert client.get("/media/products/secret_key").status_code == 404


def test_pickup_points(client, world):
    client.login("manager")
    page = text_of(client.get("/manage/pickup-points"))
    assert "村电商服务点" in page and "6–8 月" in page
    data = {"name": "西瓜临时销售点02", "address": "火车站广场", "season_start_month": "6", "season_end_month": "8",
            "active": "y"}
    assert client.post("/manage/pickup-points/new", data=data).status_code == 302
    response = client.post("/manage/pickup-points/new", data=data)
    assert response.status_code == 422 and "已存在" in text_of(response)
    response = client.post("/manage/pickup-points/new", data={**data, "name": "X", "season_end_month": ""})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count(PickupPoint.id))) == 3


def test_open_pickup_points_follow_the_season(world):
    from datetime import date

    from shop.catalog.services import open_pickup_points

    assert {p.name for p in open_pickup_points(date(2023, 7, 1))} == {"村电商服务点", "西瓜临时销售点01"}
    assert {p.name for p in open_pickup_points(date(2023, 11, 1))} == {"村电商服务点"}

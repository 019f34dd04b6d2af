def test_catalog_lists_active_products(client, world):
    from tests.conftest import text_of

    page = text_of(client.get("/"))
    assert "散养土鸡蛋" in page and "¥1.20" in page
    assert "旧商品" not in page

"""GET /products — the catalog with what is available now."""
from __future__ import annotations

import marshmallow as ma

from ..access import LOGIN, allow
from ..catalog import services as catalog
from ..catalog.models import CATEGORIES
from ..inventory import services as inventory
from .core import PageArgs, PageSchema, Text, make_blueprint, page_of

blp = make_blueprint("api_catalog", "商品目录 · the catalog")


class ProductSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    category = ma.fields.String(required=True, metadata={"enum": list(CATEGORIES)})
    unit = ma.fields.String(required=True)
    price_fen = ma.fields.Integer(required=True)
    available = ma.fields.Integer(required=True, metadata={"description": "units in stock and not reserved"})


class ProductPage(PageSchema):
    items = ma.fields.List(ma.fields.Nested(ProductSchema), required=True)


class ProductArgs(PageArgs):
    category = ma.fields.String(validate=ma.validate.OneOf(CATEGORIES))
    q = Text(60, metadata={"description": "part of the product's name"})


def product_items(products) -> list[dict]:
    stock = inventory.available([p.id for p in products])
    return [{"id": p.id, "name": p.name, "category": p.category, "unit": p.unit, "price_fen": p.price_fen,
             "available": stock.get(p.id, 0)} for p in products]


@blp.route("/products", methods=["GET"])
@allow(LOGIN)
@blp.arguments(ProductArgs, location="query", unknown=ma.RAISE, as_kwargs=True)
@blp.response(200, ProductPage)
def products(page, per_page, category=None, q=None):
    """Products on sale, with the units available now."""
    return page_of(catalog.catalog_query(category, q), {"page": page, "per_page": per_page}, product_items)

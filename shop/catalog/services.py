"""Catalog rules: products, pickup points, what the public catalog lists."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

from flask_babel import gettext as _
from sqlalchemy import case, select

from ..errors import ValidationFailed
from ..extensions import db
from ..formatting import month_in_window
from ..models_base import COUNTY_WIDE
from ..producers import services as producers
from ..uploads import save_photo
from .models import CATEGORIES, UNITS, WEIGHT_UNITS, PickupPoint, Product
from ..audit.services import record as audit


@dataclass
class ProductData:
    name: str
    category: str
    unit: str
    price_fen: int
    description: str | None
    active: bool
    season_start_month: int | None
    season_end_month: int | None
    by_weight: bool = False  # weighed to 0.1 of its unit and sold at the seasonal sales points
    village_id: int | None = None  # whose service point sells it; None: the user's only village


def _check_season(start: int | None, end: int | None) -> dict[str, str]:
    if (start is None) != (end is None):
        msg = _("销售季需要同时填写开始月和结束月，或都不填。")
        return {"season_start_month": msg}
    for value in (start, end):
        if value is not None and not 1 <= value <= 12:
            return {"season_start_month": _("月份应在 1–12 之间。")}
    return {}


def check_product(data: ProductData, *, exclude_id: int | None = None) -> dict[str, str]:
    problems: dict[str, str] = {}
    name = (data.name or "").strip()
    if not name or len(name) > 80:
        problems["name"] = _("请填写商品名称（最多 80 个字）。")
    problems.update(producers.check_village(data.village_id))
    if "name" not in problems and "village_id" not in problems:
        query = select(Product.id).where(Product.name == name, Product.village_id == data.village_id)
        if exclude_id is not None:
            query = query.where(Product.id != exclude_id)
        if db.session.scalar(query, execution_options=COUNTY_WIDE) is not None:
            problems["name"] = _("商品 %(n)s 已存在。", n=name)
    if exclude_id is not None and "village_id" not in problems \
            and db.session.get(Product, exclude_id).village_id != data.village_id:
        # its lots are in that point's store and its sales were that village's households'
        problems["village_id"] = _("商品建好后不能改到别的村；请在那个村另建一个商品。")
    if data.category not in CATEGORIES:
        problems["category"] = _("未知的品类。")
    if data.unit not in UNITS:
        problems["unit"] = _("未知的销售单位。")
    elif data.by_weight and data.unit not in WEIGHT_UNITS:
        problems["by_weight"] = _("按重量销售的商品，单位应为斤或公斤。")
    if exclude_id is not None and bool(data.by_weight) != bool(db.session.get(Product, exclude_id).quantity_decimals):
        # its lots and order lines count in the measure it was made with
        problems["by_weight"] = _("商品的计量方式（按件或按重量）建好后不能更改，请另建一个商品。")
    if not isinstance(data.price_fen, int) or isinstance(data.price_fen, bool) or data.price_fen <= 0:
        problems["price"] = _("单价必须大于 0。")
    elif data.price_fen > 100_000_000:
        problems["price"] = _("单价过高。")
    problems.update(_check_season(data.season_start_month, data.season_end_month))
    return problems


def save_product(product: Product | None, data: ProductData, photo: bytes | None = None) -> Product:
    """Create or update a product; a photo is checked and stored only once the rest is valid."""
    if data.village_id is None:
        data.village_id = product.village_id if product is not None else producers.only_village()
    problems = check_product(data, exclude_id=product.id if product else None)
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    photo_name = save_photo(photo) if photo else None
    if product is None:
        product = Product()
        db.session.add(product)
        old_price = None
    else:
        old_price = product.price_fen
    product.village_id = data.village_id
    product.name = data.name.strip()
    product.category = data.category
    product.unit = data.unit
    product.price_fen = data.price_fen
    product.description = (data.description or "").strip() or None
    product.active = data.active
    product.season_start_month = data.season_start_month
    product.season_end_month = data.season_end_month
    product.quantity_decimals = 1 if data.by_weight else 0
    if photo_name:
        product.photo = photo_name
    db.session.flush()
    if old_price != product.price_fen:
        audit("product.price", product, f"{product.name}: {old_price}→{product.price_fen} fen")
    return product


def set_product_active(product: Product, active: bool) -> None:
    product.active = active
    db.session.flush()


def category_order():
    """Categories in the order of the glossary (eggs first), not alphabetically by code."""
    return case({code: i for i, code in enumerate(CATEGORIES)}, value=Product.category, else_=len(CATEGORIES))


def catalog_query(category: str | None = None, q: str | None = None):
    """Active products for the public catalog, by category and search text."""
    query = (select(Product).where(Product.active.is_(True), Product.quantity_decimals == 0)  # weighed: at points
             .order_by(category_order(), Product.name))
    if category in CATEGORIES:
        query = query.where(Product.category == category)
    if q:
        query = query.where(Product.name.contains(q.strip()))
    return query


def save_pickup_point(point: PickupPoint | None, *, name: str, address: str, active: bool,
                      season_start_month: int | None, season_end_month: int | None,
                      open_weekdays: str | None = None, closes_at: time | None = None,
                      village_id: int | None = None) -> PickupPoint:
    name, address = (name or "").strip(), (address or "").strip()
    if village_id is None:
        village_id = point.village_id if point is not None else producers.only_village()
    problems: dict[str, str] = producers.check_village(village_id)
    if not name:
        problems["name"] = _("请填写名称。")
    else:
        query = select(PickupPoint.id).where(PickupPoint.name == name)
        if point is not None:
            query = query.where(PickupPoint.id != point.id)
        if db.session.scalar(query, execution_options=COUNTY_WIDE) is not None:
            problems["name"] = _("自提点 %(n)s 已存在。", n=name)
    if not address:
        problems["address"] = _("请填写地址。")
    problems.update(_check_season(season_start_month, season_end_month))
    days = "".join(sorted(set(open_weekdays or "")))
    if days.strip("1234567"):
        problems["open_weekdays"] = _("开放日只能是周一到周日。")
    if bool(days) != (closes_at is not None):
        problems["closes_at" if days else "open_weekdays"] = _("开放日和关门时间要一起填写（或都不填）。")
    if problems:
        raise ValidationFailed(next(iter(problems.values())), fields=problems)
    if point is None:
        point = PickupPoint()
        db.session.add(point)
    point.village_id, point.name, point.address, point.active = village_id, name, address, active
    point.season_start_month, point.season_end_month = season_start_month, season_end_month
    point.open_weekdays, point.closes_at = days or None, closes_at
    db.session.flush()
    return point


def open_pickup_points(on: date) -> list[PickupPoint]:
    """Active pickup points in season on the given day."""
    points = db.session.scalars(select(PickupPoint).where(PickupPoint.active.is_(True)).order_by(PickupPoint.name))
    return [p for p in points if month_in_window(on.month, p.season_start_month, p.season_end_month)]

"""The cart: what a buyer means to order, checked against what is sellable today."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from .. import clock
from ..accounts.models import User
from ..catalog.models import Product
from ..errors import ValidationFailed
from ..extensions import db
from ..models_base import value_fen
from ..inventory import services as inventory
from ..inventory.models import Lot
from ..producers.models import Pairing, Village
from .models import CartItem


MAX_CART_LINES = 30


@dataclass
class CartLine:
    item: CartItem
    available: int
    from_my_households: int  # units in stock from the buyer's own paired households

    @property
    def total_fen(self) -> int:
        return value_fen(self.item.quantity, self.item.product.price_fen, self.item.product.scale)

    @property
    def short(self) -> bool:
        return self.item.quantity > self.available


def cart(user: User) -> list[CartLine]:
    items = db.session.scalars(select(CartItem).where(CartItem.user_id == user.id)
                               .options(selectinload(CartItem.product)).order_by(CartItem.id)).all()
    ids = [i.product_id for i in items]
    stock = inventory.available(ids)
    mine = paired_stock(user, ids)
    return [CartLine(i, stock.get(i.product_id, 0), mine.get(i.product_id, 0)) for i in items]


def service_points(lines: list[CartLine]) -> list[tuple[int, str]]:
    """(village id, name) of each service point whose goods the cart holds, in the order of its lines: each fills
    its own part of the checkout."""
    villages = list(dict.fromkeys(line.item.product.village_id for line in lines))
    if not villages:
        return []
    names = dict(db.session.execute(select(Village.id, Village.name).where(Village.id.in_(villages))).all())
    return [(village_id, names.get(village_id, "")) for village_id in villages]


def paired_stock(user: User, product_ids=None) -> dict[int, int]:
    """Units in stock now from the households this staff member is paired with, per product."""
    query = (select(Lot.product_id, func.sum(Lot.remaining))
             .where(Lot.household_id.in_(select(Pairing.household_id).where(Pairing.user_id == user.id)),
                    Lot.remaining > 0, Lot.sales_point_id.is_(None),
                    or_(Lot.best_before.is_(None), Lot.best_before >= clock.today()))
             .group_by(Lot.product_id))
    if product_ids is not None:
        query = query.where(Lot.product_id.in_(list(product_ids)))
    return {pid: int(n) for pid, n in db.session.execute(query).all()}


def sellable(product_id, on: date | None = None) -> Product:
    """A product that may be ordered now: it exists, is on sale and in season."""
    product = db.session.get(Product, product_id) if isinstance(product_id, int) else None
    if product is None or not product.active:
        raise ValidationFailed.on("product_id", _("该商品已下架或不存在。"))
    if not product.in_season(on or clock.today()):
        raise ValidationFailed.on("product_id", _("%(n)s 现在不在销售季。", n=product.name))
    if product.by_weight:
        raise ValidationFailed.on("product_id", _("%(n)s 按重量现场称重销售，只在临时销售点出售。", n=product.name))
    return product


def set_cart_quantity(user: User, product_id, quantity, *, add: bool = False) -> CartItem | None:
    """Put a product in the cart (or change its quantity; 0 removes it)."""
    product = sellable(product_id)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValidationFailed.on("quantity", _("数量必须是正整数。"))
    item = db.session.scalar(select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product.id))
    new = (item.quantity if item and add else 0) + quantity
    if new > inventory.MAX_QUANTITY:
        raise ValidationFailed.on("quantity", _("数量过大（最多 %(n)d）。", n=inventory.MAX_QUANTITY))
    if new == 0:
        if item is not None:
            db.session.delete(item)
            db.session.flush()
        return None
    if item is None:
        count = db.session.scalar(select(func.count(CartItem.id)).where(CartItem.user_id == user.id))
        if count >= MAX_CART_LINES:
            raise ValidationFailed.on("product_id", _("购物车最多放 %(n)d 种商品。", n=MAX_CART_LINES))
        item = CartItem(user_id=user.id, product_id=product.id, quantity=new)
        db.session.add(item)
    else:
        item.quantity = new
    db.session.flush()
    return item


def sync_cart(user: User, wanted: list[tuple[int, int]]) -> None:
    """Make the cart exactly what the buyer sees on the cart page: each shown product at its shown quantity.
    A product in the cart that the page did not show (added meanwhile in another tab) is refused by name, so
    nobody orders what they did not see."""
    shown = {product_id for product_id, _quantity in wanted}
    for product_id, quantity in wanted:
        set_cart_quantity(user, product_id, quantity)
    unseen = db.session.scalars(select(Product.name).join(CartItem, CartItem.product_id == Product.id)
                                .where(CartItem.user_id == user.id, CartItem.product_id.not_in(shown or {0}))
                                .order_by(CartItem.id)).all()
    if unseen:
        raise ValidationFailed(_("购物车在别处有变动：又加入了 %(names)s。请核对购物车后再提交。", names="、".join(unseen)))

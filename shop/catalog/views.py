from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale, gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import select

from .. import clock
from .. import edge
from ..access import PUBLIC, allow, has_role, is_back_office
from ..extensions import cache, db, talisman
from ..forms import ActionForm

from ..glossary import label
from ..uploads import photo_path
from ..viewutils import act, render_form, submit
from ..inventory import services as inventory
from . import services
from .forms import PickupPointForm, ProductForm
from .models import CATEGORIES, PickupPoint, Product

bp = Blueprint("catalog", __name__)
manage_bp = Blueprint("catalog_manage", __name__, url_prefix="/manage")


@bp.get("/")
@allow(PUBLIC)
def index():
    category = request.args.get("category") or None
    if category not in CATEGORIES:
        category = None
    q = request.args.get("q", "").strip()[:40]
    number = edge.optional_id(request.args.get("page")) or 1
    return render_template("catalog/index.html", grid=_grid(category, q, number, buying=has_role("staff")))


def _shared(key: str, compute):
    """What every visitor sees alike (it holds stock counts): computed at most once every
    SHOP_CATALOG_CACHE_SECONDS per key, or every time when that is 0. The cart and checkout always
    count the stock afresh."""
    seconds = current_app.config["SHOP_CATALOG_CACHE_SECONDS"]
    if not seconds:
        return compute()
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, timeout=seconds)
    return found


CSRF_SLOT = "__csrf_token__"  # where a buyer's own CSRF token goes into the shared grid


def _grid(category: str | None, q: str, number: int, *, buying: bool) -> Markup:
    """The page's content — search, filters, and the product grid with the units in stock — per language
    and filter; for buyers with an add-to-cart stepper on each card, whose token is filled in per request."""
    def render() -> str:
        page = db.paginate(services.catalog_query(category, q), page=number, per_page=48, error_out=False)
        return render_template("catalog/_grid.html", page=page, stock=inventory.available([p.id for p in page.items]),
                               today=clock.today(), category=category, q=q, categories=CATEGORIES,
                               category_labels={c: label("category", c) for c in CATEGORIES},
                               buying=buying, csrf_slot=CSRF_SLOT)

    html = _shared(f"catalog-grid:{get_locale()}:{category}:{number}:{q}:{int(buying)}", render)
    return Markup(html.replace(CSRF_SLOT, generate_csrf()) if buying else html)


@bp.get("/products/<int:product_id>")
@allow(PUBLIC)
def product(product_id: int):
    shown = _product_content(product_id)
    if not shown["active"] and not is_back_office():
        abort(404)
    return render_template("catalog/product.html", shown=shown, content=Markup(shown["html"]))


def _product_content(product_id: int) -> dict:
    """What a product's page shows every visitor — the product, its stock and whose it is — per language
    and day. The buyer's own part (adding it to the cart) is rendered around it on every request."""
    today = clock.today()

    def render() -> dict:
        item = db.get_or_404(Product, product_id)
        available = inventory.available([item.id], today).get(item.id, 0)
        html = render_template("catalog/_product.html", product=item, today=today, available=available,
                               suppliers=inventory.suppliers_on_hand(item.id, today))
        return {"html": html, "id": item.id, "name": item.name, "category": item.category, "active": item.active,
                "available": available, "on_sale": bool(item.active and item.in_season(today) and available)}

    return _shared(f"product-page:{get_locale()}:{product_id}:{today}", render)


@bp.get("/media/products/<name>")
@allow(PUBLIC)
@talisman(content_security_policy={"default-src": "'none'", "sandbox": ""})
def product_photo(name: str):
    """An uploaded (and re-encoded) image, served so that it can never run as a page."""
    path = photo_path(name)
    if path is None:
        abort(404)
    return send_file(path, max_age=86400)


# --- manager pages -----------------------------------------------------------------------------

def _product_data(form: ProductForm) -> services.ProductData:
    return services.ProductData(
        name=form.name.data, category=form.category.data, unit=form.unit.data, price_fen=form.price.data,
        description=form.description.data, active=form.active.data,
        season_start_month=form.season_start_month.data, season_end_month=form.season_end_month.data,
        by_weight=form.by_weight.data, village_id=form.village_id.data,
    )


def _product_form(product: Product | None):
    form = ProductForm(obj=product)
    if request.method == "GET" and product is not None:
        form.price.data = product.price_fen
    if form.validate_on_submit():
        upload = form.photo.data
        photo = upload.read() if upload and getattr(upload, "filename", "") else None
        ok, saved = submit(form, lambda: services.save_product(product, _product_data(form), photo=photo))
        if ok:
            flash(_("已保存商品 %(n)s。", n=saved.name), "success")
            return redirect(url_for("catalog_manage.products"))
    return render_form("catalog/product_form.html", form, product=product)


@manage_bp.get("/products")
@allow("manager", "admin")
def products():
    items = db.session.scalars(select(Product).order_by(Product.active.desc(), services.category_order(),
                                                        Product.name)).all()
    return render_template("catalog/manage_products.html", products=items, action=ActionForm())


@manage_bp.route("/products/new", methods=["GET", "POST"])
@allow("manager")
def product_new():
    return _product_form(None)


@manage_bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
@allow("manager")
def product_edit(product_id: int):
    return _product_form(db.get_or_404(Product, product_id))


@manage_bp.post("/products/<int:product_id>/active")
@allow("manager")
def product_toggle(product_id: int):
    product = db.get_or_404(Product, product_id)
    if ActionForm().validate_on_submit():
        act(lambda: services.set_product_active(product, not product.active),
            lambda _done: _("商品 %(n)s 已上架。", n=product.name) if product.active
            else _("商品 %(n)s 已下架。", n=product.name))
    return redirect(url_for("catalog_manage.products"))


@manage_bp.get("/pickup-points")
@allow("manager", "admin")
def pickup_points():
    points = db.session.scalars(select(PickupPoint).order_by(PickupPoint.active.desc(), PickupPoint.name)).all()
    return render_template("catalog/pickup_points.html", points=points, today=clock.today())


def _pickup_form(point: PickupPoint | None):
    form = PickupPointForm(obj=point)
    if form.validate_on_submit():
        ok, saved = submit(form, lambda: services.save_pickup_point(point, name=form.name.data, address=form.address.data,
                                               active=form.active.data,
                                               season_start_month=form.season_start_month.data,
                                               season_end_month=form.season_end_month.data,
                                               open_weekdays="".join(form.open_weekdays.data or []),
                                               closes_at=form.closes_at.data, village_id=form.village_id.data))
        if ok:
            flash(_("已保存自提点 %(n)s。", n=saved.name), "success")
            return redirect(url_for("catalog_manage.pickup_points"))
    return render_form("catalog/pickup_point_form.html", form, point=point)


@manage_bp.route("/pickup-points/new", methods=["GET", "POST"])
@allow("manager")
def pickup_point_new():
    return _pickup_form(None)


@manage_bp.route("/pickup-points/<int:point_id>/edit", methods=["GET", "POST"])
@allow("manager")
def pickup_point_edit(point_id: int):
    return _pickup_form(db.get_or_404(PickupPoint, point_id))

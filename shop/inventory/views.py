from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from .. import clock, edge
from ..access import PUBLIC, allow
from ..catalog.models import Product
from ..catalog.services import category_order
from ..extensions import db

from ..producers import services as producers
from ..producers.models import Enterprise, Household
from ..qr import qr_svg
from ..viewutils import act, render_form, submit_once
from ..links import absolute_url
from . import services
from .forms import AdjustForm, IntakeForm, ThresholdForm
from .models import Intake, Lot, StockMovement

bp = Blueprint("inventory", __name__)


@bp.get("/manage/stock")
@allow("manager", "admin")
def overview():
    low_only = request.args.get("low") == "1"
    days = edge.optional_int(request.args.get("days"), maximum=365)
    if days is None:
        days = current_app.config["SHOP_EXPIRY_WARNING_DAYS"]
    today = clock.today()
    return render_template("inventory/overview.html", lines=services.stock_overview(today, low_only=low_only),
                           low_only=low_only, days=days, expiring=services.expiring_lots(days, today), today=today)


@bp.get("/manage/stock/products/<int:product_id>")
@allow("manager", "admin")
def product_lots(product_id: int):
    product = db.get_or_404(Product, product_id)
    show_all = request.args.get("all") == "1"
    query = (select(Lot).where(Lot.product_id == product.id)
             .options(selectinload(Lot.household), selectinload(Lot.enterprise)).order_by(Lot.id.desc()))
    if not show_all:
        query = query.where(or_(Lot.remaining > 0, Lot.reserved > 0))
    lots = db.paginate(query, per_page=100, error_out=False)
    form = ThresholdForm(obj=product)
    return render_template("inventory/product_lots.html", product=product, lots=lots, show_all=show_all,
                           form=form, today=clock.today())


@bp.post("/manage/stock/products/<int:product_id>/threshold")
@allow("manager")
def set_threshold(product_id: int):
    product = db.get_or_404(Product, product_id)
    form = ThresholdForm()
    if form.validate_on_submit():
        act(lambda: services.set_low_stock_threshold(product, form.low_stock_threshold.data), _("已保存低库存提醒。"))
    else:
        flash(_("低库存提醒应为不小于 0 的整数。"), "error")
    return redirect(url_for("inventory.product_lots", product_id=product.id))


# --- intake ------------------------------------------------------------------------------------

@bp.get("/manage/intake")
@allow("manager")
def intake_start():
    q = request.args.get("q", "").strip()[:40]
    households, enterprises = [], []
    if q:
        households = db.session.scalars(
            select(Household).where(or_(Household.head_name.contains(q), Household.code.startswith(q)))
            .order_by(Household.code).limit(30)).all()
        enterprises = db.session.scalars(
            select(Enterprise).where(Enterprise.name.contains(q)).order_by(Enterprise.name).limit(10)).all()
    return render_template("inventory/intake_start.html", q=q, households=households, enterprises=enterprises)


def _supplier(kind: str, supplier_id: int):
    model = {"household": Household, "enterprise": Enterprise}.get(kind)
    if model is None:
        abort(404)
    return db.get_or_404(model, supplier_id)


@bp.route("/manage/intake/<kind>/<int:supplier_id>", methods=["GET", "POST"])
@allow("manager")
def intake(kind: str, supplier_id: int):
    supplier = _supplier(kind, supplier_id)
    products = db.session.scalars(select(Product).where(Product.active.is_(True), Product.quantity_decimals == 0)
                                  .order_by(category_order(), Product.name)).all()
    form = IntakeForm(products=products)
    if form.validate_on_submit():
        rows = [(r.product_id.data, r.quantity.data, r.best_before.data) for r in form.rows]
        key = {"household_id" if kind == "household" else "enterprise_id": supplier.id}
        ok, location, visit = submit_once(form, lambda: services.receive(
            items=services.intake_items(rows), user_id=current_user.id, note=form.note.data, **key),
            lambda made: url_for("inventory.receipt", intake_id=made.id))
        if ok:
            if visit is not None:
                flash(_("已入库 %(n)d 个批次。", n=len(visit.lots)), "success")
            return redirect(location)
    return render_form("inventory/intake.html", form, supplier=supplier, kind=kind)


@bp.get("/manage/intakes/<int:intake_id>/receipt")
@allow("manager", "admin")
def receipt(intake_id: int):
    visit = db.get_or_404(Intake, intake_id)
    card = producers.current_card(visit.household_id) if visit.household_id else None
    link = producers.card_url(card) if card else None
    qr = qr_svg(link) if link else None
    return render_template("inventory/receipt.html", intake=visit, card_link=link, card_qr_svg=qr)


# --- lots ----------------------------------------------------------------------------------------

def _lot_page(item: Lot, form: AdjustForm):
    movements = db.session.scalars(select(StockMovement).where(StockMovement.lot_id == item.id)
                                   .options(selectinload(StockMovement.user)).order_by(StockMovement.id)).all()
    return render_form("inventory/lot.html", form, lot=item, movements=movements, today=clock.today())


@bp.get("/manage/lots/<int:lot_id>")
@allow("manager", "admin")
def lot(lot_id: int):
    return _lot_page(db.get_or_404(Lot, lot_id), AdjustForm())


@bp.post("/manage/lots/<int:lot_id>/adjust")
@allow("manager")
def adjust(lot_id: int):
    item = db.get_or_404(Lot, lot_id)
    form = AdjustForm()
    if form.validate_on_submit():
        def work():
            # write-offs are entered as a positive count; only a count correction carries its own sign; a weighed
            # lot's quantity is a weight ("2.5" 斤)
            typed = (form.quantity.data or "").strip()
            negative = typed[:1] in ("-", "－")
            units = edge.parse_quantity(typed[1:] if negative else typed, item.product.quantity_decimals or 0,
                                        "quantity")
            delta = -units if negative or form.reason.data != "count_correction" else units
            return services.adjust(item.id, delta, reason=form.reason.data, user_id=current_user.id,
                                   note=form.note.data)

        ok, where, done = submit_once(form, work, lambda _done: url_for("inventory.lot", lot_id=item.id))
        if ok:
            if done is not None:
                flash(_("已记录库存调整。"), "success")
            return redirect(where)
    return _lot_page(item, form)


@bp.get("/manage/lots/<int:lot_id>/label")
@allow("manager", "admin")
def label(lot_id: int):
    item = db.get_or_404(Lot, lot_id)
    url = absolute_url("inventory.trace", token=item.token)
    return render_template("inventory/label.html", lot=item, url=url, qr_svg=qr_svg(url))


@bp.get("/manage/households/<int:household_id>/stock")
@allow("manager", "admin")
def household_stock(household_id: int):
    household = db.get_or_404(Household, household_id)
    lots = db.session.scalars(select(Lot).where(Lot.household_id == household.id)
                              .options(selectinload(Lot.product)).order_by(Lot.id.desc())).all()
    movements = db.paginate(
        select(StockMovement).join(Lot).where(Lot.household_id == household.id)
        .options(selectinload(StockMovement.lot).selectinload(Lot.product), selectinload(StockMovement.user))
        .order_by(StockMovement.id.desc()), per_page=100, error_out=False)
    return render_template("inventory/household_stock.html", household=household, lots=lots, movements=movements)


# --- public traceability ----------------------------------------------------------------------------

@bp.get("/t/<token>")
@allow(PUBLIC)
def trace(token: str):
    item = services.lot_by_token(token)
    if item is None:
        abort(404)
    return render_template("inventory/trace.html", lot=item)

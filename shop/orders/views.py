from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..access import allow
from ..catalog.services import open_pickup_points
from ..errors import DomainError
from ..extensions import db
from ..forms import ActionForm
from ..formatting import format_fen, today_local
from ..inventory.models import Lot
from ..payments import services as payments
from ..payments import stripe_gateway
from ..unit_of_work import commit_with_retry
from ..viewutils import attempt, render_form
from . import services
from .forms import AddToCartForm, CheckoutForm, HandOverForm, OfflinePaymentForm, RefundForm
from .models import STATUSES, Allocation, Order, OrderLine

bp = Blueprint("orders", __name__)

BUYERS = ("staff", "company")


def owns(order: Order) -> bool:
    return services.visible_to(order, current_user)


def _own_order(order_id: int) -> Order:
    """Someone else's order is a 404, not a 403: its existence is not disclosed."""
    order = db.session.scalar(select(Order).where(Order.id == order_id).options(*services.whole_order()))
    if order is None or not owns(order):
        abort(404)
    return order


def _order_query():
    return select(Order).options(selectinload(Order.lines).selectinload(OrderLine.product),
                                 selectinload(Order.pickup_point), selectinload(Order.buyer))


# --- cart and checkout (staff) ------------------------------------------------------------------

def _checkout_form():
    return CheckoutForm(points=open_pickup_points(today_local()), stripe_enabled=stripe_gateway.configured(),
                        organization=current_user.organization.name if current_user.organization else None)


@bp.get("/cart")
@allow("staff")
def cart():
    return render_template("orders/cart.html", lines=services.cart(current_user), form=_checkout_form(),
                           action=ActionForm(), stripe_enabled=stripe_gateway.configured())


@bp.post("/cart/add")
@allow("staff")
def cart_add():
    form = AddToCartForm()
    back = request.form.get("next") or url_for("orders.cart")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("orders.cart")
    if not form.validate_on_submit():
        flash(_("请填写正确的数量。"), "error")
        return redirect(back)
    try:
        services.set_cart_quantity(current_user, form.product_id.data, form.quantity.data, add=True)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(back)
    db.session.commit()
    flash(_("已加入购物车。"), "success")
    return redirect(back)


@bp.post("/cart/update")
@allow("staff")
def cart_update():
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        for key, value in request.form.items():
            if key.startswith("qty-"):
                product_id = int(key[4:]) if key[4:].isdigit() else None
                quantity = int(value) if value.strip().isdigit() else None
                if product_id is None or quantity is None:
                    raise DomainError(_("数量必须是正整数。"))
                services.set_cart_quantity(current_user, product_id, quantity)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        db.session.commit()
        flash(_("购物车已更新。"), "success")
    return redirect(url_for("orders.cart"))


@bp.post("/checkout")
@allow("staff")
def checkout():
    form = _checkout_form()
    if form.validate_on_submit():
        workplace = form.handover.data == "workplace"
        ok, order = attempt(form, lambda: services.place_order(
                current_user, payment_method=form.payment_method.data, deliver_to_workplace=workplace,
                pickup_point_id=None if workplace else form.pickup_point_id.data))
        if ok:
            if order.payment_method == "stripe":
                return _pay(order)
            flash(_("订单已提交。请到服务点付款，商品为您保留至 %(t)s。", t=_local(order.reserved_until)), "success")
            return redirect(url_for("orders.detail", order_id=order.id))
    return render_form("orders/cart.html", form, lines=services.cart(current_user), action=ActionForm(),
                       stripe_enabled=stripe_gateway.configured())


def _local(dt) -> str:
    from flask_babel import format_datetime

    return format_datetime(dt, "HH:mm")


def _pay(order: Order):
    try:
        url = payments.start_checkout(order)
        db.session.commit()
    except (DomainError, stripe_gateway.GatewayError) as err:
        db.session.rollback()
        flash(getattr(err, "message", None) or _("暂时无法连接支付服务，请稍后再试或到服务点付款。"), "error")
        return redirect(url_for("orders.detail", order_id=order.id))
    return redirect(url, code=303)


@bp.post("/orders/<int:order_id>/pay")
@allow(*BUYERS)
def pay(order_id: int):
    order = _own_order(order_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return _pay(order)


@bp.get("/orders/<int:order_id>/payment-return")
@allow(*BUYERS)
def payment_return(order_id: int):
    """Back from Stripe. The redirect proves nothing: only the webhook marks an order paid."""
    return render_template("orders/payment_return.html", order=_own_order(order_id))


# --- my orders -------------------------------------------------------------------------------------

@bp.get("/orders")
@allow(*BUYERS)
def mine():
    mine = (Order.organization_id == current_user.organization_id) if current_user.role == "company" \
        else (Order.buyer_id == current_user.id)
    page = db.paginate(_order_query().where(mine).order_by(Order.id.desc()), per_page=20)
    return render_template("orders/mine.html", page=page)


@bp.get("/orders/<int:order_id>")
@allow(*BUYERS, "manager", "admin")
def detail(order_id: int):
    order = _own_order(order_id)
    if order.status == "pending_payment" and order.reserved_until and not order.awaiting_async_payment:
        expired = commit_with_retry(lambda: services.expire_reservations(
            product_ids={line.product_id for line in order.lines}))  # lazily: a hold that ran out ends now
        if order.id in expired:
            db.session.refresh(order)
    return render_template("orders/detail.html", order=order, action=ActionForm(),
                           actions=services.allowed_actions(order, current_user),
                           stripe_enabled=stripe_gateway.configured())


@bp.get("/orders/<int:order_id>/receipt")
@allow(*BUYERS, "manager", "admin")
def receipt(order_id: int):
    return render_template("orders/receipt.html", order=_own_order(order_id))


@bp.post("/orders/<int:order_id>/cancel")
@allow(*BUYERS, "manager")
def cancel(order_id: int):
    order = _own_order(order_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    session_id = order.stripe_session_id
    try:
        commit_with_retry(lambda: services.cancel(order, user_id=current_user.id))
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        if session_id and stripe_gateway.configured():
            stripe_gateway.expire_checkout_session(session_id)
        flash(_("订单已取消，预留的商品已放回库存。"), "success")
    return redirect(url_for("orders.detail", order_id=order.id))


# --- the service point: fulfilment ---------------------------------------------------------------------

@bp.get("/manage/orders")
@allow("manager", "admin")
def manage():
    status = request.args.get("status") or "paid"
    if status not in STATUSES and status not in ("flagged", "refunds"):
        status = "paid"
    query = _order_query().order_by(Order.id)
    filters = {"flagged": Order.review_reason.is_not(None),
               "refunds": Order.payment_status.in_(("partially_refunded", "refunded"))}
    query = query.where(filters.get(status, Order.status == status))
    orders = db.session.scalars(query.limit(500)).all()
    groups: dict[str, list[Order]] = {}
    for order in orders:
        key = order.pickup_point.name if order.pickup_point else _("送到单位：%(a)s", a=order.delivery_address or "")
        groups.setdefault(key, []).append(order)
    counts = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    for name, condition in filters.items():
        counts[name] = db.session.scalar(select(func.count(Order.id)).where(condition))
    return render_template("orders/manage.html", groups=groups, status=status, counts=counts)


@bp.get("/manage/orders/picklist")
@allow("manager", "admin")
def picklist():
    """What to pack from whose stock: every paid order's units by product, lot and supplier."""
    from ..producers.models import Enterprise, Household
    from ..catalog.models import PickupPoint, Product

    held = Allocation.held
    rows = db.session.execute(
        select(PickupPoint.name, Order.delivery_address, Product.name, Product.unit, Lot.id, Household.head_name,
               Household.code, Enterprise.name, func.sum(held), func.count(func.distinct(Order.id)))
        .select_from(Allocation).join(OrderLine).join(Order).join(Product, Product.id == OrderLine.product_id)
        .join(Lot, Lot.id == Allocation.lot_id).outerjoin(PickupPoint, PickupPoint.id == Order.pickup_point_id)
        .outerjoin(Household, Household.id == Allocation.household_id)
        .outerjoin(Enterprise, Enterprise.id == Allocation.enterprise_id)
        .where(Order.status == "paid", Order.channel == "retail", held > 0)
        .group_by(PickupPoint.name, Order.delivery_address, Product.name, Product.unit, Lot.id, Household.head_name,
                  Household.code, Enterprise.name)
        .order_by(PickupPoint.name, Order.delivery_address, Product.name, Lot.id)).all()
    return render_template("orders/picklist.html", rows=rows)


@bp.get("/manage/orders/<int:order_id>/packing-slip")
@allow("manager", "admin")
def packing_slip(order_id: int):
    return render_template("orders/packing_slip.html", order=db.get_or_404(Order, order_id))


def _manager_action(order_id: int, form, work, done: str):
    order = db.get_or_404(Order, order_id)
    if form.validate_on_submit():
        try:
            commit_with_retry(lambda: work(order, form))
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "error")
        else:
            flash(done, "success")
    else:
        flash(next(iter(form.errors.values()))[0] if form.errors else _("请求有误。"), "error")
    return redirect(url_for("orders.detail", order_id=order.id))


@bp.post("/manage/orders/<int:order_id>/offline-payment")
@allow("manager")
def offline_payment(order_id: int):
    return _manager_action(order_id, OfflinePaymentForm(), lambda o, f: payments.confirm_offline_payment(
        o, reference=f.reference.data, user_id=current_user.id), _("已登记收款，货款已记入供货农户的账户。"))


@bp.post("/manage/orders/<int:order_id>/pack")
@allow("manager")
def pack(order_id: int):
    return _manager_action(order_id, ActionForm(), lambda o, f: services.pack(o, user_id=current_user.id),
                           _("已标记为已打包。"))


@bp.post("/manage/orders/<int:order_id>/hand-over")
@allow("manager")
def hand_over(order_id: int):
    return _manager_action(order_id, HandOverForm(), lambda o, f: services.hand_over(
        o, user_id=current_user.id, to=f.handed_over_to.data), _("已交付。"))


@bp.route("/manage/orders/<int:order_id>/refund", methods=["GET", "POST"])
@allow("manager", "admin")
def refund(order_id: int):
    order = db.get_or_404(Order, order_id)
    form = RefundForm()
    if form.validate_on_submit():
        try:
            wanted, lots = {}, {}
            for line in order.lines:
                raw = request.form.get(f"qty-{line.id}", "").strip() or "0"
                if not raw.isdigit():
                    raise DomainError(_("退款数量必须是整数。"))
                wanted[line.id] = int(raw)
                named = [int(v) for v in request.form.getlist(f"lots-{line.id}") if v.isdigit()]
                if named:
                    lots[line.id] = named
            record = commit_with_retry(lambda: payments.refund_order(
                order, wanted, restock=form.restock.data, lots=lots, reason=form.reason.data, user_id=current_user.id))
        except (DomainError, stripe_gateway.GatewayError) as err:
            db.session.rollback()
            form.form_errors.append(getattr(err, "message", None) or _("Stripe 退款失败：%(e)s", e=str(err)))
        else:
            flash(_("已退款 %(a)s。", a=format_fen(record.amount_fen)), "success")
            return redirect(url_for("orders.detail", order_id=order.id))
    return render_form("orders/refund.html", form, order=order)

"""The cart, checkout, a buyer's orders, and the service point's fulfilment pages."""
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import clock, edge, unit_of_work
from ..access import allow
from ..catalog.models import PickupPoint
from ..catalog.services import open_pickup_points
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..forms import ActionForm, whole_number
from ..formatting import format_fen, local_dt
from ..payments import services as payments
from ..payments import stripe_gateway
from ..points import services as points
from ..reports import services as reports
from ..welfare import services as welfare
from ..viewutils import act, attempt, form_refusal, render_form, submit_once
from . import services
from .forms import AddToCartForm, HandOverForm, OfflinePaymentForm, RefundForm, checkout_form
from .models import STATUSES, Order

bp = Blueprint("orders", __name__)

BUYERS = ("staff", "company", "coordinator")  # a coordinator: the unit's orders on account
MANAGE_PAGE_SIZE = 50


def _own_order(order_id: int) -> Order:
    """Someone else's order is a 404, not a 403: its existence is not disclosed."""
    order = db.session.scalar(select(Order).where(Order.id == order_id).options(*services.whole_order()))
    if order is None or not services.visible_to(order, current_user):
        abort(404)
    return order


def _local_path(target: str | None, fallback: str) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else fallback


# --- cart and checkout (staff) ------------------------------------------------------------------

def _checkout_form(lines=None):
    """The checkout form for the cart as it is: a pickup point to choose for each service point whose goods it
    holds, among that point's open pickup points."""
    lines = services.cart(current_user) if lines is None else lines
    points = open_pickup_points(clock.today())
    parts = {v: (v, name, [p for p in points if p.village_id == v])
             for v, name in services.service_points(lines)}
    return checkout_form(list(parts.values()) or [(None, "", points)], stripe_enabled=stripe_gateway.configured(),
                         organization=current_user.organization.name if current_user.organization else None)


def _cart_page(form, lines=None):
    lines = services.cart(current_user) if lines is None else lines
    grants = welfare.usable_grants(current_user.id)
    balance = sum(g.remaining_fen for g in grants)
    if balance and form.welfare.data is None and not form.welfare.raw_data:
        form.welfare.data = min(balance, sum(line.total_fen for line in lines))
    point = db.session.get(PickupPoint, form.pickup_point_id.data) if form.pickup_point_id.data else None
    offline_hold = services.hold_until("offline", point, clock.now())
    return render_form("orders/cart.html", form, lines=lines, action=ActionForm(),
                       villages=dict(services.service_points(lines)),
                       stripe_enabled=stripe_gateway.configured(), offline_hold=local_dt(offline_hold),
                       online_minutes=current_app.config["SHOP_RESERVATION_MINUTES"], grants=grants,
                       welfare_balance=balance, welfare_rule=welfare.refund_rule())


def _cart_answer(message: str | None = None, status: int = 200):
    """The cart as the page's script shows it after a change is saved: each line's subtotal and the total."""
    lines = services.cart(current_user)
    return jsonify(saved=status == 200, message=message, total=format_fen(sum(line.total_fen for line in lines)),
                   lines={str(line.item.product_id): {"quantity": line.item.quantity, "total": format_fen(line.total_fen),
                                                      "short": line.short} for line in lines}), status


@bp.get("/cart")
@allow("staff")
def cart():
    lines = services.cart(current_user)
    return _cart_page(_checkout_form(lines), lines)


@bp.post("/cart/add")
@allow("staff")
def cart_add():
    form = AddToCartForm()
    back = _local_path(request.form.get("next"), url_for("orders.cart"))
    if not form.validate_on_submit():
        flash(_("请填写正确的数量。"), "error")
        return redirect(back)
    act(lambda: services.set_cart_quantity(current_user, form.product_id.data, form.quantity.data, add=True),
        _("已加入购物车。"))
    return redirect(back)


def _cart_quantities() -> list[tuple[int, int]]:
    """(product id, quantity) for every qty-<product id> field of the cart form."""
    wanted = []
    for key, value in request.form.items():
        if key.startswith("qty-"):
            product_id = whole_number(key[4:], "product_id", maximum=2**31 - 1)
            if not product_id:
                raise ValidationFailed.on("product_id", _("未知的商品。"))
            wanted.append((product_id, whole_number(value, key)))
    return wanted


@bp.post("/cart/update")
@allow("staff")
def cart_update():
    if not ActionForm().validate_on_submit():
        abort(400)

    def work():
        for product_id, quantity in _cart_quantities():
            services.set_cart_quantity(current_user, product_id, quantity)

    if request.accept_mimetypes.best == "application/json":  # the cart page saving a change as it is made
        ok, refusal = attempt(work)
        return _cart_answer(_("已保存。") if ok else refusal, 200 if ok else 422)
    act(work, _("购物车已更新。"))
    return redirect(url_for("orders.cart"))


@bp.post("/checkout")
@allow("staff")
def checkout():
    form = _checkout_form()
    if form.validate_on_submit():
        workplace = form.handover.data == "workplace"

        def work():
            shown = _cart_quantities()
            if shown:  # the cart page: order exactly the quantities on screen
                services.sync_cart(current_user, shown)
            chosen = form.chosen_points()
            villages = {line.item.product.village_id for line in services.cart(current_user)}
            return payments.checkout(
                current_user, payment_method=form.payment_method.data, deliver_to_workplace=workplace,
                pickup_point_ids=None if workplace else [point for village, point in chosen.items()
                                                         if village in villages or len(chosen) == 1],
                welfare_fen=form.welfare.data or 0)

        ok, location, placed = submit_once(form, work, lambda parts: url_for("orders.detail", order_id=parts[0].id))
        order = placed[0] if placed else None
        online = payments.paid_online(placed or [])
        if ok and online and online[0].payment_method == "stripe":
            return _pay(online[0])
        if ok:
            if placed and not online:
                flash(_("订单已用福利付清，共 %(w)s。", w=format_fen(sum(part.welfare_fen for part in placed))), "success")
            elif order is not None and len(placed) > 1:
                held = [_("%(num)s 保留至 %(t)s", num=part.number, t=local_dt(part.reserved_until)) for part in placed]
                flash(_("订单已按服务点分成 %(n)d 个订单：%(list)s。请到各服务点付款取货。", n=len(placed),
                        list="；".join(held)), "success")
            elif order is not None and order.welfare_fen:
                flash(_("订单已提交：福利支付 %(w)s，请到服务点付款 %(d)s，商品为您保留至 %(t)s。",
                        w=format_fen(order.welfare_fen), d=format_fen(order.due_fen), t=local_dt(order.reserved_until)),
                      "success")
            elif order is not None:
                flash(_("订单已提交。请到服务点付款，商品为您保留至 %(t)s。",
                        t=local_dt(order.reserved_until)),
                      "success")
            return redirect(location)
    return _cart_page(form)


def _pay(order: Order):
    """Off to Stripe's payment page; if Stripe cannot be reached, the order stands and its page says how to pay."""
    try:
        url = payments.start_checkout(order.id, unit=unit_of_work.run)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("orders.detail", order_id=order.id))
    except stripe_gateway.GatewayError:
        flash(_("暂时无法连接支付服务，订单已保留。请稍后在订单页面付款，或到服务点付款。"), "error")
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
    return render_template("orders/mine.html", page=db.paginate(services.buyer_orders(current_user), per_page=20))


@bp.get("/orders/<int:order_id>")
@allow(*BUYERS, "manager", "admin")
def detail(order_id: int):
    order = _own_order(order_id)
    return render_template("orders/detail.html", order=order, action=ActionForm(),
                           actions=services.allowed_actions(order, current_user),
                           parts=[part for part in services.checkout_parts(order) if part.id != order.id],
                           welfare_rule=welfare.refund_rule() if order.welfare_fen else None,
                           stripe_enabled=stripe_gateway.configured())


@bp.get("/orders/<int:order_id>/receipt")
@allow(*BUYERS, "manager", "admin", "operator")
def receipt(order_id: int):
    """An order's receipt: its buyer's, the back office's — and a sales point's operators', for its sales."""
    if current_user.role == "operator":
        if not points.operator_may_see(current_user, order_id):
            abort(404)
        order = db.session.scalar(select(Order).where(Order.id == order_id).options(*services.whole_order()))
    else:
        order = _own_order(order_id)
    return render_template("orders/receipt.html", order=order)


@bp.post("/orders/<int:order_id>/cancel")
@allow(*BUYERS, "manager")
def cancel(order_id: int):
    order = _own_order(order_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if request.form.get("confirm") != "1":
        flash(_("请确认取消订单。"), "error")
        return redirect(url_for("orders.detail", order_id=order.id))
    reason = (request.form.get("reason") or "").strip()[:200] or None
    session_id = order.stripe_session_id
    ok, cancelled = act(lambda: services.cancel_checkout(order, user_id=current_user.id, note=reason),
                        _("订单已取消，预留的商品已放回库存。"))
    if ok and cancelled and len(cancelled) > 1:
        flash(_("同一次在线支付的其他 %(n)d 个订单也已取消。", n=len(cancelled) - 1), "info")
    if ok and session_id and stripe_gateway.configured():
        stripe_gateway.expire_checkout_session(session_id)  # best effort, after the commit
    return redirect(url_for("orders.detail", order_id=order.id))


# --- the service point: fulfilment ---------------------------------------------------------------------

@bp.get("/manage/orders")
@allow("manager", "admin")
def manage():
    status = request.args.get("status") or "paid"
    if status not in STATUSES and status not in services.MANAGE_FILTERS:
        status = "paid"
    q = (request.args.get("q") or "").strip()[:40]
    try:
        start, end = (clock.parse_date(request.args.get(k), k) if request.args.get(k) else None for k in ("from", "to"))
    except ValidationFailed as err:
        flash(err.message, "error")
        start = end = None
    point_id = edge.optional_id(request.args.get("point"))
    page = db.paginate(services.manage_query(status, q=q, start=start, end=end, point_id=point_id),
                       per_page=MANAGE_PAGE_SIZE,
                       error_out=False)
    return render_template("orders/manage.html", page=page, groups=services.by_handover(page.items), status=status,
                           counts=services.manage_counts(), q=q, start=start, end=end, point_id=point_id,
                           points=db.session.scalars(select(PickupPoint).order_by(PickupPoint.name)).all(),
                           work_tab=status in services.WORK_TABS)


@bp.get("/manage/orders/picklist")
@allow("manager", "admin")
def picklist():
    """What to pack from whose stock: every paid order's units by product, lot and supplier."""
    return render_template("orders/picklist.html", groups=services.picklist())


@bp.get("/manage/orders/<int:order_id>/packing-slip")
@allow("manager", "admin")
def packing_slip(order_id: int):
    return render_template("orders/packing_slip.html", order=db.get_or_404(Order, order_id))


def _manager_action(order_id: int, form, work, done: str):
    order = db.get_or_404(Order, order_id)
    if form.validate_on_submit():
        act(lambda: work(order, form), done)
    else:
        flash(form_refusal(form), "error")
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


@bp.post("/manage/orders/<int:order_id>/refunds/<int:refund_id>/send")
@allow("manager", "admin")
def send_refund(order_id: int, refund_id: int):
    """A card refund Stripe could not take when it was made: send it now, rather than wait for the next round."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if unit_of_work.read_only(lambda: payments.refund_order_id(refund_id)) != order_id:
        abort(404)
    if payments.send_refund(refund_id, unit=unit_of_work.run):
        flash(_("退款已提交支付服务，原路退回。"), "success")
    else:
        flash(_("暂时无法连接支付服务：退款已记下，稍后会自动原路退回。"), "warning")
    return redirect(url_for("orders.detail", order_id=order_id))


def _refund_request(order: Order) -> tuple[dict[int, int], dict[int, list[int]]]:
    """The units to refund per line (qty-<line id>) and the lots named for them (lots-<line id>)."""
    wanted, lots = {}, {}
    for line in order.lines:  # a weighed line is refunded by weight: "2.5" 斤 is 25 tenths
        wanted[line.id] = edge.parse_quantity(request.form.get(f"qty-{line.id}"), line.product.quantity_decimals or 0,
                                              f"line_{line.id}", blank=0)
        named = [whole_number(v, f"line_{line.id}", maximum=2**31 - 1) for v in request.form.getlist(f"lots-{line.id}")]
        if any(named):
            lots[line.id] = [n for n in named if n]
    return wanted, lots


@bp.route("/manage/orders/<int:order_id>/refund", methods=["GET", "POST"])
@allow("manager", "admin")
def refund(order_id: int):
    order = db.get_or_404(Order, order_id)
    form = RefundForm()
    if form.validate_on_submit():
        def work():
            wanted, lots = _refund_request(order)
            return payments.refund_order(order, wanted, restock=form.restock.data, lots=lots, reason=form.reason.data,
                                         user_id=current_user.id)
        ok, where, record = submit_once(form, work, lambda _record: url_for("orders.detail", order_id=order.id))
        if ok:
            if record is not None:
                flash(_("已退款 %(a)s。", a=format_fen(record.amount_fen)), "success")
                if record.method == "stripe" and not payments.send_refund(record.id, unit=unit_of_work.run):
                    flash(_("暂时无法连接支付服务：退款已记下，稍后会自动原路退回。"), "warning")
            return redirect(where)
    return render_form("orders/refund.html", form, order=order)


@bp.get("/manage/today")
@allow("manager", "admin")
def manager_home():
    """The service point's day: what to confirm, pack and hand over, holds about to end, lots near best-before,
    refused units to handle."""
    days = current_app.config["SHOP_EXPIRY_WARNING_DAYS"]
    return render_template("orders/manager_home.html", today=reports.manager_today(clock.now(), days), days=days,
                           now=clock.now())

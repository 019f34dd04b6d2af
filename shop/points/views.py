"""Seasonal sales points: the operator's selling page (an installable web app that works offline), the goods a
grower brings, the day's close; the manager's points, growers, operators, permits and flagged sales; and the
public check page of a permit."""
from __future__ import annotations

from datetime import date

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request,
                   send_from_directory, url_for)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from .. import clock, edge, unit_of_work
from ..access import allow, is_back_office
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..forms import ActionForm
from ..formatting import mask_name
from ..producers.models import Enterprise, Household
from ..qr import qr_svg
from ..viewutils import act, render_form, submit, submit_once
from ..links import absolute_url
from . import services
from .forms import (ArrivalForm, CloseDayForm, GrowerForm, ImportSalesForm, OperatorForm, PermitForm, PointForm,
                    ResolveForm)
from .models import Permit, PointSale, SalesPoint

bp = Blueprint("points", __name__)

SELLERS = ("operator", "manager", "admin")


def _point(point_id: int) -> SalesPoint:
    point = db.get_or_404(SalesPoint, point_id)
    if not services.may_operate(current_user, point):
        abort(403)
    return point


def _grower_value(value: str) -> tuple[int | None, int | None]:
    """"h12" → (12, None); "e3" → (None, 3)."""
    if not value or value[0] not in "he":
        raise ValidationFailed.on("grower", _("请选择一个农户或村企。"))
    number = edge.optional_id(value[1:])
    if number is None:
        raise ValidationFailed.on("grower", _("请选择一个农户或村企。"))
    return (number, None) if value[0] == "h" else (None, number)


def _point_growers(point: SalesPoint) -> list[tuple[str, str]]:
    masked = not is_back_office()
    return [(services.grower_key(g.household_id, g.enterprise_id),
             services.grower_name(g.supplier.display_name, g.household_id is not None, masked)) for g in point.growers]


def _all_growers() -> list[tuple[str, str]]:
    households = db.session.execute(select(Household.id, Household.code, Household.head_name)
                                    .order_by(Household.code)).all()
    enterprises = db.session.execute(select(Enterprise.id, Enterprise.name).order_by(Enterprise.name)).all()
    return ([(f"h{i}", f"{code} {name}") for i, code, name in households]
            + [(f"e{i}", name) for i, name in enterprises])


# --- the operator's app -------------------------------------------------------------------------------------

@bp.get("/op/")
@allow(*SELLERS)
def operator_home():
    today = clock.today()
    points = services.operated_by(current_user)
    return render_template("points/operator_home.html", points=points, today=today,
                           open_days={p.id: services.open_days(p) for p in points})


@bp.get("/op/sw.js")
@allow("public")
def service_worker():
    """The selling page's service worker, from static/, allowed to control everything under /op/."""
    response = send_from_directory(current_app.static_folder, "op/sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/op/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/op/points/<int:point_id>")
@allow(*SELLERS)
def sell(point_id: int):
    point = _point(point_id)
    return render_template("points/sell.html", point=point)


@bp.get("/op/points/<int:point_id>/state.json")
@allow(*SELLERS)
def state(point_id: int):
    point = _point(point_id)
    body = services.state(point, masked=not is_back_office())
    body["csrf_token"] = generate_csrf()  # a fresh one each time: the page may have been opened offline hours ago
    body["user"] = current_user.username
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/op/points/<int:point_id>/device")
@allow(*SELLERS)
def device(point_id: int):
    point = _point(point_id)
    made = unit_of_work.run(lambda: services.register_device(point, current_user))
    return jsonify(code=made.code, point_code=point.code)


@bp.post("/op/points/<int:point_id>/sync")
@allow(*SELLERS)
def sync(point_id: int):
    """The phone sends what it recorded; each sale is kept once, whatever the retries (see services.sync)."""
    _point(point_id)
    body = request.get_json(silent=True)
    try:
        results = unit_of_work.run(lambda: services.sync(current_user, body))
    except DomainError as err:
        return jsonify(error={"code": err.code, "message": err.message, "fields": err.fields}), 422
    return jsonify(results=results)


@bp.route("/op/points/<int:point_id>/arrivals", methods=["GET", "POST"])
@allow(*SELLERS)
def arrivals(point_id: int):
    point = _point(point_id)
    form = ArrivalForm()
    form.set_growers(_point_growers(point))
    products = services.point_products()
    form.product_id.choices = [(p.id, f"{p.name}（{p.unit}{'，称重' if p.by_weight else ''}）") for p in products]
    if form.validate_on_submit():
        def work():
            household_id, enterprise_id = _grower_value(form.grower.data)
            product = next((p for p in products if p.id == form.product_id.data), None)
            if product is None:
                raise ValidationFailed.on("product_id", _("请选择商品。"))
            quantity = services.parse_quantity(form.quantity.data, product)
            return services.record_arrival(point, household_id=household_id, enterprise_id=enterprise_id,
                                           product_id=product.id, quantity=quantity, user_id=current_user.id)
        ok, where, _lot = submit_once(form, work, lambda lot: url_for("points.arrivals", point_id=point.id))
        if ok:
            flash(_("已登记到货。"), "success")
            return redirect(where)
    stock = services.state(point, masked=not is_back_office())["growers"]
    return render_form("points/arrivals.html", form, point=point, stock=stock,
                       products={p.id: p for p in products})


def _day_arg() -> date:
    text = request.values.get("day") or ""
    try:
        return date.fromisoformat(text) if text else clock.today()
    except ValueError:
        abort(404)


@bp.route("/op/points/<int:point_id>/close", methods=["GET", "POST"])
@allow(*SELLERS)
def close(point_id: int):
    point = _point(point_id)
    day = _day_arg()
    form = CloseDayForm(day=day.isoformat())
    if form.validate_on_submit():
        ok, where, _closed = submit_once(
            form, lambda: services.close_day(point, day, form.counted.data, note=form.note.data,
                                             user_id=current_user.id),
            lambda closed: url_for("points.close", point_id=point.id, day=day.isoformat()))
        if ok:
            flash(_("已日结。"), "success")
            return redirect(where)
    return render_form("points/close.html", form, point=point, day=day, figures=services.day_figures(point, day, masked=not is_back_office()))


# --- the manager's points -------------------------------------------------------------------------------------

@bp.get("/manage/points")
@allow("manager", "admin")
def points():
    items = services.all_points()
    return render_template("points/list.html", points=items, flagged=services.flagged(),
                           open_days=services.open_day_counts(),
                           days=services.closed_days(limit=60), today=clock.today(), action=ActionForm(),
                           resolve=ResolveForm())


def _save_point(point: SalesPoint | None):
    form = PointForm(obj=point)
    if form.validate_on_submit():
        data = services.PointData(code=form.code.data, name=form.name.data, address=form.address.data,
                                  map_url=form.map_url.data, first_day=form.first_day.data,
                                  last_day=form.last_day.data, opens_at=form.opens_at.data,
                                  closes_at=form.closes_at.data, active=form.active.data,
                                  village_id=form.village_id.data)
        ok, saved = submit(form, lambda: services.save_point(point, data, user_id=current_user.id))
        if ok:
            flash(_("已保存销售点 %(n)s。", n=saved.name), "success")
            return redirect(url_for("points.point", point_id=saved.id))
    return render_form("points/point_form.html", form, point=point)


@bp.route("/manage/points/new", methods=["GET", "POST"])
@allow("manager", "admin")
def point_new():
    return _save_point(None)


@bp.route("/manage/points/<int:point_id>/edit", methods=["GET", "POST"])
@allow("manager", "admin")
def point_edit(point_id: int):
    return _save_point(db.get_or_404(SalesPoint, point_id))


def _point_page(point: SalesPoint, *, grower_form=None, operator_form=None, permit_form=None, import_form=None,
                imported=None, status=200):
    grower_form = grower_form or GrowerForm(prefix="grower")
    grower_form.set_growers(_all_growers())
    operator_form = operator_form or OperatorForm(prefix="operator")
    operator_form.user_id.choices = [("", "—")] + [(u.id, f"{u.username} {u.display_name}")
                                                   for u in services.operator_candidates()]
    permit_form = permit_form or PermitForm(prefix="permit", issued_by=_("县市场监督管理局"),
                                            valid_from=point.first_day, valid_to=point.last_day)
    permit_form.set_growers(_point_growers(point))
    return render_template("points/point.html", point=point, grower_form=grower_form, operator_form=operator_form,
                           permit_form=permit_form, permits=services.permits(point),
                           operators=services.operators(point), days=services.closed_days(point.id),
                           open_days=services.open_days(point), flagged=services.flagged(point.id),
                           today=clock.today(), action=ActionForm(), resolve=ResolveForm(),
                           import_form=import_form or ImportSalesForm(prefix="import"), imported=imported), status


@bp.get("/manage/points/<int:point_id>")
@allow("manager", "admin")
def point(point_id: int):
    return _point_page(db.get_or_404(SalesPoint, point_id))


@bp.post("/manage/points/<int:point_id>/growers")
@allow("manager", "admin")
def grower_add(point_id: int):
    point = db.get_or_404(SalesPoint, point_id)
    form = GrowerForm(prefix="grower")
    form.set_growers(_all_growers())
    if form.validate_on_submit():
        def work():
            household_id, enterprise_id = _grower_value(form.grower.data)
            return services.add_grower(point, household_id=household_id, enterprise_id=enterprise_id,
                                       qr_note=form.qr_note.data, user_id=current_user.id)
        ok, _grower = submit(form, work)
        if ok:
            flash(_("已加入本销售点。"), "success")
            return redirect(url_for("points.point", point_id=point.id))
    return _point_page(point, grower_form=form, status=422)


@bp.post("/manage/points/<int:point_id>/operators")
@allow("manager", "admin")
def operator_add(point_id: int):
    point = db.get_or_404(SalesPoint, point_id)
    form = OperatorForm(prefix="operator")
    form.user_id.choices = [("", "—")] + [(u.id, u.username) for u in services.operator_candidates()]
    if form.validate_on_submit():
        ok, _done = submit(form, lambda: services.assign_operator(point, form.user_id.data, by=current_user.id))
        if ok:
            flash(_("已指定销售点负责人。"), "success")
            return redirect(url_for("points.point", point_id=point.id))
    return _point_page(point, operator_form=form, status=422)


@bp.post("/manage/points/<int:point_id>/operators/<int:user_id>/remove")
@allow("manager", "admin")
def operator_remove(point_id: int, user_id: int):
    point = db.get_or_404(SalesPoint, point_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    act(lambda: services.unassign_operator(point, user_id, by=current_user.id), _("已取消。"))
    return redirect(url_for("points.point", point_id=point.id))


@bp.post("/manage/points/<int:point_id>/permits")
@allow("manager", "admin")
def permit_issue(point_id: int):
    point = db.get_or_404(SalesPoint, point_id)
    form = PermitForm(prefix="permit")
    form.set_growers(_point_growers(point))
    if form.validate_on_submit():
        def work():
            household_id, enterprise_id = _grower_value(form.grower.data)
            return services.issue_permit(point, household_id=household_id, enterprise_id=enterprise_id,
                                         issued_by=form.issued_by.data, valid_from=form.valid_from.data,
                                         valid_to=form.valid_to.data, user_id=current_user.id)
        ok, where, _permit = submit_once(form, work, lambda p: url_for("points.permit_card", permit_id=p.id))
        if ok:
            flash(_("已发放销售许可证。"), "success")
            return redirect(where)
    return _point_page(point, permit_form=form, status=422)


@bp.post("/manage/points/permits/<int:permit_id>/revoke")
@allow("manager", "admin")
def permit_revoke(permit_id: int):
    permit = db.get_or_404(Permit, permit_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    act(lambda: services.revoke_permit(permit, user_id=current_user.id), _("许可证已注销。"))
    return redirect(url_for("points.point", point_id=permit.sales_point_id))


@bp.get("/manage/points/permits/<int:permit_id>/card")
@allow("manager", "admin")
def permit_card(permit_id: int):
    """The permit to print: its QR code opens the public check page."""
    permit = db.get_or_404(Permit, permit_id)
    url = absolute_url("points.permit_check", token=permit.token)
    return render_template("points/permit_card.html", permit=permit, url=url, qr_svg=qr_svg(url))


@bp.post("/manage/points/<int:point_id>/import")
@allow("manager")
def import_sales(point_id: int):
    """A phone's exported waiting sales: each recorded once, however often the file is imported."""
    point = db.get_or_404(SalesPoint, point_id)
    form = ImportSalesForm(prefix="import")
    if form.validate_on_submit():
        data = form.file.data.read()
        ok, results = submit(form, lambda: services.import_file(current_user, point, data))
        if ok:
            return _point_page(point, imported=services.import_summary(results))
    return _point_page(point, import_form=form, status=422)


@bp.post("/manage/points/sales/<int:sale_id>/resolve")
@allow("manager")
def resolve(sale_id: int):
    sale = db.get_or_404(PointSale, sale_id)
    form = ResolveForm()
    if not form.validate_on_submit():
        flash(next(iter(form.errors.values()))[0], "error")
    else:
        act(lambda: services.resolve(sale, form.action.data, note=form.note.data, user_id=current_user.id),
            _("已处理收据 %(r)s。", r=sale.receipt_number))
    return redirect(request.form.get("back") if (request.form.get("back") or "").startswith("/manage/points")
                    else url_for("points.points"))


# --- anyone: is this permit real? -------------------------------------------------------------------------

@bp.get("/permit/<token>")
@allow("public")
def permit_check(token: str):
    permit = services.permit_by_token(token)
    if permit is None:
        abort(404)
    response = current_app.make_response(render_template(
        "points/permit_check.html", permit=permit, holder=mask_name(permit.supplier.display_name),
        valid=permit.valid_on(clock.today()), today=clock.today()))
    response.headers["X-Robots-Tag"] = "noindex"
    return response

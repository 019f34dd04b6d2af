import io

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import allow, is_back_office
from ..accounts.models import Organization
from ..catalog.models import Product
from ..errors import DomainError
from ..extensions import db, talisman
from ..forms import ActionForm, whole_number
from ..formatting import format_fen, today_local, yuan_decimal
from ..orders.models import Order, OrderLine
from ..unit_of_work import commit_with_retry
from ..viewutils import attempt, render_form, show_errors
from . import services
from .forms import AcceptanceForm, BulkOrderForm, CompanyPaymentForm, ContractForm, GenerateForm, PriceChangeForm
from .models import Backorder, CompanyPayment, Contract
from ..audit.services import record as audit

bp = Blueprint("contracts", __name__)


def _companies():
    return db.session.scalars(select(Organization).where(Organization.kind == "company").order_by(Organization.name)).all()


def _products():
    return db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.name)).all()


def _own_contract(contract_id: int) -> Contract:
    contract = db.session.get(Contract, contract_id)
    if contract is None or not (is_back_office() or contract.organization_id == current_user.organization_id):
        abort(404)
    return contract


def _own_organization(organization_id: int) -> Organization:
    organization = db.session.get(Organization, organization_id)
    if organization is None or organization.kind != "company" or not (
            is_back_office() or organization.id == current_user.organization_id):
        abort(404)
    return organization


# --- admin: contracts -------------------------------------------------------------------------------

@bp.get("/admin/contracts")
@allow("admin")
def contracts():
    today = today_local()
    items = db.session.scalars(select(Contract).options(selectinload(Contract.organization),
                                                        selectinload(Contract.product)).order_by(Contract.number)).all()
    return render_template("contracts/list.html", progress=[services.progress(c, today) for c in items],
                           form=GenerateForm(month=services.month_of(today)))


def _contract_data(form: ContractForm) -> services.ContractData:
    return services.ContractData(
        number=form.number.data, organization_id=form.organization_id.data, product_id=form.product_id.data,
        unit_price_fen=form.unit_price.data, monthly_quantity=form.monthly_quantity.data,
        first_month=form.first_month.data, last_month=form.last_month.data, cap_fen=form.cap.data,
        delivery_address=form.delivery_address.data, delivery_day=form.delivery_day.data,
        payment_terms_days=form.payment_terms_days.data, status=form.status.data)


def _contract_form(contract: Contract | None):
    form = ContractForm(obj=contract, companies=_companies(), products=_products())
    if request.method == "GET" and contract is not None:
        form.cap.data = contract.cap_fen
    if form.validate_on_submit():
        upload = form.scan.data
        scan = upload.read() if upload and getattr(upload, "filename", "") else None
        ok, saved = attempt(form, lambda: services.save_contract(contract, _contract_data(form), user_id=current_user.id,
                                                                 scan=scan))
        if ok:
            flash(_("已保存合同 %(n)s。", n=saved.number), "success")
            return redirect(url_for("contracts.contract_edit", contract_id=saved.id))
    return render_form("contracts/form.html", form, contract=contract, price_form=PriceChangeForm())


@bp.route("/admin/contracts/new", methods=["GET", "POST"])
@allow("admin")
def contract_new():
    return _contract_form(None)


@bp.route("/admin/contracts/<int:contract_id>/edit", methods=["GET", "POST"])
@allow("admin")
def contract_edit(contract_id: int):
    return _contract_form(db.get_or_404(Contract, contract_id))


@bp.get("/contracts/<int:contract_id>/scan")
@allow("company", "admin")
@talisman(content_security_policy={"default-src": "'none'", "sandbox": ""})
def contract_scan(contract_id: int):
    """The signed contract's scan: for the admin and the contract's own company only."""
    from ..uploads import photo_path

    contract = _own_contract(contract_id)
    path = photo_path(contract.scan or "", folder="scans")
    if path is None:
        abort(404)
    return send_file(path, max_age=0)


@bp.post("/admin/contracts/<int:contract_id>/price")
@allow("admin")
def contract_price(contract_id: int):
    contract = db.get_or_404(Contract, contract_id)
    form = PriceChangeForm()
    if form.validate_on_submit():
        try:
            services.change_price(contract, form.from_month.data, form.unit_price.data, user_id=current_user.id)
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "error")
        else:
            db.session.commit()
            flash(_("已调价：%(m)s 起 %(p)s。", m=form.from_month.data, p=format_fen(form.unit_price.data)), "success")
    else:
        flash(_("请填写月份和单价。"), "error")
    return redirect(url_for("contracts.contract_edit", contract_id=contract.id))


@bp.post("/admin/contracts/generate")
@allow("admin")
def generate():
    form = GenerateForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        results = services.generate(form.month.data)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        for result in results:
            flash(result.message, "success" if result.outcome == "created" else "info")
    return redirect(url_for("contracts.contracts"))


# --- the service point: company orders ----------------------------------------------------------------

@bp.get("/manage/company-orders")
@allow("manager", "admin")
def company_orders():
    query = (select(Order).where(Order.payment_method == "account")
             .options(selectinload(Order.lines).selectinload(OrderLine.product), selectinload(Order.organization))
             .order_by(Order.id))
    by_status = {status: db.session.scalars(query.where(Order.status == status)).all()
                 for status in ("requested", "confirmed", "delivered")}
    rejected = db.session.scalars(query.where(Order.rejected_units > 0, Order.rejected_handled.is_(None))).all()
    backorders = db.session.scalars(select(Backorder).where(Backorder.filled_at.is_(None))
                                    .options(selectinload(Backorder.contract).selectinload(Contract.product))
                                    .order_by(Backorder.id)).all()
    return render_template("contracts/manage.html", by_status=by_status, rejected=rejected, backorders=backorders,
                           action=ActionForm())


def _manager_step(order_id: int, work, done: str, back: str = "contracts.company_orders"):
    order = db.get_or_404(Order, order_id)
    if order.payment_method != "account":
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        commit_with_retry(lambda: work(order))
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for(back, order_id=order_id) if back == "orders.detail" else url_for(back))


@bp.post("/manage/orders/<int:order_id>/confirm")
@allow("manager")
def confirm(order_id: int):
    return _manager_step(order_id, lambda o: services.confirm_bulk_order(o, user_id=current_user.id),
                         _("已确认订单，库存已配货。"))


@bp.post("/manage/orders/<int:order_id>/refuse")
@allow("manager")
def refuse(order_id: int):
    reason = request.form.get("reason", "")
    return _manager_step(order_id, lambda o: services.refuse_bulk_order(o, reason=reason, user_id=current_user.id),
                         _("已拒绝该批量订单，企业采购员会看到原因。"), back="orders.detail")


@bp.post("/manage/orders/<int:order_id>/deliver")
@allow("manager")
def deliver(order_id: int):
    return _manager_step(order_id, lambda o: services.deliver(o, user_id=current_user.id), _("已登记送货，等待企业验收。"))


@bp.post("/manage/orders/<int:order_id>/rejected")
@allow("manager")
def rejected(order_id: int):
    restock = request.form.get("restock") == "1"
    return _manager_step(order_id, lambda o: services.handle_rejected(o, restock=restock, user_id=current_user.id),
                         _("拒收的商品已重新入库。") if restock else _("拒收的商品已核销。"))


@bp.post("/manage/backorders/<int:backorder_id>/fill")
@allow("manager")
def fill_backorder(backorder_id: int):
    backorder = db.get_or_404(Backorder, backorder_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        order = commit_with_retry(lambda: services.fill_backorder(backorder))
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        flash(_("已补发 %(n)d %(u)s。", n=order.lines[0].quantity, u=order.lines[0].product.unit), "success")
    return redirect(url_for("contracts.company_orders"))


@bp.get("/orders/<int:order_id>/delivery-note")
@allow("company", "manager", "admin")
def delivery_note(order_id: int):
    order = db.session.get(Order, order_id)
    if order is None or order.payment_method != "account" or not (
            is_back_office() or order.organization_id == current_user.organization_id):
        abort(404)
    return render_template("contracts/delivery_note.html", order=order)


# --- company buyers ------------------------------------------------------------------------------------

@bp.get("/company")
@allow("company")
def dashboard():
    organization = current_user.organization
    today = today_local()
    items = db.session.scalars(select(Contract).where(Contract.organization_id == organization.id)
                               .order_by(Contract.number)).all()
    waiting = db.session.scalars(select(Order).where(Order.organization_id == organization.id,
                                                     Order.status == "delivered").order_by(Order.id)).all()
    return render_template("contracts/dashboard.html", organization=organization,
                           progress=[services.progress(c, today) for c in items], waiting=waiting,
                           statements=services.statements(organization), owed=services.owed_by(organization),
                           today=today)


@bp.get("/company/contracts/<int:contract_id>")
@allow("company", "admin")
def contract(contract_id: int):
    item = _own_contract(contract_id)
    orders = db.session.scalars(select(Order).where(Order.contract_id == item.id)
                                .options(selectinload(Order.lines)).order_by(Order.id.desc())).all()
    return render_template("contracts/contract.html", progress=services.progress(item, today_local()), orders=orders)


@bp.route("/company/orders/<int:order_id>/accept", methods=["GET", "POST"])
@allow("company")
def accept(order_id: int):
    order = db.session.get(Order, order_id)
    if order is None or order.organization_id != current_user.organization_id:
        abort(404)
    form = AcceptanceForm()
    if form.validate_on_submit():
        try:
            accepted = {}
            for line in order.lines:
                raw = request.form.get(f"accepted-{line.id}", "").strip()
                if not raw.isdigit():
                    raise DomainError(_("验收数量必须是不小于 0 的整数。"))
                accepted[line.id] = int(raw)
            commit_with_retry(lambda: services.accept(order, accepted, user_id=current_user.id, note=form.note.data))
        except DomainError as err:
            db.session.rollback()
            show_errors(form, err)
        else:
            flash(_("验收完成。"), "success")
            return redirect(url_for("orders.detail", order_id=order.id))
    return render_form("contracts/accept.html", form, order=order)


@bp.route("/company/bulk", methods=["GET", "POST"])
@allow("company")
def bulk():
    offers = services.bulk_offers()
    form = BulkOrderForm()
    if form.validate_on_submit():
        try:
            lines = [(offer.product.id, quantity) for offer in offers
                     if (quantity := whole_number(request.form.get(f"qty-{offer.product.id}"), f"qty-{offer.product.id}"))]
        except DomainError as err:
            show_errors(form, err)
        else:
            ok, order = attempt(form, lambda: services.request_bulk_order(current_user, lines))
            if ok:
                flash(_("批量订单已提交，等待服务点确认。"), "success")
                return redirect(url_for("orders.detail", order_id=order.id))
    return render_form("contracts/bulk.html", form, offers=offers)


# --- statements and payments ---------------------------------------------------------------------------

@bp.get("/companies/<int:organization_id>/statements/<month>")
@allow("company", "manager", "admin")
def statement(organization_id: int, month: str):
    organization = _own_organization(organization_id)
    try:
        month = services.check_month(month)
    except DomainError:
        abort(404)
    found = next((s for s in services.statements(organization) if s.month == month), None)
    if found is None:
        abort(404)
    if request.args.get("format") == "xlsx":
        return _statement_xlsx(found)
    return render_template("contracts/statement.html", statement=found, today=today_local())


def _statement_xlsx(statement):
    from openpyxl import Workbook

    audit("export", statement.organization, f"company statement {statement.month}")
    db.session.commit()

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("对账单"))
    sheet.append([_("对账单"), statement.organization.name, statement.month])
    sheet.append([_("订单"), _("商品"), _("验收数量"), _("单价（元）"), _("金额（元）"), _("验收日期")])
    from flask_babel import format_datetime

    for order in statement.orders:
        for line in order.lines:
            sold = line.sold
            sheet.append([order.number, line.product.name, sold, yuan_decimal(line.unit_price_fen),
                          yuan_decimal(sold * line.unit_price_fen), format_datetime(order.accepted_at, "yyyy-MM-dd")])
    sheet.append([_("应付金额（元）"), yuan_decimal(statement.due_fen)])
    sheet.append([_("已付（元）"), yuan_decimal(statement.paid_fen)])
    sheet.append([_("付款期限"), statement.due_date.isoformat()])
    out = io.BytesIO()
    workbook.save(out)
    out.seek(0)
    return send_file(out, as_attachment=True, download_name=f"statement-{statement.organization.id}-{statement.month}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.get("/admin/companies")
@allow("admin", "manager")
def receivables():
    today = today_local()
    rows = [(org, services.owed_by(org), services.statements(org)) for org in _companies()]
    payments = db.session.scalars(select(CompanyPayment).order_by(CompanyPayment.id.desc()).limit(50)).all()
    return render_template("contracts/receivables.html", rows=rows, today=today, payments=payments,
                           form=CompanyPaymentForm(paid_on=today))


@bp.post("/admin/companies/<int:organization_id>/payments")
@allow("admin")
def payment(organization_id: int):
    organization = _own_organization(organization_id)
    form = CompanyPaymentForm()
    if form.validate_on_submit():
        try:
            commit_with_retry(lambda: services.record_payment(organization, form.amount.data,
                                                              reference=form.reference.data, paid_on=form.paid_on.data,
                                                              user_id=current_user.id))
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "error")
        else:
            flash(_("已登记 %(o)s 的付款 %(a)s。", o=organization.name, a=format_fen(form.amount.data)), "success")
    else:
        flash(next(iter(form.errors.values()))[0], "error")
    return redirect(url_for("contracts.receivables"))

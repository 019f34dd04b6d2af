"""Contracts (admin), company orders at the service point, and the company buyers' pages."""
from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import clock, unit_of_work
from ..access import allow, is_back_office
from ..accounts.models import Organization
from ..audit.services import record as audit
from ..catalog.models import Product
from ..errors import DomainError
from ..extensions import db, talisman
from ..forms import ActionForm, whole_number
from ..formatting import format_fen
from ..orders.models import Order
from ..uploads import photo_path
from ..exports import xlsx_response
from ..viewutils import act, form_refusal, render_form, show_errors, submit, submit_once
from . import services
from .forms import AcceptanceForm, BulkOrderForm, CompanyPaymentForm, ContractForm, GenerateForm, PriceChangeForm
from .models import Backorder, Contract

bp = Blueprint("contracts", __name__)


def _products():
    return db.session.scalars(select(Product).where(Product.active.is_(True), Product.quantity_decimals == 0)
                              .order_by(Product.name)).all()


def _own_contract(contract_id: int) -> Contract:
    contract = db.session.get(Contract, contract_id)
    if contract is None or not (is_back_office() or contract.organization_id == current_user.organization_id):
        abort(404)
    return contract


def _own_organization(organization_id: int) -> Organization:
    organization = db.session.get(Organization, organization_id)
    if organization is None or not (is_back_office() or organization.id == current_user.organization_id):
        abort(404)
    return organization


# --- admin: contracts -------------------------------------------------------------------------------

@bp.get("/admin/contracts")
@allow("admin")
def contracts():
    today = clock.today()
    return render_template("contracts/list.html",
                           progress=[services.progress(c, today) for c in services.company_contracts()],
                           form=GenerateForm(month=clock.month_of(today)))


def _contract_data(form: ContractForm) -> services.ContractData:
    return services.ContractData(
        number=form.number.data, organization_id=form.organization_id.data, product_id=form.product_id.data,
        unit_price_fen=form.unit_price.data, monthly_quantity=form.monthly_quantity.data,
        first_month=form.first_month.data, last_month=form.last_month.data, cap_fen=form.cap.data,
        delivery_address=form.delivery_address.data, delivery_day=form.delivery_day.data,
        payment_terms_days=form.payment_terms_days.data, status=form.status.data)


def _contract_form(contract: Contract | None):
    form = ContractForm(obj=contract, companies=services.companies(), products=_products())
    if request.method == "GET" and contract is not None:
        form.cap.data = contract.cap_fen
    if form.validate_on_submit():
        upload = form.scan.data
        scan = upload.read() if upload and getattr(upload, "filename", "") else None
        ok, saved = submit(form, lambda: services.save_contract(contract, _contract_data(form), user_id=current_user.id,
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
        act(lambda: services.change_price(contract, form.from_month.data, form.unit_price.data,
                                          user_id=current_user.id),
            _("已调价：%(m)s 起 %(p)s。", m=form.from_month.data, p=format_fen(form.unit_price.data)))
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
        results = services.generate(form.month.data, unit=unit_of_work.run)
    except DomainError as err:
        flash(err.message, "error")
    else:
        for result in results:
            flash(result.message, "success" if result.outcome == "created" else "info")
    return redirect(url_for("contracts.contracts"))


# --- the service point: company orders ----------------------------------------------------------------

@bp.get("/manage/company-orders")
@allow("manager", "admin")
def company_orders():
    queue = services.service_point_queue()
    return render_template("contracts/manage.html", by_status=queue.by_status, rejected=queue.rejected,
                           backorders=queue.backorders, action=ActionForm())


def _manager_step(order_id: int, work, done: str, back: str = "contracts.company_orders"):
    order = db.get_or_404(Order, order_id)
    if order.payment_method != "account":
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    act(lambda: work(order), done)
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
    act(lambda: services.fill_backorder(backorder),
        lambda order: _("已补发 %(n)d %(u)s。", n=order.lines[0].quantity, u=order.lines[0].product.unit))
    return redirect(url_for("contracts.company_orders"))


@bp.get("/orders/<int:order_id>/delivery-note")
@allow("company", "coordinator", "manager", "admin")
def delivery_note(order_id: int):
    order = db.session.get(Order, order_id)
    if order is None or order.payment_method != "account" or not (
            is_back_office() or order.organization_id == current_user.organization_id):
        abort(404)
    return render_template("contracts/delivery_note.html", order=order)


# --- company buyers ------------------------------------------------------------------------------------

@bp.get("/company")
@allow("company", "coordinator")
def dashboard():
    organization = current_user.organization
    today = clock.today()
    return render_template("contracts/dashboard.html", organization=organization,
                           progress=[services.progress(c, today) for c in services.company_contracts(organization.id)],
                           waiting=services.awaiting_acceptance(organization),
                           statements=services.statements(organization), owed=services.owed_by(organization),
                           today=today)


@bp.get("/company/contracts/<int:contract_id>")
@allow("company", "admin")
def contract(contract_id: int):
    item = _own_contract(contract_id)
    return render_template("contracts/contract.html", progress=services.progress(item, clock.today()),
                           orders=services.contract_orders(item))


@bp.route("/company/orders/<int:order_id>/accept", methods=["GET", "POST"])
@allow("company", "coordinator")
def accept(order_id: int):
    order = db.session.get(Order, order_id)
    if order is None or order.payment_method != "account" or order.organization_id != current_user.organization_id:
        abort(404)
    form = AcceptanceForm()
    if form.validate_on_submit():
        def work():
            accepted = {line.id: whole_number(request.form.get(f"accepted-{line.id}"), f"line_{line.id}", blank=None)
                        for line in order.lines}
            return services.accept(order, accepted, user_id=current_user.id, note=form.note.data)

        ok, _done = submit(form, work)
        if ok:
            flash(_("验收完成。"), "success")
            return redirect(url_for("orders.detail", order_id=order.id))
    return render_form("contracts/accept.html", form, order=order)


@bp.route("/company/bulk", methods=["GET", "POST"])
@allow("company", "coordinator")
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
            ok, where, order = submit_once(form, lambda: services.request_bulk_order(current_user, lines),
                                           lambda made: url_for("orders.detail", order_id=made.id))
            if ok:
                if order is not None:
                    flash(_("批量订单已提交，等待服务点确认。"), "success")
                return redirect(where)
    return render_form("contracts/bulk.html", form, offers=offers)


# --- statements and payments ---------------------------------------------------------------------------

def _monthly_statement(organization_id: int, month: str):
    organization = _own_organization(organization_id)
    if not clock.is_month(month):
        abort(404)
    found = next((s for s in services.statements(organization) if s.month == month), None)
    if found is None:
        abort(404)
    return found


@bp.get("/companies/<int:organization_id>/statements/<month>")
@allow("company", "coordinator", "manager", "admin")
def statement(organization_id: int, month: str):
    return render_template("contracts/statement.html", statement=_monthly_statement(organization_id, month),
                           today=clock.today(), action=ActionForm())


@bp.post("/companies/<int:organization_id>/statements/<month>.xlsx")
@allow("company", "coordinator", "manager", "admin")
def statement_xlsx(organization_id: int, month: str):
    """The statement as XLSX. An export is written to the audit log, so it is a POST (a GET never writes)."""
    found = _monthly_statement(organization_id, month)
    if not ActionForm().validate_on_submit():
        abort(400)
    unit_of_work.run(lambda: audit("export", found.organization, f"company statement {found.month}"))
    return xlsx_response(f"statement-{found.organization.id}-{found.month}.xlsx",
                         [(_("对账单"), services.statement_rows(found))])


@bp.get("/admin/companies")
@allow("admin", "manager")
def receivables():
    today = clock.today()
    rows = [(org, services.owed_by(org), services.statements(org)) for org in services.companies()]
    return render_template("contracts/receivables.html", rows=rows, today=today, payments=services.recent_payments(),
                           form=CompanyPaymentForm(paid_on=today))


@bp.post("/admin/companies/<int:organization_id>/payments")
@allow("admin")
def payment(organization_id: int):
    organization = _own_organization(organization_id)
    form = CompanyPaymentForm()
    if form.validate_on_submit():
        ok, _location, paid = submit_once(form, lambda: services.record_payment(
            organization, form.amount.data, reference=form.reference.data, paid_on=form.paid_on.data,
            user_id=current_user.id), lambda _paid: url_for("contracts.receivables"))
        if ok and paid is not None:
            flash(_("已登记 %(o)s 的付款 %(a)s。", o=organization.name, a=format_fen(form.amount.data)), "success")
        elif not ok:
            flash(form.form_errors[-1] if form.form_errors else form_refusal(form), "error")
    else:
        flash(form_refusal(form), "error")
    return redirect(url_for("contracts.receivables"))

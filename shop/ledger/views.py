import io
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import clock
from ..access import allow
from ..errors import DomainError
from ..extensions import db
from ..formatting import format_fen, today_local, yuan_decimal
from ..producers.models import Enterprise, Household
from ..unit_of_work import commit_with_retry
from ..viewutils import render_form, show_errors
from . import services
from .forms import PayoutForm
from .models import Account, Entry
from ..audit.services import record as audit

bp = Blueprint("ledger", __name__, url_prefix="/manage/ledger")
KINDS = {"household": Household, "enterprise": Enterprise}


def _supplier(kind: str, supplier_id: int):
    model = KINDS.get(kind)
    if model is None:
        abort(404)
    supplier = db.get_or_404(model, supplier_id)
    account = services.household_account(supplier.id) if kind == "household" else services.enterprise_account(supplier.id)
    return supplier, account


@bp.get("")
@allow("manager", "admin")
def overview():
    rows = db.session.execute(
        select(Account, Household, Enterprise).outerjoin(Household, Household.id == Account.household_id)
        .outerjoin(Enterprise, Enterprise.id == Account.enterprise_id)
        .where(Account.kind != "platform", Account.balance_fen < 0).order_by(Account.balance_fen)).all()
    return render_template("ledger/overview.html", rows=rows, total=sum(-a.balance_fen for a, _, _ in rows))


def _page(kind: str, supplier, account, form):
    today = today_local()
    year = request.args.get("year", type=int) or today.year
    summary = services.summary(account, date(year, 1, 1), date(year, 12, 31))
    entries = db.session.scalars(
        select(Entry).where(Entry.account_id == account.id).options(selectinload(Entry.transaction))
        .order_by(Entry.id.desc()).limit(200)).all()
    db.session.commit()  # the account may have just been created for a supplier with no sales yet
    return render_form("ledger/supplier.html", form, kind=kind, supplier=supplier, account=account, summary=summary,
                       year=year, entries=entries, today=today)


@bp.get("/<kind>/<int:supplier_id>")
@allow("manager", "admin")
def supplier(kind: str, supplier_id: int):
    supplier, account = _supplier(kind, supplier_id)
    return _page(kind, supplier, account, PayoutForm())


@bp.post("/<kind>/<int:supplier_id>/payouts")
@allow("manager")
def payout(kind: str, supplier_id: int):
    supplier, account = _supplier(kind, supplier_id)
    db.session.commit()
    form = PayoutForm()
    if form.validate_on_submit():
        try:
            commit_with_retry(lambda: services.pay_out(account, form.amount.data, method=form.method.data,
                                                       reference=form.reference.data, user_id=current_user.id))
        except DomainError as err:
            db.session.rollback()
            show_errors(form, err) if err.fields else form.amount.errors.append(err.message)
        else:
            flash(_("已结算 %(a)s 给 %(n)s。", a=format_fen(form.amount.data), n=supplier.display_name), "success")
            return redirect(url_for("ledger.supplier", kind=kind, supplier_id=supplier.id))
    supplier, account = _supplier(kind, supplier_id)
    return _page(kind, supplier, account, form)


@bp.get("/<kind>/<int:supplier_id>/statement")
@allow("manager", "admin")
def statement(kind: str, supplier_id: int):
    supplier, account = _supplier(kind, supplier_id)
    today = today_local()
    try:
        start, end = clock.parse_period(request.args.get("from"), request.args.get("to"),
                                           date(today.year, today.month, 1), today)
        result = services.statement(account, start, end)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
        return redirect(url_for("ledger.statement", kind=kind, supplier_id=supplier.id))
    if request.args.get("format") == "xlsx":
        response = _xlsx(supplier, result)
    else:
        response = render_template("ledger/statement.html", kind=kind, supplier=supplier, statement=result)
    db.session.commit()  # the account may have just been made; committed after rendering, which it would expire
    return response


def _xlsx(supplier, result):
    from openpyxl import Workbook

    audit("export", supplier, f"statement {result.start}–{result.end}")
    db.session.commit()

    from ..labels import label

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("对账单"))
    sheet.append([_("对账单"), supplier.display_name, f"{result.start} — {result.end}"])
    sheet.append([_("期初应付余额（元）"), yuan_decimal(result.opening_fen)])
    sheet.append([_("日期"), _("类型"), _("商品"), _("数量"), _("单价（元）"), _("购买单位"), _("订单"), _("金额（元）"), _("凭证号")])
    from flask_babel import format_datetime

    for row in result.rows:
        sheet.append([format_datetime(row.at, "yyyy-MM-dd HH:mm"), label("transaction_kind", row.kind), row.product,
                      row.quantity, yuan_decimal(row.unit_price_fen), row.organization,
                      row.order_id, yuan_decimal(row.amount_fen), row.reference])
    sheet.append([_("期末应付余额（元）"), yuan_decimal(result.closing_fen)])
    out = io.BytesIO()
    workbook.save(out)
    out.seek(0)
    name = f"statement-{supplier.id}-{result.start}-{result.end}.xlsx"
    return send_file(out, as_attachment=True, download_name=name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

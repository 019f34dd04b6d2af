"""What the platform owes each supplier: the overview, a supplier's ledger page, payouts and statements."""
import html
from datetime import date

from markupsafe import Markup
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import clock, edge, unit_of_work
from ..access import allow
from ..audit.services import record as audit
from ..errors import DomainError
from ..forms import ActionForm
from ..formatting import format_fen
from ..exports import xlsx_response
from ..viewutils import render_form, submit_once
from . import services
from .forms import PayoutForm

bp = Blueprint("ledger", __name__, url_prefix="/manage/ledger")


def _supplier(kind: str, supplier_id: int):
    """The supplier and its account — None if it has none yet: a page never creates one."""
    if kind not in services.SUPPLIER_MODELS:
        abort(404)
    supplier, account = services.supplier_with_account(kind, supplier_id)
    if supplier is None:
        abort(404)
    return supplier, account


@bp.get("")
@allow("manager", "admin")
def overview():
    rows = services.owed_accounts()
    return render_template("ledger/overview.html", rows=rows, total=sum(a.owed_fen for a, _h, _e in rows))


def _page(kind: str, supplier, account, form):
    today = clock.today()
    year = request.args.get("year", type=int) or today.year
    if not 2000 <= year <= 2100:
        year = today.year
    return render_form("ledger/supplier.html", form, kind=kind, supplier=supplier,
                       summary=services.summary(account, *clock.year_bounds(year)), year=year,
                       entries=services.recent_entries(account, edge.optional_id(request.args.get("page")) or 1),
                       today=today)


@bp.get("/<kind>/<int:supplier_id>")
@allow("manager", "admin")
def supplier(kind: str, supplier_id: int):
    supplier, account = _supplier(kind, supplier_id)
    return _page(kind, supplier, account, PayoutForm())


@bp.post("/<kind>/<int:supplier_id>/payouts")
@allow("manager")
def payout(kind: str, supplier_id: int):
    supplier, _account = _supplier(kind, supplier_id)
    form = PayoutForm()
    if form.validate_on_submit():
        key = services.supplier_key(kind, supplier.id)
        ok, location, paid = submit_once(form, lambda: services.pay_out(
            services.supplier_account(key.get("household_id"), key.get("enterprise_id")), form.amount.data,
            method=form.method.data, reference=form.reference.data, user_id=current_user.id),
            lambda _paid: url_for("ledger.supplier", kind=kind, supplier_id=supplier.id))
        if ok:
            if paid is not None:
                flash(_("已结算 %(a)s 给 %(n)s。", a=format_fen(form.amount.data), n=supplier.display_name),
                      "success")
            return redirect(location)
        if form.form_errors:  # a refusal about the amount (more than is owed), shown beside it
            form.amount.errors = list(form.amount.errors) + list(form.form_errors)
            form.form_errors = []
    supplier, account = _supplier(kind, supplier_id)
    return _page(kind, supplier, account, form)


def _statement(kind: str, supplier_id: int):
    supplier, account = _supplier(kind, supplier_id)
    today = clock.today()
    start, end = clock.parse_period(request.args.get("from"), request.args.get("to"),
                                    date(today.year, today.month, 1), today)
    return supplier, services.statement(account, start, end)


@bp.get("/<kind>/<int:supplier_id>/statement")
@allow("manager", "admin")
def statement(kind: str, supplier_id: int):
    try:
        supplier, result = _statement(kind, supplier_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("ledger.statement", kind=kind, supplier_id=supplier_id))
    return render_template("ledger/statement.html", kind=kind, supplier=supplier, statement=result,
                           rows=_statement_rows(services.statement_cells(result)), action=ActionForm())


def _statement_rows(cells) -> Markup:
    """A year's statement has hundreds of rows of six cells: they are written here in one pass rather than
    through the template's per-cell calls (or `Markup.format`'s, as costly). What people wrote — the goods and
    references in the summary, a unit of measure, the buyer's name — is escaped as plain text; the day and the
    amounts are the shop's own figures (digits, signs, ¥ and commas)."""
    e = html.escape
    return Markup("\n".join(
        f'<tr><td>{day}</td><td>{e(summary)}</td><td class="num">{e(quantity)}</td><td class="num">{price}</td>'
        f'<td>{e(buyer)}</td><td class="num">{amount}</td></tr>'
        for day, summary, quantity, price, buyer, amount in cells))


@bp.post("/<kind>/<int:supplier_id>/statement.xlsx")
@allow("manager", "admin")
def statement_xlsx(kind: str, supplier_id: int):
    """The statement as XLSX: an export of personal data, written to the audit log (so it is a POST)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        supplier, result = _statement(kind, supplier_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("ledger.statement", kind=kind, supplier_id=supplier_id))
    unit_of_work.run(lambda: audit("export", supplier, f"statement {result.start}–{result.end}"))
    return xlsx_response(f"statement-{supplier.id}-{result.start}-{result.end}.xlsx",
                         [(_("对账单"), services.statement_rows(supplier.display_name, result))])


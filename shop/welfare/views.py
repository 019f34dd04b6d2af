"""A unit's welfare fund, for its coordinator: the money in it, top-ups, grants to members one by one or from a
list, and every grant with what is left of it."""
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import clock, unit_of_work
from ..access import allow
from ..audit.services import record as audit
from ..exports import xlsx_response
from ..forms import ActionForm
from ..accounts.models import User
from ..errors import DomainError
from ..extensions import db
from ..producers.services import ImportRejected
from ..viewutils import show_errors, submit_once
from . import services
from .forms import GrantForm, GrantImportForm, TopUpForm

bp = Blueprint("welfare", __name__, url_prefix="/unit/welfare")


def _fund():
    return services.fund_of(current_user.organization_id)


def _members() -> list[User]:
    """The unit's active staff, who may be granted welfare (the coordinator's queries see only their unit's
    people)."""
    return list(db.session.scalars(select(User).where(User.organization_id == current_user.organization_id,
                                                      User.active.is_(True), User.role == "staff")
                                   .order_by(User.username)))


def _page(topup=None, grant=None, upload=None, table=None):
    """The fund's page; a refused form (its reasons beside its fields) or list answers 422."""
    fund = _fund()
    today = clock.today()
    topup = topup or TopUpForm()
    grant = grant or GrantForm(members=_members(), starts_on=today, expires_on=today.replace(month=12, day=31))
    upload = upload or GrantImportForm()
    refused = table is not None or any(f.errors for f in (topup, grant, upload))
    months = [clock.month_after(clock.month_of(today), -n) for n in range(12)]
    return render_template("welfare/fund.html", form=topup, fund=fund, figures=services.figures(fund),
                           grants=services.fund_grants(fund), grant=grant, upload=upload, table=table,
                           today=today, months=months), 422 if refused else 200


@bp.get("")
@allow("coordinator")
def fund():
    return _page()


@bp.post("/topup")
@allow("coordinator")
def topup():
    form = TopUpForm()
    if form.validate_on_submit():
        ok, where, _made = submit_once(form, lambda: services.top_up(_fund(), form.amount.data,
                                                                    reference=form.reference.data,
                                                                    user_id=current_user.id),
                                       lambda _t: url_for("welfare.fund"))
        if ok:
            flash(_("已记录转入。"), "success")
            return redirect(where)
    return _page(topup=form)


@bp.post("/grants")
@allow("coordinator")
def grant():
    form = GrantForm(members=_members())
    if form.validate_on_submit():
        def work():
            ask = services.GrantAsk(db.session.get(User, form.user_id.data) if form.user_id.data else None,
                                    form.amount.data, form.starts_on.data, form.expires_on.data, form.purpose.data)
            return services.grant(_fund(), ask, granted_by=current_user.id)

        ok, where, _made = submit_once(form, work, lambda _g: url_for("welfare.fund"))
        if ok:
            flash(_("已发放。"), "success")
            return redirect(where)
    return _page(grant=form)


@bp.post("/grants/import")
@allow("coordinator")
def grant_import():
    """A list of grants: every row checked first and shown with its problems; granted only when all pass — all
    or nothing (checked again as they are written)."""
    form = GrantImportForm()
    table = None
    if form.validate_on_submit():
        data, purpose = form.file.data.read(), (form.purpose.data or "").strip()
        try:
            table, _asks = services.check_grant_import(_fund(), data, purpose=purpose)
        except DomainError as err:
            show_errors(form, err)
        else:
            if table.ok:
                ok, where, made = submit_once(form, lambda: services.import_grants(
                    _fund(), data, purpose=purpose, granted_by=current_user.id), lambda _m: url_for("welfare.fund"))
                if ok:
                    flash(_("已按名单发放 %(n)d 笔。", n=len(made or [])), "success")
                    return redirect(where)
            else:
                flash(ImportRejected(table).message, "error")
    return _page(upload=form, table=table if table is not None and not table.ok else None)


def _statement(month: str):
    if not clock.is_month(month):
        abort(404)
    return services.statement(_fund(), month)


@bp.get("/statements/<month>")
@allow("coordinator")
def statement(month: str):
    """The union's monthly statement, printable on A4: what its members' welfare paid, refunds, and the households
    and villages it reached."""
    return render_template("welfare/statement.html", statement=_statement(month), rule=services.refund_rule(),
                           action=ActionForm())


@bp.post("/statements/<month>.xlsx")
@allow("coordinator")
def statement_xlsx(month: str):
    """The statement as XLSX. An export is written to the audit log, so it is a POST (a GET never writes)."""
    found = _statement(month)
    if not ActionForm().validate_on_submit():
        abort(400)
    unit_of_work.run(lambda: audit("export", None, f"welfare statement {found.month}", user_id=current_user.id,
                                   object_type="welfare_fund", object_id=found.fund.id))
    return xlsx_response(f"welfare-{found.fund.organization_id}-{found.month}.xlsx", services.statement_rows(found))

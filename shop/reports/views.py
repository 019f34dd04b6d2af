"""The staff home, the admin's consumption-assistance report, its exports, targets and the year's summary."""
from itertools import chain

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import clock, edge, unit_of_work
from ..access import allow
from ..accounts.models import Organization
from ..audit.services import record as audit
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..forms import ActionForm
from ..formatting import AmountTooLarge, parse_yuan
from ..tabular import csv_chunks
from ..viewutils import act, csv_response, export_choice, xlsx_response
from . import services

bp = Blueprint("reports", __name__)


@bp.get("/my")
@allow("staff")
def staff_home():
    today = clock.today()
    return render_template("reports/staff_home.html", home=services.staff_home(current_user, today),
                           action=ActionForm(), year=today.year)


@bp.get("/manage/today")
@allow("manager", "admin")
def manager_home():
    """The service point's day: what to confirm, pack and hand over, holds about to end, lots near best-before,
    refused units to handle."""
    days = current_app.config["SHOP_EXPIRY_WARNING_DAYS"]
    return render_template("reports/manager_home.html", today=services.manager_today(clock.now(), days), days=days,
                           now=clock.now())


def _period() -> services.Period | None:
    try:
        return services.Period.parse(request.args.get("from"), request.args.get("to"), request.args.get("org"),
                                     clock.today())
    except DomainError as err:
        flash(err.message, "error")
        return None


def _organizations():
    return db.session.scalars(select(Organization).order_by(Organization.kind.desc(), Organization.name)).all()


@bp.get("/admin/report")
@allow("admin")
def report():
    period = _period()
    if period is None:
        return redirect(url_for("reports.report"))
    today = clock.today()
    return render_template("reports/report.html", report=services.build(period, today), period=period,
                           organizations=_organizations(), targets=services.targets(period.start.year, today),
                           without_sales=services.rows("no_sales", period), action=ActionForm(), today=today)


@bp.get("/admin/report/summary")
@allow("admin")
def summary():
    today = clock.today()
    year = request.args.get("year", type=int) or today.year
    if not 2000 <= year <= 2100:
        abort(404)
    report = services.build(services.Period.year(year), today)
    return render_template("reports/summary.html", report=report, year=year,
                           sentences=services.summary_sentences(report))


@bp.post("/admin/report/export/<name>.<fmt>")
@allow("admin")
def export(name: str, fmt: str):
    """One report table as CSV or XLSX. Exports can hold personal data, so each is written to the audit log
    first (which is why an export is a POST: a GET never writes)."""
    if name not in services.TABLES or fmt not in ("csv", "xlsx"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    period = _period()
    if period is None:
        return redirect(url_for("reports.report"))
    unit_of_work.run(lambda: audit("export", detail=f"report {name} {period.start}–{period.end}",
                                   object_type="report"))
    table = services.export(name, period)
    filename = f"{name}-{period.start}-{period.end}.{fmt}"
    if fmt == "xlsx":
        rows = db.session.execute(table.query.execution_options(yield_per=1000))  # streamed from the database
        return xlsx_response(filename, [(name, chain([table.header], table.rows(rows)))])
    encoding = export_choice()

    def chunks():
        # The response is written after the view has returned and its database session is gone, so the rows
        # stream through a connection of their own (a server-side cursor on PostgreSQL).
        with db.engine.connect() as connection:
            rows = connection.execution_options(stream_results=True, yield_per=1000).execute(table.query)
            yield from csv_chunks(table.header, table.rows(rows), encoding=encoding)

    return csv_response(filename, chunks(), encoding=encoding)


@bp.post("/admin/targets")
@allow("admin")
def set_target():
    if not ActionForm().validate_on_submit():
        abort(400)
    organization_id = edge.optional_id(request.form.get("organization_id"))
    organization = db.session.get(Organization, organization_id) if organization_id else None
    year = edge.optional_id(request.form.get("year")) or clock.today().year

    def work():
        if organization is None:
            raise ValidationFailed.on("organization_id", _("未知的单位。"))
        try:
            amount = parse_yuan(request.form.get("target", ""))
        except AmountTooLarge:
            raise ValidationFailed.on("target", _("金额过大（最多 ¥999,999,999.99）。")) from None
        except ValueError:
            raise ValidationFailed.on("target", _("请输入金额，例如 12.50（最多两位小数）。")) from None
        return services.set_target(organization, year, amount)

    act(work, lambda _target: _("已保存 %(o)s %(y)d 年的消费帮扶目标。", o=organization.name, y=year))
    return redirect(url_for("reports.report", **{"from": f"{year}-01-01", "to": f"{year}-12-31"}))

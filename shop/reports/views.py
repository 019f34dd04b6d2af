import csv
import io
import tempfile
from datetime import date

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ..access import allow
from ..accounts.models import Organization
from ..errors import DomainError
from ..extensions import db
from ..forms import ActionForm
from ..formatting import parse_yuan, today_local
from . import services
from ..audit.services import record as audit

bp = Blueprint("reports", __name__)


@bp.get("/my")
@allow("staff")
def staff_home():
    today = today_local()
    return render_template("reports/staff_home.html", home=services.staff_home(current_user, today),
                           action=ActionForm(), year=today.year)


def _period() -> services.Period | None:
    try:
        return services.Period.parse(request.args.get("from"), request.args.get("to"), request.args.get("org"),
                                     today_local())
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
    today = today_local()
    return render_template("reports/report.html", report=services.build(period, today), period=period,
                           organizations=_organizations(), targets=services.targets(period.start.year, today),
                           without_sales=services.rows("no_sales", period), action=ActionForm(), today=today)


@bp.get("/admin/report/summary")
@allow("admin")
def summary():
    today = today_local()
    year = request.args.get("year", type=int) or today.year
    if not 2000 <= year <= 2100:
        abort(404)
    report = services.build(services.Period(date(year, 1, 1), date(year, 12, 31)), today)
    return render_template("reports/summary.html", report=report, year=year,
                           sentences=services.summary_sentences(report))


@bp.get("/admin/report/export/<name>.<fmt>")
@allow("admin")
def export(name: str, fmt: str):
    if name not in services.TABLES or fmt not in ("csv", "xlsx"):
        abort(404)
    period = _period()
    if period is None:
        return redirect(url_for("reports.report"))
    headers, query = services.table(name, period)
    filename = f"{name}-{period.start}-{period.end}.{fmt}"
    _audit_export(name, period)
    if fmt == "csv":
        def generate():
            # The response is written after the view has returned and its database session is gone, so the
            # rows stream through a connection of their own (a server-side cursor on PostgreSQL).
            with db.engine.connect() as connection:
                rows = connection.execution_options(stream_results=True, yield_per=1000).execute(query)
                buffer = io.StringIO()
                writer = csv.writer(buffer)
                writer.writerow(headers)
                for row in rows:
                    writer.writerow(row)
                    if buffer.tell() > 64_000:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
                yield buffer.getvalue()

        return Response(stream_with_context(generate()), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={filename}"})
    rows = db.session.execute(query.execution_options(yield_per=1000))  # streamed from the database
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)  # rows go straight to the file, not into memory
    sheet = workbook.create_sheet(name)
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    spool = tempfile.TemporaryFile()
    workbook.save(spool)
    spool.seek(0)
    return send_file(spool, as_attachment=True, download_name=filename,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _audit_export(name: str, period) -> None:
    """Exports can hold personal data: each one is written to the audit log."""
    audit("export", detail=f"report {name} {period.start}–{period.end}", object_type="report")
    db.session.commit()


@bp.post("/admin/targets")
@allow("admin")
def set_target():
    if not ActionForm().validate_on_submit():
        abort(400)
    organization = db.session.get(Organization, request.form.get("organization_id", type=int) or 0)
    year = request.form.get("year", type=int) or today_local().year
    try:
        if organization is None:
            raise DomainError(_("未知的单位。"))
        try:
            amount = parse_yuan(request.form.get("target", ""))
        except ValueError:
            raise DomainError(_("请输入金额，例如 12.50（最多两位小数）。")) from None
        services.set_target(organization, year, amount)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        db.session.commit()
        flash(_("已保存 %(o)s %(y)d 年的消费帮扶目标。", o=organization.name, y=year), "success")
    return redirect(url_for("reports.report", **{"from": f"{year}-01-01", "to": f"{year}-12-31"}))

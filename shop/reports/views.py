"""The staff home, a unit's own page, the admin's consumption-assistance report, its exports, targets and the year's
summary."""
from itertools import chain

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from .. import clock, edge, unit_of_work
from ..access import allow
from ..glossary import label
from ..producers import services as producers
from ..producers.models import Household
from ..accounts.models import Organization
from ..audit.services import record as audit
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..forms import ActionForm
from ..formatting import AmountTooLarge, parse_yuan, yuan_decimal
from ..tabular import csv_chunks
from ..exports import csv_response, csv_table, export_choice, xlsx_response
from ..viewutils import act, form_refusal, submit
from ..welfare import services as welfare
from . import services, units
from .forms import VisitForm

bp = Blueprint("reports", __name__)


def _watch_rules() -> services.WatchRules:
    config = current_app.config
    return services.WatchRules(config["SHOP_WATCH_INCOME_LINE_FEN"], config["SHOP_WATCH_DROP_PERCENT"],
                               config["SHOP_WATCH_IDLE_DAYS"])


@bp.get("/my")
@allow("staff")
def staff_home(visit_form: VisitForm | None = None):
    today = clock.today()
    home = services.staff_home(current_user, today)
    figures = services.household_figures(home.households, today)
    notes = producers.visit_notes([h.id for h in home.households])
    watched = {f.household.id: f.reasons for f in services.watch_list(today, _watch_rules(), user=current_user)}
    grants = [g for g in welfare.member_grants(current_user.id) if g.remaining_fen > 0 and g.expires_on >= today]
    return render_template("reports/staff_home.html", home=home, figures=figures, notes=notes, watched=watched,
                           action=ActionForm(), year=today.year, visit_form=visit_form or VisitForm(formdata=None),
                           today=today, grants=grants)


def _year(today) -> int:
    year = request.args.get("year", type=int) or today.year
    if not 2000 <= year <= 2100:
        abort(404)
    return year


@bp.get("/unit")
@allow("coordinator")
def unit_home():
    """The unit's year: its target and progress, its staff's buying, the year's sentences for the unit."""
    today = clock.today()
    page = units.unit_page(current_user.organization, _year(today), today)
    return render_template("reports/unit_home.html", page=page, action=ActionForm(), today=today)


@bp.get("/unit/staff/<int:user_id>")
@allow("coordinator")
def unit_staff(user_id: int):
    """One of the unit's staff: the households they are paired with, and how each is earning."""
    member = units.unit_member(current_user.organization, user_id)
    if member is None:
        abort(404)
    today = clock.today()
    pairings = units.pairings_of(member)
    figures = services.household_figures([h for h, _village in pairings], today)
    return render_template("reports/unit_staff.html", member=member, pairings=dict((h.id, v) for h, v in pairings),
                           figures=figures, year=today.year)


@bp.post("/unit/export.<fmt>")
@allow("coordinator")
def unit_export(fmt: str):
    """The unit's staff and their year's buying, as CSV or XLSX (written to the audit log first)."""
    if fmt not in ("csv", "xlsx"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    today = clock.today()
    year = _year(today)
    organization = current_user.organization
    unit_of_work.run(lambda: audit("export", detail=f"unit {organization.name} {year}", object_type="unit"))
    header = [_("用户名"), _("姓名"), _("包保户数"), _("采购天数"), _("采购金额（元）")]
    rows = [[row.user.username, row.user.display_name, row.households, row.orders, yuan_decimal(row.spent_fen)]
            for row in units.staff_rows(organization, year)]
    filename = f"unit-{year}.{fmt}"
    if fmt == "xlsx":
        return xlsx_response(filename, [(_("职工采购"), [header] + rows)])
    return csv_table(filename, header, rows, encoding=export_choice())


@bp.post("/my/households/<int:household_id>/visits")
@allow("staff")
def visit_note(household_id: int):
    household = db.get_or_404(Household, household_id)
    form = VisitForm()
    if form.validate_on_submit():
        ok, _note = submit(form, lambda: producers.add_visit_note(current_user, household, visited_on=form.visited_on.data,
                                                                  note=form.note.data))
        if ok:
            flash(_("已记录走访。"), "success")
            return redirect(url_for("reports.staff_home") + f"#household-{household.id}")
    flash(form_refusal(form) if form.errors else next(iter(form.form_errors), _("请求有误。")), "error")
    return redirect(url_for("reports.staff_home") + f"#household-{household.id}")


# --- the watch list (防止返贫) --------------------------------------------------------------------------------

@bp.get("/manage/watch")
@allow("manager", "admin")
def watch():
    today = clock.today()
    rules = _watch_rules()
    watched = services.watch_list(today, rules)
    notes = producers.visit_notes([f.household.id for f in watched], 1)
    months = services.monthly_incomes([f.household.id for f in watched], 12, today)  # one query for all
    unit_of_work.run(lambda: audit("watch.view", detail=f"{len(watched)} households", object_type="watch"))
    return render_template("reports/watch.html", watched=watched, rules=rules, notes=notes, months=months,
                           today=today, action=ActionForm())


@bp.post("/manage/watch/export.<fmt>")
@allow("manager", "admin")
def watch_export(fmt: str):
    if fmt not in ("csv", "xlsx"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    today = clock.today()
    watched = services.watch_list(today, _watch_rules())
    unit_of_work.run(lambda: audit("export", detail=f"watch list {today}", object_type="watch"))
    header = [_("户编号"), _("户主"), _("属性"), _("人口"), _("近12个月收入（元）"), _("近12个月人均（元）"),
              _("再往前12个月（元）"), _("今年收入（元）"), _("最近销售"), _("现有库存"), _("帮扶责任人"), _("原因")]
    rows = [[f.household.code, f.household.head_name, label("household_status", f.household.status), f.household.members,
             yuan_decimal(f.twelve_months_fen), yuan_decimal(f.twelve_months_per_person_fen),
             yuan_decimal(f.twelve_months_before_fen), yuan_decimal(f.this_year_fen),
             clock.local_day(f.last_sale).isoformat() if f.last_sale else "",
             f.stock_text, "、".join(u.display_name for u in f.staff),
             "；".join(f.reasons)] for f in watched]
    filename = f"watch-{today}.{fmt}"
    if fmt == "xlsx":
        return xlsx_response(filename, [(_("监测名单"), [header] + rows)])
    encoding = export_choice()
    return csv_table(filename, header, rows, encoding=encoding)


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
                           organizations=_organizations(), targets=services.targets(period.end.year, today),
                           presets=services.period_presets(today),
                           without_sales=services.rows("no_sales", period), action=ActionForm(), today=today)


@bp.get("/admin/report/summary")
@allow("admin")
def summary():
    today = clock.today()
    year = _year(today)
    report = services.build(services.Period.year(year), today, for_summary=True)  # what the sentences say
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

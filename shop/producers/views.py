import time

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import clock
from ..access import PUBLIC, allow, has_role
from ..accounts import throttle
from ..accounts.models import User
from ..audit.services import record as audit
from ..reports import services as reports
from ..inventory import services as inventory
from ..errors import DomainError
from ..extensions import db
from .. import edge, unit_of_work
from ..qr import qr_svg
from ..viewutils import act, render_form, show_errors, submit
from . import services
from ..forms import ActionForm
from .forms import EnterpriseForm, HouseholdForm, ImportConfirmForm, ImportUploadForm, PairingForm, PinForm, VillageForm
from .models import HOUSEHOLD_STATUSES, Enterprise, Household, Pairing, Village

bp = Blueprint("producers", __name__)


def _villages():
    return db.session.scalars(select(Village).order_by(Village.name)).all()


# --- households --------------------------------------------------------------------------

@bp.get("/manage/households")
@allow("manager", "admin")
def households():
    q = request.args.get("q", "").strip()
    status = request.args.get("status") or None
    query = services.search_households(q, status).options(selectinload(Household.pairing).selectinload(Pairing.user))
    page = db.paginate(query, per_page=50)
    return render_template("producers/households.html", page=page, q=q, status=status, statuses=HOUSEHOLD_STATUSES)


def _household_data(form: HouseholdForm) -> services.HouseholdData:
    risk = {"open": False, "eliminated": True}.get(form.risk.data)
    return services.HouseholdData(
        code=form.code.data.strip(), head_name=form.head_name.data.strip(), members=form.members.data,
        status=form.status.data, risk_eliminated=risk if form.status.data == "monitored" else None,
        phone=(form.phone.data or "").strip() or None, village_id=form.village_id.data,
        note=(form.note.data or "").strip() or None,
    )


@bp.route("/manage/households/new", methods=["GET", "POST"])
@allow("manager", "admin")
def household_new():
    form = HouseholdForm(villages=_villages())
    if form.validate_on_submit():
        ok, household = submit(form, lambda: services.create_household(_household_data(form)))
        if ok:
            flash(_("已登记农户 %(c)s。", c=household.code), "success")
            return redirect(url_for("producers.household", household_id=household.id))
    return render_form("producers/household_form.html", form, household=None)


@bp.get("/manage/households/<int:household_id>")
@allow("manager", "admin")
def household(household_id: int):
    household = db.get_or_404(Household, household_id)
    return render_template("producers/household.html", household=household, card=services.current_card(household.id),
                           action=ActionForm(), notes=services.visit_notes([household.id], 20)[household.id],
                           moves=services.household_moves(household.id))


def card_qr(card) -> tuple[str, str]:
    """The card's link and its QR code (SVG, drawn by segno on the server)."""
    url = services.card_url(card)
    return url, qr_svg(url)


def _card_page(household: Household, card, pin: str | None):
    url, qr = card_qr(card)
    return render_template("producers/card.html", household=household, card=card, pin=pin, url=url, qr_svg=qr)


def _card_action(household_id: int, work):
    household = db.get_or_404(Household, household_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    ok, made = act(lambda: work(household))
    if not ok:
        return redirect(url_for("producers.household", household_id=household.id))
    card, pin = made
    return _card_page(household, card, pin)  # the PIN is shown this once: print the card now


@bp.post("/manage/households/<int:household_id>/card")
@allow("manager")
def card_issue(household_id: int):
    return _card_action(household_id, lambda h: services.issue_card(h, user_id=current_user.id))


@bp.post("/manage/households/<int:household_id>/card/pin")
@allow("manager")
def card_pin(household_id: int):
    return _card_action(household_id, lambda h: services.reset_pin(h, user_id=current_user.id))


@bp.post("/manage/households/<int:household_id>/card/revoke")
@allow("manager")
def card_revoke(household_id: int):
    household = db.get_or_404(Household, household_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    act(lambda: services.revoke_card(household, user_id=current_user.id), _("卡已停用：它的链接和密码立即失效。"))
    return redirect(url_for("producers.household", household_id=household.id))


@bp.get("/manage/households/<int:household_id>/card")
@allow("manager", "admin")
def card(household_id: int):
    """The card to print again (without its PIN, which is never kept)."""
    household = db.get_or_404(Household, household_id)
    found = services.current_card(household.id)
    if found is None:
        abort(404)
    return _card_page(household, found, None)


@bp.route("/manage/households/<int:household_id>/edit", methods=["GET", "POST"])
@allow("manager", "admin")
def household_edit(household_id: int):
    household = db.get_or_404(Household, household_id)
    form = HouseholdForm(obj=household, villages=_villages())
    if request.method == "GET":
        form.risk.data = {True: "eliminated", False: "open"}.get(household.risk_eliminated, "")
    if form.validate_on_submit():
        ok, _done = submit(form, lambda: inventory.save_household(household, _household_data(form),
                                                                  user_id=current_user.id))
        if ok:
            flash(_("已保存。"), "success")
            return redirect(url_for("producers.household", household_id=household.id))
    return render_form("producers/household_form.html", form, household=household)


# --- imports (households and pairings share the upload → preview → confirm flow) -------------

def _import_flow(kind: str, template: str, done_endpoint: str):
    """Upload → a preview of every row with its problems → confirm. All-or-nothing (the rules live in
    `services.preview_import` and `services.confirm_import`)."""
    with_village = services.IMPORTS[kind].with_village
    upload = ImportUploadForm(villages=_villages())
    confirm = ImportConfirmForm()
    table, token, village_id = None, None, None
    if request.method == "POST" and "token" not in request.form:
        if upload.validate_on_submit():
            village_id = upload.village_id.data if with_village else None
            try:
                preview = services.preview_import(kind, current_user.id, upload.file.data.read(), village_id)
            except DomainError as err:
                show_errors(upload, err)
            else:
                table, token = preview.table, preview.token
    elif request.method == "POST" and confirm.validate_on_submit():
        token = confirm.token.data
        village_id = edge.optional_id(confirm.village_id.data) if with_village else None
        try:
            created = unit_of_work.run(lambda: services.confirm_import(kind, current_user.id, token, village_id))
        except services.ImportRejected as err:
            table, token = err.table, None
            flash(err.message, "error")
        except DomainError as err:
            flash(err.message, "error")
            return redirect(request.path)
        else:
            services.forget_import(kind, current_user.id, token)
            flash(_("已导入 %(n)d 条记录。", n=len(created)), "success")
            return redirect(url_for(done_endpoint))
    if token:
        confirm.token.data = token
        confirm.village_id.data = village_id or ""
    refused = (table is not None and not table.ok) or (request.method == "POST" and upload.errors and table is None)
    return render_template(template, upload=upload, confirm=confirm, table=table, token=token,
                           with_village=with_village), 422 if refused else 200


@bp.route("/manage/households/import", methods=["GET", "POST"])
@allow("manager", "admin")
def household_import():
    return _import_flow("households", "producers/import.html", "producers.households")


@bp.route("/admin/pairings/import", methods=["GET", "POST"])
@allow("admin", "coordinator")
def pairing_import():
    return _import_flow("pairings", "producers/import.html", "producers.pairings")


# --- enterprises and villages --------------------------------------------------------------

@bp.get("/manage/enterprises")
@allow("manager", "admin")
def enterprises():
    items = db.session.scalars(select(Enterprise).order_by(Enterprise.name)).all()
    return render_template("producers/enterprises.html", enterprises=items)


def _enterprise_form(enterprise: Enterprise | None):
    form = EnterpriseForm(obj=enterprise, villages=_villages())
    if form.validate_on_submit():
        ok, saved = submit(form, lambda: services.save_enterprise(enterprise, name=form.name.data, kind=form.kind.data,
                                                  village_id=form.village_id.data,
                                                  contact_name=(form.contact_name.data or "").strip(),
                                                  phone=(form.phone.data or "").strip()))
        if ok:
            flash(_("已保存企业 %(n)s。", n=saved.name), "success")
            return redirect(url_for("producers.enterprises"))
    return render_form("producers/enterprise_form.html", form, enterprise=enterprise)


@bp.route("/manage/enterprises/new", methods=["GET", "POST"])
@allow("manager", "admin")
def enterprise_new():
    return _enterprise_form(None)


@bp.route("/manage/enterprises/<int:enterprise_id>/edit", methods=["GET", "POST"])
@allow("manager", "admin")
def enterprise_edit(enterprise_id: int):
    return _enterprise_form(db.get_or_404(Enterprise, enterprise_id))


@bp.route("/manage/villages", methods=["GET", "POST"])
@allow("manager", "admin")
def villages():
    """A manager sees the villages they run; only the county (an admin) adds a village, and grants it."""
    form = VillageForm()
    if request.method == "POST" and not has_role("admin"):
        abort(403)
    if form.validate_on_submit():
        ok, _made = submit(form, lambda: services.create_village(form.name.data, form.town.data))
        if ok:
            flash(_("已添加村。"), "success")
            return redirect(url_for("producers.villages"))
    return render_form("producers/villages.html", form, villages=_villages())


# --- pairings (the county's admin; a unit's coordinator for the unit's staff) and my households (staff) -------------------------------------------------

def _staff():
    return db.session.scalars(select(User).where(User.role == "staff", User.active.is_(True)).order_by(User.username)).all()


@bp.route("/admin/pairings", methods=["GET", "POST"])
@allow("admin", "coordinator")
def pairings():
    form = PairingForm(staff=_staff())
    if form.validate_on_submit():
        ok, _made = submit(form, lambda: services.pair_by_code(db.session.get(User, form.user_id.data),
                                                               form.household_code.data))
        if ok:
            flash(_("已建立包保关系。"), "success")
            return redirect(url_for("producers.pairings"))
    query = (select(Pairing).join(Pairing.user).options(selectinload(Pairing.household), selectinload(Pairing.user))
             .order_by(User.username, Pairing.id))
    page = db.paginate(query, per_page=100)
    return render_form("producers/pairings.html", form, page=page, action=ActionForm())


@bp.post("/admin/pairings/<int:pairing_id>/delete")
@allow("admin", "coordinator")
def pairing_delete(pairing_id: int):
    pairing = db.get_or_404(Pairing, pairing_id)
    if ActionForm().validate_on_submit():
        act(lambda: services.unpair(pairing), _("已解除包保关系。"))
    return redirect(url_for("producers.pairings"))


@bp.get("/my/households")
@allow("staff")
def my_households():
    return render_template("producers/my_households.html", households=services.paired_households(current_user))


# --- a household's own page, opened with its card's PIN -------------------------------------------------------

CARD_SESSION_SECONDS = 30 * 60
PRIVATE_HEADERS = {"X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _opened(card) -> bool:
    held = session.get("cards", {}).get(str(card.id))
    return bool(held) and held[0] == card.pin_version and held[1] > time.time()


@bp.route("/h/<token>", methods=["GET", "POST"])
@allow(PUBLIC)
def household_card_page(token: str):
    """A household's own page: its link is on its card (QR code); its 6-digit PIN opens it for half an hour.
    A wrong PIN is told nothing but how many tries are left; a revoked card opens nothing, at once."""
    g.referrer_policy = "no-referrer"  # the page's address is the household's key: never sent on
    card = unit_of_work.read(lambda: services.card_by_token(token))
    if card is None:
        return render_template("producers/household_closed.html"), 404, PRIVATE_HEADERS
    form, left, problem, status = PinForm(), None, None, 200
    if request.method == "POST" and form.validate_on_submit():
        address = request.remote_addr
        if throttle.card_address_blocked(address):
            problem, status = _("这台设备输错密码的次数太多了，请稍后再试。"), 429
        else:
            result = unit_of_work.run(lambda: services.try_pin(token, form.pin.data))
            if result.ok:
                cards = dict(session.get("cards", {}))
                cards[str(card.id)] = (card.pin_version, time.time() + CARD_SESSION_SECONDS)
                session["cards"] = cards
                return redirect(url_for("producers.household_card_page", token=token), code=303)
            throttle.card_address_may_fail(address)
            if result.locked:
                problem, status = _("密码错误次数过多，请 30 分钟后再试，或请服务点重设密码。"), 429
            else:
                left, status = result.left, 422
    elif request.method == "POST":
        status = 422
    if request.method == "GET" and _opened(card):
        household = card.household
        if current_user.is_authenticated and current_user.role in ("staff", "manager", "admin"):
            unit_of_work.run(lambda: audit("household.page.view", household, household.code))
        config = current_app.config
        page = reports.household_page(household, clock.today(), every_months=config["SHOP_PAYOUT_EVERY_MONTHS"],
                                       payout_day=config["SHOP_PAYOUT_DAY"])
        return render_template("producers/household_page.html", page=page, token=token, action=ActionForm()), 200, \
            PRIVATE_HEADERS
    return render_template("producers/household_pin.html", form=form, left=left, problem=problem), status, PRIVATE_HEADERS


@bp.post("/h/<token>/leave")
@allow(PUBLIC)
def household_card_leave(token: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    card = unit_of_work.read(lambda: services.card_by_token(token))
    if card is not None:
        cards = dict(session.get("cards", {}))
        cards.pop(str(card.id), None)
        session["cards"] = cards
    return redirect(url_for("producers.household_card_page", token=token), code=303)

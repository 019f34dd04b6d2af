from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import func, select

from .. import unit_of_work
from ..access import LOGIN, PUBLIC, allow
from ..errors import DomainError, ValidationFailed
from ..extensions import db
from ..forms import ActionForm
from ..notifications import services as notifications
from ..producers import services as producers
from ..reports import units
from ..viewutils import act, render_form, submit
from . import services, throttle
from .forms import ApiTokenForm, EmailForm, LoginForm, OrganizationForm, PasswordChangeForm, UnitForm, UserForm
from .models import Organization, User

bp = Blueprint("accounts", __name__)


def home_for(user: User) -> str:
    return {
        "manager": url_for("orders.manager_home"),
        "admin": url_for("reports.report"),
        "company": url_for("contracts.dashboard"),
        "staff": url_for("reports.staff_home"),
        "operator": url_for("points.operator_home"),
        "coordinator": url_for("reports.unit_home"),
    }.get(user.role, url_for("catalog.index"))


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


def _fresh_session() -> None:
    """Start a new session, keeping only the visitor's language."""
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale


def _too_many(refusal: throttle.TooManyAttempts):
    response = make_response(render_template("errors/error.html", code=429, message=refusal.message), 429)
    response.headers["Retry-After"] = str(refusal.wait)
    return response


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        try:  # the address's and this address's failures for the user are counted before any password is checked
            attempt = throttle.begin(form.username.data, request.remote_addr)
        except throttle.TooManyAttempts as refusal:
            return _too_many(refusal)
        user = services.authenticate(form.username.data, form.password.data)
        if user is not None:
            throttle.succeeded(attempt)
            _fresh_session()  # a fresh session for a fresh login (no fixation)
            session["sid"] = unit_of_work.run(lambda: services.record_login(
                user, ip=request.remote_addr, user_agent=request.headers.get("User-Agent")))
            session.permanent = True
            login_user(user)
            flash(_("欢迎，%(name)s。", name=user.display_name), "success")
            return redirect(_safe_next(request.args.get("next")) or home_for(user))
        failures = throttle.failed(attempt)
        unit_of_work.run(lambda: _failed_login(form.username.data, failures))
        form.password.errors.append(_("用户名或密码不正确。"))
    elif request.method == "GET" and request.args.get("next"):
        flash(_("请先登录。"), "info")
    return render_form("accounts/login.html", form)


def _failed_login(username: str, failures: int) -> None:
    """Record a failed login; when the username's failures first reach its limit, tell the user and the admins
    that guessing at its password is being slowed."""
    user = services.record_failed_login(username)
    if user is not None and failures == throttle.user_limit():
        notifications.login_failures(user, failures)


@bp.post("/logout")
@allow(LOGIN)
def logout():
    unit_of_work.run(lambda: services.end_login_session(session.get("sid")))
    logout_user()
    _fresh_session()
    flash(_("您已退出登录。"), "info")
    return redirect(url_for("catalog.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@allow(LOGIN)
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        def work():
            services.change_password(current_user, form.current_password.data, form.new_password.data)
            services.end_other_login_sessions(current_user, keep=session.get("sid"))

        try:
            unit_of_work.run(work)
        except DomainError as err:
            form.current_password.errors.append(err.message)
        else:
            login_user(current_user._get_current_object())  # this session goes on with the new version
            flash(_("密码已修改，其他设备上的登录和全部 API 令牌已失效。"), "success")
            return redirect(home_for(current_user))
    return render_form("accounts/password.html", form)


# --- my account: API tokens ------------------------------------------------------------------

def _profile(form: ApiTokenForm, new_token: str | None = None, email_form: EmailForm | None = None):
    email_form = email_form or EmailForm(formdata=None, email=current_user.email)
    response = render_form("accounts/profile.html", form, tokens=services.api_tokens(current_user),
                           new_token=new_token, action=ActionForm(), email_form=email_form)
    return (response[0], 422) if email_form.errors else response


@bp.post("/account/email")
@allow(LOGIN)
def email():
    form = EmailForm()
    if form.validate_on_submit():
        ok, _saved = submit(form, lambda: services.set_email(current_user, form.email.data))
        if ok:
            flash(_("已保存。通知会发到这个邮箱。") if form.email.data else _("已保存。不再发送通知邮件。"), "success")
            return redirect(url_for("accounts.profile"))
    return _profile(ApiTokenForm(formdata=None), email_form=form)


@bp.get("/account")
@allow(LOGIN)
def profile():
    return _profile(ApiTokenForm())


@bp.post("/account/tokens")
@allow(LOGIN)
def token_new():
    form = ApiTokenForm()
    if form.validate_on_submit():
        ok, made = submit(form, lambda: services.create_api_token(current_user, form.name.data))
        if ok:
            return _profile(ApiTokenForm(formdata=None), new_token=made[1])  # shown this once, never again
    return _profile(form)


@bp.post("/account/tokens/<int:token_id>/revoke")
@allow(LOGIN)
def token_revoke(token_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        unit_of_work.run(lambda: services.revoke_api_token(current_user, token_id))
    except DomainError:
        abort(404)
    flash(_("令牌已作废，使用它的程序将无法再访问。"), "success")
    return redirect(url_for("accounts.profile"))


# --- admin: users and organizations -------------------------------------------------------

def _organizations():
    return db.session.scalars(select(Organization).order_by(Organization.kind.desc(), Organization.name)).all()


@bp.get("/admin/users")
@allow("admin")
def users():
    role = request.args.get("role") or None
    query = select(User).order_by(User.role, User.username)
    if role:
        query = query.where(User.role == role)
    page = db.paginate(query, per_page=100)
    return render_template("accounts/users.html", page=page, role=role)


def _user_form_submit(form: UserForm, user: User | None):
    organization = db.session.get(Organization, form.organization_id.data) if form.organization_id.data else None

    villages = set(form.villages.data or ()) if form.role.data == "manager" else set()

    def work():
        if form.role.data == "manager" and not villages:
            raise ValidationFailed.on("villages", _("请为服务点管理员选择至少一个村。"))
        if user is None:
            if not form.password.data:
                raise ValidationFailed.on("password", _("新用户需要设置密码。"))
            saved = services.create_user(username=form.username.data, display_name=form.display_name.data,
                                         role=form.role.data, password=form.password.data, organization=organization,
                                         phone=form.phone.data, active=form.active.data)
        else:
            saved = services.update_user(user, display_name=form.display_name.data, role=form.role.data,
                                         organization=organization, phone=form.phone.data, active=form.active.data,
                                         new_password=form.password.data or None)
        producers.set_managed_villages(saved.id, villages)  # a manager runs these; anyone else, none
        return saved

    ok, saved = submit(form, work)
    return saved if ok else None


@bp.route("/admin/users/new", methods=["GET", "POST"])
@allow("admin")
def user_new():
    form = UserForm(organizations=_organizations(), villages=producers.village_choices())
    if form.validate_on_submit() and (user := _user_form_submit(form, None)) is not None:
        flash(_("已创建用户 %(u)s。", u=user.username), "success")
        return redirect(url_for("accounts.users"))
    return render_form("accounts/user_form.html", form, user=None)


@bp.route("/admin/users/<int:user_id>/edit", methods=["GET", "POST"])
@allow("admin")
def user_edit(user_id: int):
    user = db.get_or_404(User, user_id)
    form = UserForm(obj=user, organizations=_organizations(), villages=producers.village_choices())
    if request.method == "GET":
        form.organization_id.data = user.organization_id
        form.villages.data = sorted(producers.managed_villages(user.id))
    form.username.data = user.username  # usernames do not change
    if form.validate_on_submit() and _user_form_submit(form, user) is not None:
        flash(_("已保存用户 %(u)s。", u=user.username), "success")
        return redirect(url_for("accounts.users"))
    return render_form("accounts/user_form.html", form, user=user)


@bp.route("/admin/organizations", methods=["GET", "POST"])
@allow("admin")
def organizations():
    form = OrganizationForm()
    if form.validate_on_submit():
        ok, _made = submit(form, lambda: services.create_organization(form.name.data, form.kind.data))
        if ok:
            flash(_("已添加单位。"), "success")
            return redirect(url_for("accounts.organizations"))
    counts = dict(db.session.execute(select(User.organization_id, func.count()).group_by(User.organization_id)).all())
    return render_form("accounts/organizations.html", form, organizations=_organizations(), counts=counts,
                       supported=producers.supported_village_names())


@bp.route("/admin/organizations/<int:organization_id>", methods=["GET", "POST"])
@allow("admin")
def organization(organization_id: int):
    """A unit: its name and the villages it supports; removed only when it has no history."""
    unit = db.get_or_404(Organization, organization_id)
    form = UnitForm(obj=unit, villages=producers.village_choices())
    if request.method == "GET":
        form.villages.data = sorted(producers.supported_villages(unit.id))
    if form.validate_on_submit():
        ok, _saved = submit(form, lambda: units.save_unit(unit, name=form.name.data, villages=set(form.villages.data or ()),
                                                          user_id=current_user.id))
        if ok:
            flash(_("已保存单位 %(u)s。", u=unit.name), "success")
            return redirect(url_for("accounts.organizations"))
    return render_form("accounts/organization.html", form, unit=unit, history=units.unit_history(unit.id),
                       action=ActionForm())


@bp.post("/admin/organizations/<int:organization_id>/delete")
@allow("admin")
def organization_delete(organization_id: int):
    unit = db.get_or_404(Organization, organization_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    name = unit.name
    ok, _done = act(lambda: units.delete_unit(unit, user_id=current_user.id), _("已删除单位 %(u)s。", u=name))
    return redirect(url_for("accounts.organizations") if ok else url_for("accounts.organization",
                                                                          organization_id=organization_id))

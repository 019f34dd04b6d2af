"""The bell (every user's notifications) and the admin's channel settings with a test button."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from .. import edge, unit_of_work
from ..access import LOGIN, allow
from ..extensions import db
from ..forms import ActionForm
from ..viewutils import after_response, render_form, submit
from . import sender, services
from .forms import EmailChannelForm, RobotChannelForm, TestMessageForm
from .models import Notification

bp = Blueprint("notifications", __name__)


@bp.get("/notifications")
@allow(LOGIN)
def inbox():
    page = db.paginate(services.inbox(current_user.id), per_page=30, error_out=False)
    return render_template("notifications/inbox.html", page=page, action=ActionForm())


@bp.post("/notifications/read")
@allow(LOGIN)
def read_all():
    if not ActionForm().validate_on_submit():
        abort(400)
    unit_of_work.run(lambda: services.mark_read(current_user.id))
    return redirect(url_for("notifications.inbox"))


@bp.post("/notifications/<int:notification_id>/open")
@allow(LOGIN)
def open_one(notification_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    found = db.session.get(Notification, notification_id)
    if found is None or found.user_id != current_user.id:
        abort(404)
    link = found.link if found.link and found.link.startswith("/") and not found.link.startswith("//") else None
    unit_of_work.run(lambda: services.mark_read(current_user.id, notification_id))
    return redirect(link or url_for("notifications.inbox"))


# --- channels (admin) ------------------------------------------------------------------------------------------

ROBOT_NAMES = {"wecom": _l("企业微信群机器人"), "dingtalk": _l("钉钉群机器人")}


def _forms(formdata_for: str | None = None):
    saved = services.channel_settings()

    def initial(kind):
        channel = saved.get(kind)
        values = dict(channel.settings or {}) if channel else {}
        values.pop("password", None)
        values.pop("secret", None)
        return dict(values, enabled=bool(channel and channel.enabled))

    email = EmailChannelForm(prefix="email", formdata=request.form if formdata_for == "email" else None,
                             data=initial("email"))
    robots = {kind: RobotChannelForm(prefix=kind, formdata=request.form if formdata_for == kind else None,
                                     data=initial(kind)) for kind in ROBOT_NAMES}
    return email, robots, saved


def _settings_page(email, robots, saved, test=None):
    return render_form("notifications/settings.html", email if email.errors else next(
        (f for f in robots.values() if f.errors), email), email_form=email, robots=robots, saved=saved,
        robot_names=ROBOT_NAMES, test=test or TestMessageForm(formdata=None, recipient=current_user.email),
        summary=services.outbox_summary(), failures=services.recent_failures(), tests=services.latest_tests(),
        plain=services.plain_secrets())


@bp.get("/admin/notifications")
@allow("admin")
def settings():
    return _settings_page(*_forms())


@bp.post("/admin/notifications/<kind>")
@allow("admin")
def save(kind: str):
    if kind not in ("email", *ROBOT_NAMES):
        abort(404)
    email, robots, saved = _forms(kind)
    form = email if kind == "email" else robots[kind]
    if form.validate_on_submit():
        values = {k: v for k, v in form.data.items() if k not in ("enabled", "csrf_token")}
        ok, _saved = submit(form, lambda: services.save_channel(kind, enabled=form.enabled.data, settings=values))
        if ok:
            flash(_("已保存通知设置。"), "success")
            return redirect(url_for("notifications.settings"))
    return _settings_page(email, robots, saved)


@bp.post("/admin/notifications/<kind>/test")
@allow("admin")
def test(kind: str):
    """Queue one test message for the channel; it is sent once this answer has gone out (never while the
    request waits), and the settings page shows how it went."""
    if kind not in ("email", *ROBOT_NAMES):
        abort(404)
    form = TestMessageForm()
    if not form.validate_on_submit():
        abort(400)
    recipient = "group" if kind != "email" else (form.recipient.data or "").strip()
    if kind == "email" and "@" not in recipient:
        flash(_("请填写测试邮件的收件地址。"), "error")
        return redirect(url_for("notifications.settings"))
    if services.settings_for(kind) is None:
        flash(_("请先启用并保存这个通道。"), "error")
        return redirect(url_for("notifications.settings"))
    message_id = unit_of_work.run(lambda: services.queue_test(
        kind, edge.clean_text(recipient), _("消费帮扶商城测试消息"), _("收到这条消息，说明通知通道设置正确。")))
    after_response(lambda: sender.send_due(only=[message_id]))
    flash(_("测试消息已排入发送队列，几秒后刷新本页即可看到结果。"), "info")
    return redirect(url_for("notifications.settings", _anchor=f"channel-{kind}"))

from datetime import date, timedelta

from flask import Blueprint, flash, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import allow
from ..accounts.models import User
from ..extensions import db
from .. import edge
from ..clock import day_start
from .models import AuditEvent

bp = Blueprint("audit", __name__)


@bp.get("/admin/audit")
@allow("admin")
def log():
    query = select(AuditEvent).options(selectinload(AuditEvent.user)).order_by(AuditEvent.id.desc())
    username = request.args.get("user", "").strip()
    object_type = request.args.get("object", "").strip()
    object_id = request.args.get("id", "").strip()
    if username:
        query = query.join(User, User.id == AuditEvent.user_id).where(User.username == username)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if (wanted := edge.optional_id(object_id)) is not None:
        query = query.where(AuditEvent.object_id == wanted)
    try:
        if request.args.get("from"):
            query = query.where(AuditEvent.at >= day_start(date.fromisoformat(request.args["from"])))
        if request.args.get("to"):
            query = query.where(AuditEvent.at < day_start(date.fromisoformat(request.args["to"]) + timedelta(days=1)))
    except ValueError:
        flash(_("日期格式应为 YYYY-MM-DD。"), "error")
    page = db.paginate(query, per_page=100)
    return render_template("audit/log.html", page=page)

"""Health check and language choice."""
import logging

from flask import Blueprint, current_app, jsonify, redirect, request, session, url_for
from sqlalchemy import text

from . import unit_of_work
from .access import PUBLIC, allow
from .extensions import db

bp = Blueprint("system", __name__)


@bp.get("/healthz")
@allow(PUBLIC)
def healthz():
    if database_ok():
        return jsonify(status="ok", database="ok")
    return jsonify(status="error", database="error"), 503


@bp.get("/favicon.ico")
@allow(PUBLIC)
def favicon():
    """Browsers ask for /favicon.ico whatever the page says."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/lang/<code>")
@allow(PUBLIC)
def set_language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
    target = request.args.get("next") or ""
    # only local paths: never an open redirect
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("catalog.index")
    return redirect(target)


def database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        logging.getLogger(__name__).exception("database health check failed")
        unit_of_work.discard()
        return False

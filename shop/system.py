"""Health check and language choice."""
from flask import Blueprint, current_app, jsonify, redirect, request, session, url_for

from .access import PUBLIC, allow

bp = Blueprint("system", __name__)


@bp.get("/healthz")
@allow(PUBLIC)
def healthz():
    from . import database_ok

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
    if code in current_app.config["SHOP_LOCALES"]:
        session["locale"] = code
    target = request.args.get("next") or ""
    # only local paths: never an open redirect
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("catalog.index")
    return redirect(target)

"""Site-wide small routes: the language a visitor chose, and the icon browsers ask for."""
from flask import Blueprint, current_app, redirect, request, session, url_for

from .access import PUBLIC, allow

bp = Blueprint("site", __name__)


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

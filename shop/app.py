"""The composition root: create_app() builds the Flask application from the shop's parts — the only module
that knows every front (pages, API, commands) and every domain."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, jsonify, render_template, request, session
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import formatting, models, unit_of_work  # noqa: F401  (models: the whole schema, for Alembic)
from .access import enforce_access, has_role, is_back_office
from .accounts.services import load_user
from .accounts.views import bp as accounts_bp
from .api import register_api
from .api.core import api_locale, authenticate_api_request, http_error_json
from .audit.views import bp as audit_bp
from .catalog.views import bp as catalog_bp
from .catalog.views import manage_bp as catalog_manage_bp
from .cli import register as register_commands
from .config import DEFAULT_INSTANCE_PATH, PROJECT_ROOT, load_config
from .contracts.views import bp as contracts_bp
from .db_sqlite import configure_sqlite
from .extensions import CONTENT_SECURITY_POLICY, babel, cache, csrf, db, limiter, login_manager, migrate, talisman
from .inventory.views import bp as inventory_bp
from .glossary import label
from .ledger.views import bp as ledger_bp
from .orders.views import bp as orders_bp
from .payments.views import bp as payments_bp
from .producers.views import bp as producers_bp
from .reports.views import bp as reports_bp
from .system import bp as system_bp

__all__ = ["create_app"]


def create_app(config: dict | None = None) -> Flask:
    """Build the shop. ``config`` overrides what the environment says (tests use it)."""
    overrides = dict(config or {})
    instance_path = Path(overrides.pop("INSTANCE_PATH", DEFAULT_INSTANCE_PATH))
    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    env = overrides.pop("ENVIRON", None)
    app.config.update(load_config(instance_path, env))
    app.config.update(overrides)

    register_extensions(app)
    register_blueprints(app)
    register_request_hooks(app)
    register_template_helpers(app)
    register_error_handlers(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    redis_url = app.config.get("REDIS_URL")
    cache.init_app(app, config={"CACHE_TYPE": "RedisCache" if redis_url else "SimpleCache",
                                "CACHE_REDIS_URL": redis_url, "CACHE_KEY_PREFIX": "shop:",
                                "CACHE_DEFAULT_TIMEOUT": 60})
    https = app.config["SHOP_HTTPS"]
    talisman.init_app(app, content_security_policy=CONTENT_SECURITY_POLICY, frame_options="DENY",
                      referrer_policy="same-origin", force_https=False, strict_transport_security=https,
                      session_cookie_secure=https, session_cookie_http_only=True)
    babel.init_app(app, locale_selector=select_locale, default_translation_directories=str(Path(__file__).parent / "translations"))
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = None  # the login page says why on its own
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)


def register_blueprints(app: Flask) -> None:
    for bp in (system_bp, accounts_bp, producers_bp, catalog_bp, catalog_manage_bp, inventory_bp, orders_bp,
               payments_bp, ledger_bp, contracts_bp, reports_bp, audit_bp):
        app.register_blueprint(bp)
    register_api(app)


def select_locale() -> str:
    if has_request_context() and (wanted := api_locale()):
        return wanted  # the API speaks the Accept-Language asked for
    chosen = session.get("locale") if has_request_context() else None
    if chosen in current_app.config["SHOP_LOCALES"]:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def register_request_hooks(app: Flask) -> None:
    app.before_request(authenticate_api_request)  # a bearer token under /api/, before the access rules
    app.before_request(enforce_access)  # security headers come from Flask-Talisman (register_extensions)


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["yuan"] = formatting.format_fen
    app.jinja_env.filters["mask_name"] = formatting.mask_name
    app.jinja_env.filters["mask_phone"] = formatting.mask_phone
    app.jinja_env.filters["mask_code"] = formatting.mask_code
    app.jinja_env.filters["local_dt"] = formatting.local_dt
    app.jinja_env.globals.update(label=label, has_role=has_role, is_back_office=is_back_office)

    @app.context_processor
    def inject_locale():
        return {"current_locale": str(get_locale())}


def register_error_handlers(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        message = _("表单已过期或来源无法验证，请刷新页面后重试。")
        if wants_json():
            return jsonify(error={"code": "csrf", "message": message, "fields": {}}), 400
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: _("请求有误。"),
            403: _("您没有权限访问此页面。"),
            404: _("页面不存在，或您要找的记录不存在。"),
            405: _("不支持此操作。"),
            413: _("上传的文件太大。"),
            429: _("尝试次数过多，请 15 分钟后再试。"),
        }
        message = messages.get(error.code, error.description)
        if wants_json():
            body, code = http_error_json(error, message)
            response = jsonify(body)
            response.status_code = code
            if code == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return render_template("errors/error.html", code=error.code, message=message), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        unit_of_work.discard()
        message = _("服务器出错了，我们已记录此问题。请稍后再试。")
        if wants_json():
            return jsonify(error={"code": "server_error", "message": message, "fields": {}}), 500
        return render_template("errors/error.html", code=500, message=message), 500


def register_cli(app: Flask) -> None:
    register_commands(app)


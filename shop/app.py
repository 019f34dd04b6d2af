"""The composition root: create_app() builds the Flask application from the shop's parts — the only module
that knows every front (pages, API, commands) and every domain."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from flask import (Flask, abort, current_app, g, has_request_context, jsonify, make_response, render_template, request,
                   session, url_for)
from flask_babel import get_locale
from markupsafe import Markup, escape
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import BadRequest, HTTPException, UnprocessableEntity
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from . import edge, formatting, models, scoping, unit_of_work  # noqa: F401  (models: the whole schema, for Alembic)
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
from .glossary import label, send_failure
from .ledger.views import bp as ledger_bp
from .notifications.views import bp as notifications_bp
from .orders.views import bp as orders_bp
from .payments.views import bp as payments_bp
from .points.views import bp as points_bp
from .welfare.views import bp as welfare_bp
from .producers.views import bp as producers_bp
from .reports.views import bp as reports_bp
from .health import bp as health_bp
from .site import bp as site_bp

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

    app.url_map.converters["int"] = BoundedInt  # before any route is declared
    if app.config["SHOP_TRUSTED_PROXIES"]:
        hops = app.config["SHOP_TRUSTED_PROXIES"]
        # the client's address and scheme only: the host a link names comes from SHOP_BASE_URL (or nginx's own
        # Host), never from an X-Forwarded-Host a client sent
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
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
    app.after_request(own_referrer_policy)  # registered first, so it runs after Talisman's headers
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


def own_referrer_policy(response):
    """A page that promises no referrer (a household's own page, whose address is its key) says so in
    `g.referrer_policy`; Talisman's same-origin policy is for every other page."""
    policy = g.get("referrer_policy")
    if policy:
        response.headers["Referrer-Policy"] = policy
    return response


def register_blueprints(app: Flask) -> None:
    for bp in (health_bp, site_bp, accounts_bp, producers_bp, catalog_bp, catalog_manage_bp, inventory_bp, orders_bp,
               payments_bp, ledger_bp, contracts_bp, reports_bp, audit_bp, notifications_bp, points_bp, welfare_bp):
        app.register_blueprint(bp)
    register_api(app)


def select_locale() -> str:
    if has_request_context() and (wanted := api_locale()):
        return wanted  # the API speaks the Accept-Language asked for
    chosen = session.get("locale") if has_request_context() else None
    if chosen in current_app.config["LANGUAGES"]:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


class BoundedInt(IntegerConverter):
    """`<int:…>` in a URL: an id the database can hold; anything longer is simply not found (404)."""

    def __init__(self, map, fixed_digits=0, min=None, max=edge.MAX_ID, signed=False):  # noqa: A002 - werkzeug's names
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class InputRefused(UnprocessableEntity):
    """A query parameter or form value held text no person types (control characters)."""

    def __init__(self, fields: list[str]):
        super().__init__(_("输入包含不允许的控制字符。"))
        self.fields = {name: self.description for name in fields}


class BadBody(BadRequest):
    """A request body no client should send (JSON nested too deep, a number of thousands of digits)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message_for_people = message


def check_input():
    """before_request: the edge for every request — no control characters in any query parameter, form value
    or JSON string, and no JSON nested beyond a small depth — refused before any view or query runs."""
    values = list(request.args.items(multi=True))
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += list(request.form.items(multi=True))
    bad = edge.bad_values(values)
    for name in ("page", "per_page"):  # a page number past any list is no page (Flask-SQLAlchemy's own answer)
        number = request.args.get(name)
        if number is not None and number.isascii() and number.isdigit() and len(number) > 6:
            abort(404)
    if request.is_json and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        raw = request.get_data(cache=True)  # a chunked body too (no Content-Length): MAX_CONTENT_LENGTH bounds it
        if raw:
            if edge.json_too_deep(raw):
                raise BadBody(_("JSON 嵌套过深。"))
            try:
                document = edge.parse_json(raw)
            except ValueError:
                raise BadBody(_("请求的 JSON 无法解析（数字最多 %(n)d 位）。", n=edge.MAX_JSON_DIGITS))
            bad += edge.bad_json_strings(document)
    if bad:
        raise InputRefused(bad)


def register_request_hooks(app: Flask) -> None:
    app.before_request(check_input)  # the edge first: nothing else sees what it refuses
    app.before_request(authenticate_api_request)  # a bearer token under /api/, before the access rules
    app.before_request(enforce_access)  # security headers come from Flask-Talisman (register_extensions)
    scoping.install(app)  # then a manager's queries are narrowed to their villages


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["yuan"] = formatting.format_fen
    app.jinja_env.filters["mask_name"] = formatting.mask_name
    app.jinja_env.filters["qty"] = formatting.format_quantity        # {{ n|qty(product) }} → "12.3 斤"
    app.jinja_env.filters["qty_totals"] = formatting.quantity_totals  # per unit of measure: "390 把 · 36.5 斤"
    app.jinja_env.filters["mask_phone"] = formatting.mask_phone
    app.jinja_env.filters["mask_code"] = formatting.mask_code
    app.jinja_env.filters["local_dt"] = formatting.local_dt
    app.jinja_env.filters["opening_days"] = formatting.opening_days
    app.jinja_env.filters["send_failure"] = send_failure
    app.jinja_env.globals.update(label=label, has_role=has_role, is_back_office=is_back_office, measure=formatting.measure,
                                 page_header=page_header)

    @app.context_processor
    def inject_locale():
        return {"current_locale": str(get_locale())}


_SLOTS = {name: f"\x00{name}\x00" for name in ("bell", "name", "csrf", "next")}
_SLOT = re.compile("\x00(bell|name|csrf|next)\x00")
_HEADERS: dict[tuple, str] = {}
_BELLS: dict[tuple, tuple[str, str]] = {}


def page_header() -> Markup:
    """The page's header: the same for everyone of a role, so rendered once per role, language and mount point
    and kept (it is on every page, and its links and words cost more than the rest of the layout); the user's
    own parts — their name, the bell's count, the logout form's token, the way back after a language change —
    are put into its slots on each page."""
    role = current_user.role if current_user.is_authenticated else None
    key = (role, str(get_locale()), request.script_root)
    html = _HEADERS.get(key)
    if html is None:
        html = _HEADERS[key] = render_template("_header.html", role=role, slot=_SLOTS)
    parts = {"next": str(escape(urlencode({"next": request.full_path})))}
    if role is not None:
        parts.update(name=str(escape(current_user.display_name)), csrf=generate_csrf(),
                     bell=_bell(key, current_user.unread_notifications))
    # one pass, so nothing a user wrote (their name, the address) is ever read as a slot
    return Markup(_SLOT.sub(lambda found: parts[found.group(1)], html))


def _bell(key: tuple, unread: int) -> str:
    """The bell, with the count of unread notifications when there are any."""
    words = _BELLS.get(key)
    if words is None:
        words = _BELLS[key] = (url_for("notifications.inbox"), str(escape(_("通知"))))
    link, title = words
    if not unread:
        return f'<li class="bell"><a href="{link}" aria-label="{title}">{title}</a></li>'
    label = escape(_("%(n)d 条未读", n=unread))
    return (f'<li class="bell"><a href="{link}" aria-label="{title}：{label}">{title}'
            f'<span class="count" data-unread>{unread}</span></a></li>')


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
        message = getattr(error, "message_for_people", None) or messages.get(error.code, error.description)
        if wants_json():
            body, code = http_error_json(error, message)
            response = jsonify(body)
            response.status_code = code
            if code == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return render_template("errors/error.html", code=error.code, message=message), error.code

    @app.errorhandler(unit_of_work.CommitFailed)
    def commit_failed(error):
        """The connection was lost while committing: it may or may not have gone through. Say so, and how to
        find out; a client repeats its request with the same Idempotency-Key to be sure."""
        app.logger.warning("connection lost while committing %s %s: %s", request.method, request.path, error)
        message = _("连接数据库时出现问题，无法确认刚才的操作是否已保存。请刷新页面查看；接口调用请用同一个 "
                    "Idempotency-Key 重试。")
        if wants_json():
            return jsonify(error={"code": "commit_unknown", "message": message, "fields": {}}), 503
        return render_template("errors/error.html", code=503, message=message), 503

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        if unit_of_work.is_disconnect(error):
            # the database kept dropping the connection through every retry: nothing was saved, try later
            app.logger.warning("database unavailable on %s %s: %s", request.method, request.path, error)
            unit_of_work.discard()
            message = _("数据库暂时无法连接，刚才的操作没有保存。请稍后再试。")
            if wants_json():
                response = jsonify(error={"code": "database_unavailable", "message": message, "fields": {}})
                response.status_code = 503
            else:
                response = make_response(render_template("errors/error.html", code=503, message=message), 503)
            response.headers["Retry-After"] = "5"
            return response
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        unit_of_work.discard()
        message = _("服务器出错了，我们已记录此问题。请稍后再试。")
        if wants_json():
            return jsonify(error={"code": "server_error", "message": message, "fields": {}}), 500
        return render_template("errors/error.html", code=500, message=message), 500


def register_cli(app: Flask) -> None:
    register_commands(app)


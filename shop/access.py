"""Who may use which route.

Every view declares its rule with ``@allow(...)``; one ``before_request`` hook
enforces them all. A view without a declared rule is refused (deny by default),
and the route table test fails until the rule is declared.
"""
from __future__ import annotations

from typing import Callable

from flask import abort, current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from .extensions import login_manager

PUBLIC = "public"  # anyone, logged in or not
LOGIN = "login"    # any logged-in user
ROLES = ("staff", "company", "manager", "admin", "operator", "coordinator")
_KNOWN = frozenset({PUBLIC, LOGIN, *ROLES})


def allow(*who: str) -> Callable:
    """Declare who may use a view: PUBLIC, LOGIN, or any of ROLES."""
    unknown = set(who) - _KNOWN
    if not who or unknown:
        raise ValueError(f"allow() needs some of {sorted(_KNOWN)}, got {who!r}")

    def decorate(view: Callable) -> Callable:
        view.access_rule = frozenset(who)  # type: ignore[attr-defined]
        return view

    return decorate


def rule_for(endpoint: str) -> frozenset[str] | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def enforce_access():
    """before_request: apply the view's declared rule."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None  # unknown URLs fall through to 404; static files are public
    rule = rule_for(endpoint)
    if rule is None:
        current_app.logger.error("route %s has no access rule; refusing", endpoint)
        abort(403)
    if PUBLIC in rule:
        return None
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            raise Unauthorized(_("需要有效的 API 令牌（Authorization: Bearer …）。"),
                               www_authenticate=WWWAuthenticate("bearer"))  # the API never redirects to a login page
        return login_manager.unauthorized()
    if LOGIN in rule or current_user.role in rule:
        return None
    abort(403)


def has_role(*roles: str) -> bool:
    return current_user.is_authenticated and current_user.role in roles


def is_back_office() -> bool:
    """Manager and admin pages show personal data unmasked; nowhere else does."""
    return has_role("manager", "admin")

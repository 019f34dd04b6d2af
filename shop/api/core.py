"""What every API view shares: authentication, the error body, paging, common fields."""
from __future__ import annotations

import json
from datetime import timezone
from typing import Any

import marshmallow as ma
from flask import Response, abort, current_app, g, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import func, select

from ..accounts import services as accounts
from ..accounts.models import RequestKey
from ..accounts.services import user_for_api_token
from ..clock import MONTH_PATTERN
from ..errors import Conflict, DomainError, ValidationFailed
from ..extensions import db, login_manager
from .. import unit_of_work
from ..unit_of_work import run
from ..inventory.services import MAX_QUANTITY
from ..models_base import MAX_FEN  # noqa: F401 - money fields of the API share the shop's bound

API_DESCRIPTION = """
The shop's JSON API: the same rules as the web pages, for the service point's intake app, the
companies' procurement systems and the county's collection of figures.

* **Authentication**: `Authorization: Bearer <token>`. A token acts as its user, with the user's role;
  make one on your account page or with `flask --app shop users token USERNAME`.
* **Money** is integer fen (`*_fen`); quantities are integers of the sale unit; dates `YYYY-MM-DD`,
  months `YYYY-MM`.
* **Lists** answer `{"items": [...], "page", "per_page", "total"}`; ask for `?page=2&per_page=50`.
* **Errors** always answer `{"error": {"code", "message", "fields"}}`: 401 without a valid token,
  403 for the wrong role, 404 for unknown ids and for objects that belong to someone else, 422 for
  invalid input (`fields` names each field), 409 for conflicts (`insufficient_stock`,
  `exceeds_balance`, `invalid_transition`, `contract_cap_reached`).
* Messages are in Simplified Chinese; send `Accept-Language: en` for English.
"""

MAX_ID = 2**31 - 1            # database integer ids

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              422: "invalid", 429: "too_many_requests", 500: "server_error"}


# --- authentication ------------------------------------------------------------------------------

def is_api_request() -> bool:
    return request.path.startswith("/api/")


def authenticate_api_request() -> None:
    """before_request: under /api/ the user is whoever the bearer token names — never the session
    cookie, so a page in another tab cannot make API calls on a logged-in user's behalf."""
    if not is_api_request():
        return None
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    user = unit_of_work.read(lambda: user_for_api_token(token.strip())) if scheme.lower() == "bearer" else None
    g._login_user = user if user is not None else login_manager.anonymous_user()
    return None


# --- errors -------------------------------------------------------------------------------------

class ErrorDetail(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "machine-readable, e.g. insufficient_stock"})
    message = ma.fields.String(required=True, metadata={"description": "for people, in the requested language"})
    fields = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(),
                            metadata={"description": "which input fields are wrong, and why"})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetail, required=True)


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, str]:
    """webargs/marshmallow's nested messages → {"lines.0.quantity": "…"}; the location ("json",
    "query") is dropped."""
    out: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten_messages(value, name))
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "_"] = " ".join(messages)
        else:
            for i, value in enumerate(messages):
                out.update(flatten_messages(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "_"] = str(messages)
    return out


def validation_fields(error) -> dict[str, str]:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if not messages:
        return {}
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "path", "headers", "form", "files"}:
        merged: dict[str, Any] = {}
        for part in messages.values():
            merged.update(part if isinstance(part, dict) else {"_": part})
        messages = merged
    return flatten_messages(messages)


def domain_error(err: DomainError):
    """A service refused (the unit of work has undone everything): 409 for a conflict, 422 for anything else."""
    if isinstance(err, Conflict):
        return error_body(err.code, err.message, err.fields), 409
    return error_body("invalid", err.message, err.fields), 422


def make_blueprint(name: str, description: str) -> Blueprint:
    blp = Blueprint(name, __name__, description=description)
    blp.register_error_handler(DomainError, domain_error)
    return blp


def not_found():
    abort(404)


def fetch(model, object_id: int, *options):
    """One row by id, or 404 (ids beyond the database's range are simply unknown)."""
    if not 0 < object_id <= MAX_ID:
        not_found()
    if options:
        found = unit_of_work.read(lambda: db.session.scalar(select(model).where(model.id == object_id)
                                                           .options(*options)))
    else:
        found = unit_of_work.read(lambda: db.session.get(model, object_id))
    if found is None:
        not_found()
    return found


# --- fields and paging ----------------------------------------------------------------------------

def Id(**kwargs) -> ma.fields.Integer:  # noqa: N802 - a field factory, read like a field class
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(1, MAX_ID), **kwargs)


def Quantity(minimum: int = 1, **kwargs) -> ma.fields.Integer:  # noqa: N802
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(minimum, MAX_QUANTITY), **kwargs)


class Text(ma.fields.String):
    """Text a person typed: trimmed, within its length, without control characters (which the
    database would refuse)."""

    def __init__(self, max_length: int, *, min_length: int = 0, **kwargs):
        validators = [ma.validate.Length(min=min_length, max=max_length),
                      ma.validate.Regexp(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
                                         error="Control characters are not allowed.")]
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


Month = lambda **kw: ma.fields.String(validate=ma.validate.Regexp(MONTH_PATTERN), **kw)  # noqa: E731


class QueryInt(ma.fields.Integer):
    """A whole number in a query string: ASCII digits only — int() alone would take "١٢" or "１２"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class PageArgs(ma.Schema):
    page = QueryInt(load_default=1, validate=ma.validate.Range(1, 100_000))
    per_page = QueryInt(load_default=50, validate=ma.validate.Range(1, 200))


class PageSchema(ma.Schema):
    page = ma.fields.Integer(required=True)
    per_page = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True)


def page_of(query, args: dict, convert=None) -> dict[str, Any]:
    """One page of a select(), counted in SQL. ``convert`` turns the page's rows into items at once
    (so a page costs a fixed number of queries)."""
    page, per_page = args["page"], args["per_page"]
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": convert(rows) if convert else rows, "page": page, "per_page": per_page, "total": total}


def api_locale() -> str | None:
    if not is_api_request():
        return None
    return request.accept_languages.best_match(current_app.config["LANGUAGES"]) or None


def http_error_json(error, message: str):
    """An HTTP error under /api/ in the shop's error body (webargs' 422 carries the field messages)."""
    code = error.code or 500
    fields = getattr(error, "fields", None) or (validation_fields(error) if code in (400, 422) else {})
    if code == 422 and not getattr(error, "fields", None):
        message = _("提交的数据有误，请检查各字段。")
    return error_body(HTTP_CODES.get(code, str(code)), message, fields), code


class UtcDateTime(ma.fields.DateTime):
    """A moment, stored as naive UTC, answered as RFC 3339 with its offset ("…+00:00")."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


# --- answering a write: once, whatever the retries ---------------------------------------------------------

IDEMPOTENCY_KEY = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "Any unique string (a UUID, say), up to 255 visible ASCII characters. Send the same request "
                   "again with the same key — after a time-out, a lost connection — and it is not done again: the "
                   "first answer comes back, status and body, with `Idempotent-Replayed: true`. The same key with "
                   "a different request is 422. Keys are kept at least 24 hours per user.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
idempotent = {"parameters": [IDEMPOTENCY_KEY]}  # for @blp.doc(**idempotent) on every POST


class _Replay(Exception):
    """Another request already holds this Idempotency-Key: answer with what it answered."""


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise ValidationFailed.on("Idempotency-Key", _("Idempotency-Key 应为 1–255 个可见的 ASCII 字符。"))
    return key


def respond(work, *, status: int = 200, schema: ma.Schema | None = None, then=None) -> Response:
    """Run a write as one unit of work whose answer is made inside it, from what it wrote — so the answer,
    and the Idempotency-Key with it, are committed with the effect or not at all.

    `then(answer)`, if given, is work after the commit (starting a Stripe Checkout): it returns the answer to
    give, which is then kept for the key as well; it must not fail (a failure is part of its answer)."""
    key = _idempotency_key()
    fingerprint = accounts.fingerprint(request.method, request.path, request.get_data(cache=True))

    def unit() -> tuple[dict, int, int | None]:
        claimed = accounts.claim_request_key(current_user.id, key, fingerprint) if key else None
        if key and claimed is None:
            raise _Replay()
        result, code = work(), status
        if isinstance(result, tuple):  # (answer, status): the work decides, e.g. 201 made or 200 already there
            result, code = result
        answer = schema.dump(result) if schema is not None else result
        if claimed is not None:
            accounts.record_answer(claimed, code, json.dumps(answer, ensure_ascii=False))
        return answer, code, claimed.id if claimed is not None else None

    try:
        answer, status, key_id = run(unit)
    except _Replay:
        return _replay(key, fingerprint)
    if then is not None:
        answer = then(answer)
        if key_id is not None:
            run(lambda: accounts.record_answer(db.session.get(RequestKey, key_id), status,
                                               json.dumps(answer, ensure_ascii=False)))
    return Response(json.dumps(answer, ensure_ascii=False), status=status, mimetype="application/json")


def _replay(key: str, fingerprint: str) -> Response:
    found = accounts.find_request_key(current_user.id, key)
    if found is None or found.status_code is None:  # the other request was undone meanwhile: nothing to replay
        raise Conflict(_("这个 Idempotency-Key 的请求正在处理，请稍后重试。"))
    if found.fingerprint != fingerprint:
        raise ValidationFailed.on("Idempotency-Key", _("这个 Idempotency-Key 已用于另一个不同的请求。"))
    response = Response(found.body, status=found.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response

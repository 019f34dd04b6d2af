"""How a web view writes, in one way: parse the form, hand the service to the unit of work, and either go on
with its result or show the refusal — beside the form's fields, or as a flash — having changed nothing."""
from __future__ import annotations

from typing import Callable, TypeVar

from flask import after_this_request, current_app, flash, render_template, request
from flask_babel import gettext as _

from flask_login import current_user

from . import unit_of_work
from .accounts import services as accounts
from .errors import DomainError

T = TypeVar("T")

# form field names that differ from the service's field names
FIELD_ALIASES = {"risk_eliminated": "risk"}


def show_errors(form, err: DomainError) -> None:
    """Put a domain error's messages next to the fields it names, or on top of the form."""
    placed = False
    for field_name, message in err.fields.items():
        field = getattr(form, FIELD_ALIASES.get(field_name, field_name), None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + [message or err.message]
            placed = True
    if not placed:
        form.form_errors.append(err.message)


def render_form(template: str, form, **context):
    """Render a form page; a submitted form that was refused answers 422 (Unprocessable)."""
    refused = request.method == "POST" and bool(form.errors or form.form_errors)
    return render_template(template, form=form, **context), (422 if refused else 200)


def submit(form, work: Callable[[], T]) -> tuple[bool, T | None]:
    """Run `work` as the request's one unit of work. A refusal puts its reasons beside the form's fields
    and changes nothing. Returns (accepted, result)."""
    try:
        return True, unit_of_work.run(work)
    except DomainError as err:
        show_errors(form, err)
        return False, None


class _AlreadySubmitted(Exception):
    pass


def submit_once(form, work: Callable[[], T], where: Callable[[T], str]) -> tuple[bool, str | None, T | None]:
    """Like `submit`, for a form that creates something and carries a one-time token (`forms.OnceField`): the
    token is claimed in the same unit of work as the record, so the same form submitted twice — a double tap,
    a reload, a retry after a time-out — makes one record, and the second submission goes where the first
    went. Returns (accepted, where to go next, the result — None when this was the second submission)."""
    token = (getattr(getattr(form, "once", None), "data", None) or "")[:200]
    if not token:
        ok, result = submit(form, work)
        return ok, where(result) if ok else None, result
    key = f"form:{token}"

    def unit():
        claimed = accounts.claim_request_key(current_user.id, key, accounts.fingerprint(request.path))
        if claimed is None:
            raise _AlreadySubmitted()
        result = work()
        location = where(result)
        accounts.record_answer(claimed, 303, location)
        return location, result

    try:
        location, result = unit_of_work.run(unit)
        return True, location, result
    except DomainError as err:
        show_errors(form, err)
        return False, None, None
    except _AlreadySubmitted:
        found = accounts.find_request_key(current_user.id, key)
        flash(_("这张表单已经提交过了，没有重复记录。"), "info")
        return True, found.body if found is not None and found.body else request.path, None


def act(work: Callable[[], T], done: str | Callable[[T], str] | None = None) -> tuple[bool, T | None]:
    """Run a button's `work` as the request's unit of work and say how it went in a flash: `done` (or
    `done(result)`) when it went through, the refusal's message when it did not."""
    try:
        result = unit_of_work.run(work)
    except DomainError as err:
        flash(err.message, "error")
        return False, None
    if done is not None:
        flash(done(result) if callable(done) else done, "success")
    return True, result


def attempt(work: Callable[[], T]) -> tuple[bool, str | None]:
    """Run `work` as the request's unit of work for a page's script: (True, None), or (False, the refusal)."""
    try:
        unit_of_work.run(work)
    except DomainError as err:
        return False, err.message
    return True, None


def after_response(work: Callable[[], object]) -> None:
    """Run `work` once this request's answer has been sent, in an app context of its own and outside the
    request's unit of work (a test message's send: the page never waits on another server)."""
    app = current_app._get_current_object()

    def run_it():
        with app.app_context():
            try:
                work()
            except Exception:  # noqa: BLE001 - the answer is gone; what failed is logged, and shown where it is kept
                app.logger.exception("work after the response failed")

    @after_this_request
    def register(response):
        response.call_on_close(run_it)
        return response


def form_refusal(form) -> str:
    """The first problem WTForms found with a submitted form, for a flash."""
    return next(iter(form.errors.values()))[0] if form.errors else _("请求有误。")

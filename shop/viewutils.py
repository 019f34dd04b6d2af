"""Small helpers every blueprint's views share."""
from __future__ import annotations

from .errors import DomainError

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
    from flask import render_template, request

    refused = request.method == "POST" and bool(form.errors or form.form_errors)
    return render_template(template, form=form, **context), (422 if refused else 200)


def attempt(form, work):
    """Run `work` as the request's one unit of work (committed; retried on lost races). A refusal
    puts its reasons beside the form's fields and changes nothing. Returns (accepted, result)."""
    from .extensions import db
    from .unit_of_work import commit_with_retry

    try:
        return True, commit_with_retry(work)
    except DomainError as err:
        db.session.rollback()
        show_errors(form, err)
        return False, None

"""How a web view writes, in one way: parse the form, hand the service to the unit of work, and either go on
with its result or show the refusal — beside the form's fields, or as a flash — having changed nothing."""
from __future__ import annotations

import tempfile
from typing import Callable, TypeVar

from flask import Response, flash, render_template, request, send_file, stream_with_context
from flask_babel import gettext as _

from . import tabular, unit_of_work
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


def form_refusal(form) -> str:
    """The first problem WTForms found with a submitted form, for a flash."""
    return next(iter(form.errors.values()))[0] if form.errors else _("请求有误。")


# --- exports ---------------------------------------------------------------------------------------------

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_response(filename: str, sheets):
    """An XLSX download of (title, rows) sheets, written row by row to a temporary file, not into memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    tabular.xlsx_file(sheets, spool)
    spool.seek(0)
    return send_file(spool, as_attachment=True, download_name=filename, mimetype=XLSX_MIMETYPE)


def csv_response(filename: str, chunks, *, encoding: str = "utf-8"):
    """A CSV download streamed from `chunks` (encoded bytes, see tabular.csv_chunks), with one Content-Type."""
    charset = "gb18030" if encoding == "gbk" else "utf-8"
    response = Response(stream_with_context(chunks), content_type=f"text/csv; charset={charset}")
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


def export_choice() -> str:
    """`?encoding=gbk` for Excel versions that cannot read UTF-8 CSV; UTF-8 with a BOM otherwise."""
    return "gbk" if request.values.get("encoding") == "gbk" else "utf-8"

"""Downloads: every CSV and XLSX export leaves through here — XLSX spooled to a temporary file, CSV streamed, in
UTF-8 with its BOM or in GB18030 for older Excel."""
from __future__ import annotations

import tempfile

from flask import Response, request, send_file, stream_with_context

from . import tabular

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_response(filename: str, sheets):
    """An XLSX download of (title, rows) sheets, written row by row to a temporary file, not into memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    tabular.xlsx_file(sheets, spool)
    spool.seek(0)
    return send_file(spool, as_attachment=True, download_name=filename, mimetype=XLSX_MIMETYPE)


def _csv(body, filename: str, encoding: str) -> Response:
    """A CSV download with one Content-Type: UTF-8 (with its BOM), or GB18030 for `?encoding=gbk`."""
    charset = "gb18030" if encoding == "gbk" else "utf-8"
    response = Response(body, content_type=f"text/csv; charset={charset}")
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


def csv_response(filename: str, chunks, *, encoding: str = "utf-8"):
    """A CSV download streamed from `chunks` (encoded bytes, see tabular.csv_chunks)."""
    return _csv(stream_with_context(chunks), filename, encoding)


def csv_table(filename: str, header, rows, *, encoding: str = "utf-8"):
    """A small CSV download written at once (rows already in memory)."""
    return _csv(b"".join(tabular.csv_chunks(header, rows, encoding=encoding)), filename, encoding)


def export_choice() -> str:
    """`?encoding=gbk` for Excel versions that cannot read UTF-8 CSV; UTF-8 with a BOM otherwise."""
    return "gbk" if request.values.get("encoding") == "gbk" else "utf-8"

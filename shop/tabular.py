"""Tables in and out: reading uploaded CSV or XLSX by content (every import), and writing every CSV and
XLSX export.

Reading: a file that is not a table at all raises ``NotATable``; everything else comes back as rows of
strings with their spreadsheet row numbers, for the import's own row-level checks.
Writing: CSV is streamed in chunks with a BOM (or GB18030), XLSX is written row by row (openpyxl's
write-only mode), and no cell can run as a spreadsheet formula (OWASP's CSV-injection rule).
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field

from flask_babel import gettext as _
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell

MAX_ROWS = 20_000
MAX_COLUMNS = 100
MAX_UNPACKED = 64 * 2**20  # bytes an XLSX may unpack to


class NotATable(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores whole numbers as floats; these are counts and codes
    return str(value).strip()


def read_rows(data: bytes) -> list[list[str]]:
    """All non-empty rows of the first sheet (XLSX) or the CSV, as text cells."""
    if not data:
        raise NotATable(_("文件是空的。"))
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(data)
    if data[:8] == bytes.fromhex("D0CF11E0A1B11AE1"):
        raise NotATable(_("这是旧版 Excel（.xls）文件，请另存为 .xlsx 或 .csv 后再上传。"))
    return _read_csv(data)


def _read_xlsx(data: bytes) -> list[list[str]]:
    """The first sheet's rows, read one at a time and stopped at the row limit — a small file can declare
    millions of rows, or unpack to gigabytes, and neither is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise NotATable(_("无法读取该文件：它不是有效的 .xlsx 表格。")) from exc
    if unpacked > MAX_UNPACKED:
        raise NotATable(_("表格解压后过大（最多 %(n)d MB），请删去多余的内容后再上传。", n=MAX_UNPACKED // 2**20))
    rows: list[list[str]] = []
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            width = min(MAX_COLUMNS, sheet.max_column or MAX_COLUMNS)
            for row in sheet.iter_rows(values_only=True, max_col=width):
                rows.append([_cell_text(c) for c in row])
                if len(rows) > MAX_ROWS + 1:
                    break
        finally:
            workbook.close()
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a spreadsheet we can read"
        raise NotATable(_("无法读取该文件：它不是有效的 .xlsx 表格。")) from exc
    return _trim(rows)


def _read_csv(data: bytes) -> list[list[str]]:
    if b"\x00" in data[:4096]:
        raise NotATable(_("无法读取该文件：它不是 CSV 或 XLSX 表格。"))
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes nearly anything
        raise NotATable(_("无法识别文件编码，请保存为 UTF-8 编码的 CSV。"))
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            rows.append([cell.strip() for cell in row[:MAX_COLUMNS]])
            if len(rows) > MAX_ROWS + 1:
                break
    except csv.Error as exc:
        raise NotATable(_("无法读取该 CSV 文件：%(e)s", e=str(exc))) from exc
    return _trim(rows)


def _trim(rows: list[list[str]]) -> list[list[str]]:
    if len(rows) > MAX_ROWS + 1:
        raise NotATable(_("文件行数过多（最多 %(n)d 行）。", n=MAX_ROWS))
    return rows


@dataclass
class Column:
    key: str
    aliases: tuple[str, ...]
    required: bool = True


@dataclass
class Row:
    number: int  # the spreadsheet's row number (header is row 1)
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


@dataclass
class Table:
    rows: list[Row]
    file_errors: list[str]
    headers: dict[str, str] = field(default_factory=dict)  # key → the file's own column title

    @property
    def ok(self) -> bool:
        return not self.file_errors and all(not r.errors for r in self.rows)

    @property
    def error_count(self) -> int:
        return len(self.file_errors) + sum(1 for r in self.rows if r.errors)


def map_columns(raw_rows: list[list[str]], columns: list[Column]) -> Table:
    """Match the header row to the expected columns; name any missing or unknown ones."""
    if not raw_rows:
        return Table([], [_("文件中没有表头和数据。")])
    header = [h.strip().lower() for h in raw_rows[0]]
    positions: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(header):
        if not name:
            continue
        match = next((c for c in columns if name in (a.lower() for a in c.aliases)), None)
        if match is None:
            unknown.append(raw_rows[0][index])
        elif match.key in positions:
            return Table([], [_("列“%(c)s”出现了两次。", c=raw_rows[0][index])])
        else:
            positions[match.key] = index
    missing = [c.aliases[0] for c in columns if c.required and c.key not in positions]
    errors = []
    if missing:
        errors.append(_("缺少列：%(cols)s。", cols="、".join(missing)))
    if unknown:
        errors.append(_("无法识别的列：%(cols)s。", cols="、".join(unknown)))
    if errors:
        expected = "、".join(c.aliases[0] for c in columns)
        errors.append(_("需要的列：%(cols)s。", cols=expected))
        return Table([], errors)
    rows = []
    for number, raw in enumerate(raw_rows[1:], start=2):
        if not any(cell.strip() for cell in raw):
            continue
        values = {key: (raw[idx].strip() if idx < len(raw) else "") for key, idx in positions.items()}
        rows.append(Row(number, values))
    if not rows:
        return Table([], [_("文件中没有数据行。")])
    return Table(rows, [], {key: raw_rows[0][idx] for key, idx in positions.items()})


# --- writing: the one table writer behind every CSV and XLSX export ------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells a spreadsheet would run as a formula
CSV_ENCODINGS = {"utf-8": "utf-8-sig", "gbk": "gb18030"}  # a BOM, so Excel on Chinese Windows reads UTF-8


def safe_text(value):
    """A cell as text that no spreadsheet runs: anything starting like a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(header, rows, *, encoding: str = "utf-8", chunk: int = 64_000):
    """Yield a CSV file in encoded chunks as `rows` are read (the rows are never all in memory)."""
    codec = CSV_ENCODINGS.get(encoding, CSV_ENCODINGS["utf-8"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_text(v) for v in header])
    first = True
    for row in rows:
        writer.writerow([safe_text(v) for v in row])
        if buffer.tell() > chunk:
            yield _encode(buffer.getvalue(), codec, first)
            first = False
            buffer.seek(0)
            buffer.truncate()
    yield _encode(buffer.getvalue(), codec, first)


def _encode(text: str, codec: str, first: bool) -> bytes:
    if codec == "utf-8-sig" and not first:
        return text.encode("utf-8")  # the BOM starts the file only
    return text.encode(codec, errors="replace")


def xlsx_file(sheets, target) -> None:
    """Write an XLSX workbook of (title, rows) sheets to `target` (a path or file) in openpyxl's write-only
    mode, row by row; text that starts like a formula is stored as text, never as a formula."""
    workbook = Workbook(write_only=True)
    for title, rows in sheets:
        sheet = workbook.create_sheet(title[:31])
        for row in rows:
            cells = []
            for value in row:
                if isinstance(value, str) and value.startswith(FORMULA_STARTS):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.data_type = "s"  # plain text, shown as typed
                    cells.append(cell)
                else:
                    cells.append(value)
            sheet.append(cells)
    workbook.save(target)

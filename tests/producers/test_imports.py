"""Household and pairing imports: upload → preview with every row's problems → confirm; all-or-nothing."""
import io
import re

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from shop.extensions import db
from shop.producers.models import Household, Pairing
from tests.conftest import text_of

HEADER = ["户编号", "户主姓名", "家庭人口", "属性", "风险已消除", "电话"]
GOOD_ROWS = [
    ["XXC101", "王长海", "3", "脱贫户", "", "13812340001"],
    ["XXC102", "陈桂兰", "1", "监测户", "否", ""],
    ["XXC103", "杨振华", "5", "监测户", "是", "13812340003"],
    ["XXC104", "赵丽娟", "2", "一般户", "", ""],
]


def csv_bytes(rows, header=HEADER, encoding="utf-8-sig") -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode(encoding)


def xlsx_bytes(rows, header=HEADER) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append([int(c) if c.isdigit() and len(c) < 4 else c for c in row])  # members as numbers, like Excel
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def count() -> int:
    return db.session.scalar(select(func.count(Household.id)))


def upload(client, world, data: bytes, name="households.csv"):
    return client.post("/manage/households/import", data={"file": (io.BytesIO(data), name),
                                                          "village_id": str(world.village.id)},
                       content_type="multipart/form-data")


def confirm_token(response) -> str:
    match = re.search(r'name="token" type="hidden" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "the preview offers no confirm button"
    return match.group(1)


@pytest.mark.parametrize("maker,name", [
    (lambda rows: csv_bytes(rows), "households.csv"),
    (lambda rows: csv_bytes(rows, encoding="gb18030"), "households.csv"),  # Excel's Chinese CSV
    (xlsx_bytes, "households.xlsx"),
    (xlsx_bytes, "misnamed.csv"),  # the content decides, not the name
])
def test_good_file_previews_then_imports(client, world, maker, name):
    client.login("manager")
    before = count()
    preview = upload(client, world, maker(GOOD_ROWS), name)
    assert preview.status_code == 200
    page = text_of(preview)
    assert "全部检查通过" in page and "王长海" in page
    assert count() == before  # a preview writes nothing
    done = client.post("/manage/households/import", data={"token": confirm_token(preview),
                                                          "village_id": str(world.village.id)})
    assert done.status_code == 302
    assert count() == before + 4
    monitored = db.session.scalar(select(Household).where(Household.code == "XXC103"))
    assert monitored.status == "monitored" and monitored.risk_eliminated is True and monitored.members == 5
    open_risk = db.session.scalar(select(Household).where(Household.code == "XXC102"))
    assert open_risk.risk_eliminated is False
    assert db.session.scalar(select(Household).where(Household.code == "XXC101")).risk_eliminated is None


BAD_ROWS = [
    ("duplicate code in the file", ["XXC101", "李四", "2", "脱贫户", "", ""], "与第 2 行重复"),
    ("code already registered", ["XXC001", "李四", "2", "脱贫户", "", ""], "户编号 XXC001 已存在"),
    ("unknown status", ["XXC109", "李四", "2", "富裕户", "", ""], "未知的户属性“富裕户”"),
    ("members zero", ["XXC109", "李四", "0", "脱贫户", "", ""], "第 6 行：家庭人口数应为 1–50 的整数"),
    ("members fraction", ["XXC109", "李四", "2.5", "脱贫户", "", ""], "家庭人口“2.5”不是正整数"),
    ("members text", ["XXC109", "李四", "三", "脱贫户", "", ""], "家庭人口“三”不是正整数"),
    ("members negative", ["XXC109", "李四", "-2", "脱贫户", "", ""], "家庭人口“-2”不是正整数"),
    ("missing name", ["XXC109", "", "2", "脱贫户", "", ""], "请填写户主姓名"),
    ("bad risk value", ["XXC109", "李四", "2", "监测户", "也许", ""], "应填 是 或 否"),
    ("risk on a non-monitored household", ["XXC109", "李四", "2", "脱贫户", "是", ""], "只有监测户"),
    ("bad phone", ["XXC109", "李四", "2", "脱贫户", "", "打电话"], "电话号码格式不正确"),
]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("case,row,message", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_one_bad_row_imports_nothing_and_names_row_and_reason(client, world, fmt, case, row, message):
    client.login("manager")
    before = count()
    rows = GOOD_ROWS + [row]
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)
    response = upload(client, world, data, f"h.{fmt}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in text_of(response)
    assert re.search(r'<tr class="bad">\s*<td>6</td>', html), "the bad row is row 6 of the sheet"
    assert 'name="token"' not in html  # no way to confirm
    assert count() == before


@pytest.mark.parametrize("data,message", [
    (csv_bytes(GOOD_ROWS, header=["户编号", "户主姓名", "属性"]), "缺少列：家庭人口"),
    (csv_bytes(GOOD_ROWS, header=HEADER[:4] + ["年收入", "电话"]), "无法识别的列：年收入"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40, "不是 CSV 或 XLSX"),
    (b"PK\x03\x04 definitely not a workbook", "不是有效的 .xlsx"),
    (bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 100, "旧版 Excel"),
    (b"", "文件是空的"),
    ("户编号,户主姓名,家庭人口,属性\n".encode(), "没有数据行"),
])
def test_files_that_are_not_usable_tables(client, world, data, message):
    client.login("manager")
    before = count()
    response = upload(client, world, data, "households.csv")
    assert response.status_code == 422
    assert message in text_of(response)
    assert count() == before


def test_confirm_rechecks_everything(client, world):
    """A row that became a duplicate between preview and confirm: still nothing imported."""
    from tests.factories import household

    client.login("manager")
    preview = upload(client, world, csv_bytes(GOOD_ROWS))
    token = confirm_token(preview)
    household(world.village, "XXC103", "抢先登记")
    db.session.commit()
    before = count()
    response = client.post("/manage/households/import", data={"token": token, "village_id": str(world.village.id)})
    assert response.status_code == 422
    assert "户编号 XXC103 已存在" in text_of(response)
    assert count() == before


def test_confirm_token_belongs_to_its_uploader(app, client, world):
    client.login("manager")
    token = confirm_token(upload(client, world, csv_bytes(GOOD_ROWS)))
    other = app.test_client()
    other.login("admin")
    before = count()
    response = other.post("/manage/households/import", data={"token": token, "village_id": str(world.village.id)})
    assert response.status_code == 302 and count() == before
    response = client.post("/manage/households/import", data={"token": "../../etc/passwd-xxxxxxxxxxxx",
                                                              "village_id": str(world.village.id)})
    assert count() == before


# --- pairings ------------------------------------------------------------------------------------

def pairing_upload(client, rows, header=("用户名", "户编号")):
    data = csv_bytes([list(r) for r in rows], header=list(header))
    return client.post("/admin/pairings/import", data={"file": (io.BytesIO(data), "pairings.csv")},
                       content_type="multipart/form-data")


def pairings() -> int:
    return db.session.scalar(select(func.count(Pairing.id)))


def test_pairing_import(client, world):
    client.login("admin")
    preview = pairing_upload(client, [("staff02", "XXC002"), ("staff02", "XXC003"), ("staff01", "XXC001")])
    assert preview.status_code == 200 and "全部检查通过" in text_of(preview)
    done = client.post("/admin/pairings/import", data={"token": confirm_token(preview), "village_id": ""})
    assert done.status_code == 302
    assert pairings() == 3  # staff01–XXC001 already existed and is kept once


@pytest.mark.parametrize("row,message", [
    (("nobody", "XXC002"), "未知的用户名“nobody”"),
    (("manager", "XXC002"), "不是帮扶责任人"),
    (("staff02", "NOPE"), "未知的户编号“NOPE”"),
    (("staff02", "XXC001"), "已由 康本树（staff01）包保"),
    (("staff02", "XXC003"), "与第 2 行重复"),
])
def test_bad_pairing_rows_import_nothing(client, world, row, message):
    client.login("admin")
    response = pairing_upload(client, [("staff02", "XXC003"), row] if "重复" not in message else [("staff02", "XXC003"), row])
    assert response.status_code == 422
    assert message in text_of(response)
    assert pairings() == 1

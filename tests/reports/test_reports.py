"""The consumption-assistance report: a known year of activity, every figure to the fen."""
import calendar
import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, func, select

from shop.contracts import services as contracts
from shop.extensions import db
from shop import clock
from shop.ledger import services as ledger
from shop.ledger.models import Entry, JournalTransaction
from shop.payments import services as payments
from shop.reports import services as reports
from tests.conftest import text_of
from tests.factories import order as place, receive


@pytest.fixture
def year_of_activity(world):
    """Staff orders (one refunded in part, one never paid), two contract months (one short), a payout."""
    y = clock.today().year
    eggs = place(world.staff, world.point, (world.eggs, 10))                      # ¥12.00 from h1 (paired)
    payments.confirm_offline_payment(eggs, reference="R-1", user_id=world.manager.id)
    receive(world.h3, world.manager, (world.peanuts, 20))
    nuts = place(world.staff2, world.point, (world.peanuts, 5))                   # ¥45.00 from h3
    payments.confirm_offline_payment(nuts, reference="R-2", user_id=world.manager.id)
    payments.refund_order(nuts, {nuts.lines[0].id: 2}, restock=True, user_id=world.manager.id)  # −¥18.00
    place(world.staff2, world.point, (world.eggs, 3))                             # never paid: not a sale
    receive(world.h2, world.manager, (world.brooms, 200))                         # the monitored household's brooms
    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-R", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=850,
        monthly_quantity=100, first_month=f"{y}-01", last_month=f"{y}-12", cap_fen=10_000_000,
        delivery_address="站", delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    for month, accepted in ((f"{y}-01", 100), (f"{y}-02", 90)):
        made = contracts.generate_for(contract, month).order
        contracts.deliver(made, user_id=world.manager.id)
        contracts.accept(made, {made.lines[0].id: accepted}, user_id=world.buyer.id,
                         note=None if accepted == 100 else "短少 10 把", at=datetime(y, int(month[5:]), 10, 2))
    ledger.pay_out(ledger.household_account(world.h1.id), 500, method="cash", reference="P-1", user_id=world.manager.id)
    db.session.commit()
    return y


def this_year(y):
    return reports.Period(date(y, 1, 1), date(y, 12, 31))


def test_every_figure_to_the_fen(world, year_of_activity):
    y = year_of_activity
    report = reports.build(this_year(y), clock.today())
    assert report.total_fen == 1200 + 2700 + 85000 + 76500 == 165_400
    assert report.by_channel == {"retail": 3900, "standing": 161_500, "bulk": 0, "point": 0}
    assert [(name, fen) for _id, name, fen in report.by_organization] == [("劲旅环卫", 161_500), ("县XX局", 3900)]
    assert report.by_category == [("brooms", "把", 0, 190, 161_500), ("peanuts", "斤", 0, 3, 2700),
                                  ("eggs", "枚", 0, 10, 1200)]
    assert report.by_month[0] == (f"{y}-01", 85_000) and report.by_month[1] == (f"{y}-02", 76_500)
    assert sum(fen for _m, fen in report.by_month) == report.total_fen
    assert [(code, fen) for _i, code, _n, _s, _m, fen in report.households] == [
        ("XXC002", 161_500), ("XXC003", 2700), ("XXC001", 1200)]
    assert (report.households_benefited, report.households_total) == (3, 3)
    assert report.monitored_earned_fen == 161_500
    assert report.staff == [(world.bureau.id, "县XX局", 2, 2, 3900)]
    assert report.top_products[0] == ("环卫扫帚", "把", 0, 190, 161_500)
    assert reports.rows("no_sales", this_year(y)) == []
    assert report.contracts == (("JL-R", "劲旅环卫", "把", 0, 190, 161_500, 10_000_000),)


def test_the_report_agrees_with_the_ledger(world, year_of_activity):
    report = reports.build(this_year(year_of_activity), clock.today())
    credits = db.session.scalar(select(func.sum(-Entry.amount_fen)).join(JournalTransaction).where(
        JournalTransaction.kind == "sale", Entry.allocation_id.is_not(None)))
    reversals = db.session.scalar(select(func.sum(Entry.amount_fen)).join(JournalTransaction).where(
        JournalTransaction.kind == "refund", Entry.allocation_id.is_not(None)))
    assert credits - reversals == report.total_fen  # no service fee configured: every fen reached a household
    for _id, code, _name, _status, _members, earned in report.households:
        household_id = _id
        account = ledger.household_account(household_id)
        summary = ledger.summary(account, date(year_of_activity, 1, 1), date(year_of_activity, 12, 31))
        assert summary.earned_fen - summary.refunded_fen == earned, code


def test_filter_by_organization(world, year_of_activity):
    y = year_of_activity
    bureau = reports.build(reports.Period(date(y, 1, 1), date(y, 12, 31), world.bureau.id), clock.today())
    assert bureau.total_fen == 3900 and bureau.by_channel["standing"] == 0
    assert [code for _i, code, *_rest in bureau.households] == ["XXC003", "XXC001"]
    february = reports.build(reports.Period(date(y, 2, 1), date(y, 2, 28)), clock.today())
    assert february.by_channel["standing"] == 76_500


def test_report_page_summary_and_targets(client, world, year_of_activity):
    y = year_of_activity
    client.login("admin")
    page = text_of(client.get("/admin/report"))
    assert "¥1,654.00" in page and "3 / 3" in page and "¥1,615.00" in page and "¥807.50" in page  # h2 per capita
    response = client.post("/admin/targets", data={"organization_id": str(world.bureau.id), "year": str(y),
                                                   "target": "100.00"})
    assert response.status_code == 302
    target = next(t for t in reports.targets(y, date(y, 7, 2)) if t.organization.id == world.bureau.id)
    assert (target.target_fen, target.spent_fen, target.percent) == (10_000, 3900, 39)
    days, elapsed = (366, 184) if calendar.isleap(y) else (365, 183)  # 1 January – 2 July, both counted
    assert target.forecast_fen == 3900 * days // elapsed
    summary = text_of(client.get(f"/admin/report/summary?year={y}"))
    assert "全年直接消费帮扶采购共计1,654.00元，其中职工消费39.00元、环卫公司合同采购1,615.00元" in summary
    assert "带动脱贫户1户增收12.00元，户均增收12.00元，人均增收4.00元" in summary
    assert "监测户1户通过消费帮扶增收1,615.00元" in summary
    assert "县XX局2名干部职工中有2人参与消费帮扶" in summary
    assert "环卫公司定点采购扫帚190把，月均95把，订单额1,615.00元" in summary
    # the page builds only what its sentences say: the same sentences as the whole report's
    whole, brief = (reports.build(this_year(y), clock.today(), for_summary=part) for part in (False, True))
    assert reports.summary_sentences(brief) == reports.summary_sentences(whole) and whole.by_month and whole.contracts
    assert (brief.by_organization, brief.by_month, brief.top_products, brief.contracts) == ([], [], [], ())
    assert reports.amount_words(4_470_000) == "4.47万元" and reports.amount_words(165_400) == "1,654.00元"
    assert reports.wan(4_470_000) == "4.47" and reports.wan(10_000_000) == "10.00" and reports.wan(4_999) == "0.00"


@pytest.mark.parametrize("query,message", [("?from=2023-12-31&to=2023-01-01", "结束日期不能早于开始日期"),
                                           ("?from=2023-02-30", "日期格式应为"), ("?org=999", "未知的单位")])
def test_bad_periods_get_a_clear_message(client, world, query, message):
    client.login("admin")
    response = client.get("/admin/report" + query)
    assert response.status_code == 302 and message in text_of(client.get(response.headers["Location"]))


def test_exports_hold_the_same_numbers(client, world, year_of_activity):
    y = year_of_activity
    client.login("admin")
    query = f"?from={y}-01-01&to={y}-12-31"
    workbook = load_workbook(io.BytesIO(client.post(f"/admin/report/export/households.xlsx{query}", data={}).data))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert rows[0][-1] == "收入（元）"
    assert [(r[1], r[3], str(r[5])) for r in rows[1:]] == [("XXC002", "监测户", "1615"), ("XXC003", "一般户", "27"),
                                                           ("XXC001", "脱贫户", "12")]
    response = client.post(f"/admin/report/export/channels.csv{query}", data={})
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"  # one charset, said once
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM: Excel on Chinese Windows opens it as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["渠道", "金额（元）"] and sorted(rows[1:]) == [["合同月度订单", "1615.00"], ["职工零售", "39.00"]]
    gbk = client.post(f"/admin/report/export/channels.csv{query}&encoding=gbk", data={}).get_data()
    assert sorted(list(csv.reader(io.StringIO(gbk.decode("gb18030"))))[1:]) == sorted(rows[1:])
    assert client.post(f"/admin/report/export/secrets.csv{query}", data={}).status_code == 404
    assert client.get(f"/admin/report/export/channels.csv{query}").status_code == 405  # an export is a POST
    rows = list(csv.reader(io.StringIO(client.post(f"/admin/report/export/contracts.csv{query}", data={})
                                       .get_data().decode("utf-8-sig"))))
    assert rows[1] == ["JL-R", "劲旅环卫", "把", "190", "1615.00", "100000.00"]


def test_the_sales_detail_export_adds_up_to_the_report(client, world, year_of_activity):
    """销售明细: one row per sale and supplying lot; its amounts sum to the report's total."""
    y = year_of_activity
    client.login("admin")
    workbook = load_workbook(io.BytesIO(client.post(f"/admin/report/export/lines.xlsx?from={y}-01-01&to={y}-12-31",
                                                    data={}).data))
    header, *rows = list(workbook.active.iter_rows(values_only=True))
    assert header[:3] == ("日期", "订单号", "渠道")
    assert header[-5:] == ("金额（元）", "服务费（元）", "供货方实得（元）", "供货农户户编号", "供货村企")
    by_supplier = {}
    for row in rows:
        assert re.fullmatch(r"\d{8}-\d{5}", row[1]) and row[2] in ("职工零售", "合同月度订单")  # numbers and words
        amount = Decimal(str(row[8]))
        assert Decimal(row[6]) * Decimal(str(row[7])) == amount == Decimal(str(row[9])) + Decimal(str(row[10]))
        by_supplier[row[11]] = by_supplier.get(row[11], 0) + amount
    assert by_supplier == {"XXC001": Decimal("12"), "XXC003": Decimal("27"), "XXC002": Decimal("1615")}
    assert sum(Decimal(str(r[8])) for r in rows) == Decimal("1654")
    assert sorted({r[2] for r in rows}) == ["合同月度订单", "职工零售"] and all(str(r[0]).startswith(str(y)) for r in rows)


def test_the_report_makes_the_same_number_of_queries_however_many_orders(app, world):
    def count_queries(work):
        statements = []
        listener = lambda *args: statements.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            work()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    def add_orders(n):
        receive(world.h2, world.manager, (world.eggs, n))
        for _ in range(n):
            order = place(world.staff, world.point, (world.eggs, 1))
            payments.confirm_offline_payment(order, reference="R", user_id=world.manager.id)
        db.session.commit()

    y = clock.today().year
    add_orders(3)
    db.session.expire_all()
    few = count_queries(lambda: reports.build(this_year(y), clock.today()))
    add_orders(12)
    db.session.expire_all()
    many = count_queries(lambda: reports.build(this_year(y), clock.today()))
    assert few == many


def test_staff_home(client, world, year_of_activity):
    client.login("staff01")
    page = text_of(client.get("/my"))
    assert "¥12.00" in page and "散养土鸡蛋" in page and "现货 17 枚" in page  # 30 − 10 sold − 3 held by an unpaid order
    assert "李建国" in page  # their own household, by full name
    assert "张秀英" not in page and "张**" not in page  # nobody else's
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "1", "next": "/my"})
    assert "散养土鸡蛋" in text_of(client.get("/cart"))


def test_the_summary_in_english_writes_yuan_and_keeps_words_and_figures_apart(app, client, world, year_of_activity):
    """万元 is no English unit: ¥76.63万 is "¥766,300" in English, and every figure stands apart from its words."""
    import re

    from shop.reports.services import amount_words

    from flask_babel import force_locale

    with app.test_request_context():
        with force_locale("en"):
            assert amount_words(766_300_00) == "¥766,300" and amount_words(4_470_000) == "¥44,700"
            assert amount_words(165_400) == "¥1,654.00"
        assert amount_words(766_300_00) == "76.63万元"
    client.login("admin")
    client.get("/lang/en")
    page = client.get("/admin/report/summary?year=2023").get_data(as_text=True)
    block = page.split('<article class="summary-text">', 1)[1].split("</article>", 1)[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", block).split())
    assert text and "ten-thousand" not in text
    assert not re.search(r"[A-Za-z]¥|[A-Za-z]\d|\d[A-Za-z]", text), text

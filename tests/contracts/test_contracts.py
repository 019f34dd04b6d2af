"""Sanitation-company contracts: standing orders, the cap, backorders, acceptance, statements, payments."""
import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from shop.contracts import services as contracts
from shop.unit_of_work import run
from shop.contracts.models import Backorder, Contract, ContractRun
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger import services as ledger
from shop.orders.models import Order
from tests.conftest import text_of
from tests.factories import receive
from tests.orders.helpers import assert_books_clean, run_cli


def make_contract(world, number="JL-2022-001", price=550, monthly=1000, first="2022-07", last="2025-06",
                  cap=19_000_000, org=None, status="active"):
    contract = contracts.save_contract(None, contracts.ContractData(
        number=number, organization_id=(org or world.jinlv).id, product_id=world.brooms.id, unit_price_fen=price,
        monthly_quantity=monthly, first_month=first, last_month=last, cap_fen=cap,
        delivery_address="劲旅环卫城区作业站", delivery_day=5, payment_terms_days=30, status=status),
        user_id=world.admin.id)
    db.session.commit()
    return contract


def stock_brooms(world, quantity, household=None):
    receive(household or world.h3, world.manager, (world.brooms, quantity))
    db.session.commit()


def months(first: str, count: int):
    month = first
    for _ in range(count):
        yield month
        month = contracts.month_after(month)


def test_generation_twice_makes_one_order(app, world):
    contract = make_contract(world)
    stock_brooms(world, 5000)
    code, output = run_cli(app, "contracts", "generate", "--month", "2023-03")
    assert code == 0 and "JL-2022-001: created" in output
    code, output = run_cli(app, "contracts", "generate", "--month", "2023-03")
    assert "JL-2022-001: exists" in output
    orders = db.session.scalars(select(Order).where(Order.contract_id == contract.id)).all()
    assert len(orders) == 1 and orders[0].lines[0].quantity == 1000 and orders[0].total_fen == 550_000
    assert orders[0].status == "confirmed" and orders[0].payment_method == "account"
    assert run_cli(app, "contracts", "generate", "--month", "2023-13")[0] != 0


def test_concurrent_generation_makes_one_order(app, world):
    contract = make_contract(world)
    stock_brooms(world, 5000)
    contract_id = contract.id
    outcomes = []
    start = threading.Barrier(4)

    def host():
        with app.app_context():
            start.wait()
            try:
                outcomes.extend(r.outcome for r in contracts.generate("2023-04", unit=run) if r.contract.id == contract_id)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=host) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
    assert db.session.scalar(select(func.count(Order.id)).where(Order.contract_id == contract_id)) == 1
    assert db.session.scalar(select(func.count(ContractRun.id))) == 1
    assert db.session.scalar(select(func.sum(Lot.reserved))) == 1000  # one month's brooms, allocated once
    assert_books_clean(app)


def test_the_190000_yuan_three_year_contract_is_trimmed_at_its_cap(app, world):
    """1,000 brooms a month at ¥5.50 would be ¥198,000 over 36 months; the cap is ¥190,000."""
    contract = make_contract(world)
    stock_brooms(world, 40_000)
    created = []
    for month in months("2022-07", 36):
        result = contracts.generate_for(db.session.get(Contract, contract.id), month)
        db.session.commit()
        created.append((month, result.outcome, result.order.lines[0].quantity if result.order else 0, result.trimmed))
    assert all(q == 1000 for _, outcome, q, _ in created[:34])  # 34 × ¥5,500 = ¥187,000
    assert created[34] == ("2025-05", "created", 545, True)     # ¥3,000 left: 545 brooms = ¥2,997.50
    assert created[35] == ("2025-06", "at_cap", 0, False)       # ¥2.50 left: not one broom
    assert contracts.committed_fen(contract) == 18_999_750 <= contract.cap_fen
    assert "已达到合同总额" in contracts.Generated(contract, "at_cap").message
    assert contracts.generate_for(contract, "2025-07").outcome == "not_running"


def test_suspended_and_ended_contracts_make_nothing(world):
    make_contract(world, number="S-1", status="suspended")
    make_contract(world, number="E-1", status="ended")
    stock_brooms(world, 5000)
    assert {r.outcome for r in contracts.generate("2023-05", unit=run)} == {"not_running"}


def test_shortage_becomes_a_backorder_then_is_filled_from_later_lots(app, client, world):
    contract = make_contract(world)
    stock_brooms(world, 600)
    result = contracts.generate_for(contract, "2023-06")
    db.session.commit()
    assert result.order.lines[0].quantity == 600 and result.backordered == 400
    backorder = db.session.scalars(select(Backorder)).one()
    assert (backorder.quantity, backorder.month, backorder.filled_at) == (400, "2023-06", None)
    client.login("manager")
    page = text_of(client.get("/manage/company-orders"))
    assert "JL-2022-001 · 2023-06" in page and "环卫扫帚 × 400" in page
    # still no stock: filling is refused, nothing changes
    response = client.post(f"/manage/backorders/{backorder.id}/fill", data={})
    assert "库存不足" in text_of(client.get(response.headers["Location"]))
    stock_brooms(world, 250, household=world.h1)
    client.post(f"/manage/backorders/{backorder.id}/fill", data={})
    db.session.refresh(backorder)
    assert backorder.filled_at is not None
    rest = db.session.scalars(select(Backorder).where(Backorder.filled_at.is_(None))).one()
    assert rest.quantity == 150  # the rest waits for the next lots
    stock_brooms(world, 500, household=world.h2)
    client.post(f"/manage/backorders/{rest.id}/fill", data={})
    assert db.session.scalar(select(func.count(Backorder.id)).where(Backorder.filled_at.is_(None))) == 0
    delivered = db.session.scalar(select(func.sum(Order.total_fen)).where(Order.contract_id == contract.id))
    assert delivered == 1000 * 550  # the month's brooms in full, never silently dropped
    assert_books_clean(app)


def test_a_month_with_no_stock_at_all_is_still_claimed_once(world):
    contract = make_contract(world)
    result = contracts.generate_for(contract, "2023-07")
    db.session.commit()
    assert result.outcome == "no_stock" and result.backordered == 1000
    assert contracts.generate_for(contract, "2023-07").outcome == "exists"


def test_acceptance_with_a_shortfall_credits_only_accepted_units_to_the_right_households(app, client, world):
    contract = make_contract(world, monthly=300)
    stock_brooms(world, 200, household=world.h1)  # paired? not for company buyers: oldest first
    stock_brooms(world, 100, household=world.h2)  # the monitored household's lot comes first
    result = contracts.generate_for(contract, "2023-08")
    db.session.commit()
    order = result.order
    client.login("manager")
    assert client.post(f"/manage/orders/{order.id}/deliver", data={}).status_code == 302
    note = text_of(client.get(f"/orders/{order.id}/delivery-note"))
    assert "李建国" in note and "张秀英" in note
    client.logout()
    client.login("buyer-jinlv")
    assert "李**" in text_of(client.get(f"/orders/{order.id}/delivery-note"))  # masked for the company
    line = order.lines[0]
    response = client.post(f"/company/orders/{order.id}/accept", data={f"accepted-{line.id}": "301", "note": ""})
    assert response.status_code == 422 and "不能超过送货数量" in text_of(response)
    response = client.post(f"/company/orders/{order.id}/accept", data={f"accepted-{line.id}": "280", "note": ""})
    assert response.status_code == 422 and "请写明原因" in text_of(response)
    response = client.post(f"/company/orders/{order.id}/accept", data={f"accepted-{line.id}": "280",
                                                                         "note": "20 把断柄"})
    assert response.status_code == 302
    db.session.refresh(order)
    assert order.status == "accepted" and order.total_fen == 280 * 550 and order.rejected_units == 20
    # the 20 refused brooms come off the latest allocation (h1's lot, allocated after h2's)
    assert ledger.household_account(world.h2.id).owed_fen == 100 * 550
    assert ledger.household_account(world.h1.id).owed_fen == 180 * 550
    assert contracts.owed_by(world.jinlv) == 280 * 550
    # every page shows delivered, accepted and refused units per line and the buyer's note
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "验收结果" in page and "送货数量 验收数量 拒收" in page and "300 把 280 把 20 把 ¥1,540.00" in page
    assert "验收说明 ：20 把断柄" in page and "¥1,650.00" not in page  # the delivered value is not shown as owed
    note = text_of(client.get(f"/orders/{order.id}/delivery-note"))
    assert "验收结果" in note and "20 把断柄" in note
    contract_page = text_of(client.get(f"/company/contracts/{contract.id}"))
    assert "订单 月份 数量 金额 状态" in contract_page  # the table has its header row
    client.logout()
    client.login("manager")
    client.post(f"/manage/orders/{order.id}/rejected", data={"restock": "1"})
    assert db.session.scalar(select(func.sum(Lot.remaining)).where(Lot.product_id == world.brooms.id)) == 20
    assert_books_clean(app)


def _accepted_month(world, contract, month, accepted=None):
    from datetime import datetime

    result = contracts.generate_for(contract, month)
    order = result.order
    contracts.deliver(order, user_id=world.manager.id)
    year, mon = int(month[:4]), int(month[5:])
    line = order.lines[0]
    contracts.accept(order, {line.id: accepted if accepted is not None else line.quantity}, user_id=world.buyer.id,
                     note="短少" if accepted is not None else None, at=datetime(year, mon, 10, 2))
    db.session.commit()
    return order


def test_statements_add_up_and_payments_settle_them(app, client, world):
    contract = make_contract(world, monthly=100, price=850, cap=10_000_000)
    stock_brooms(world, 1000)
    _accepted_month(world, contract, "2023-09")
    _accepted_month(world, contract, "2023-10", accepted=90)
    statements = {s.month: s for s in contracts.statements(world.jinlv)}
    assert statements["2023-09"].due_fen == 85_000 and statements["2023-10"].due_fen == 76_500
    assert statements["2023-09"].due_date == date(2023, 10, 30)
    assert contracts.owed_by(world.jinlv) == 161_500
    client.login("admin")
    response = client.post(f"/admin/companies/{world.jinlv.id}/payments",
                           data={"amount": "1615.01", "reference": "TX-1", "paid_on": "2023-11-05"})
    assert "超过了应收余额（¥1,615.00）" in text_of(client.get(response.headers["Location"]))
    client.post(f"/admin/companies/{world.jinlv.id}/payments",
                data={"amount": "1000.00", "reference": "TX-1", "paid_on": "2023-11-05"})
    statements = {s.month: s for s in contracts.statements(world.jinlv)}
    assert statements["2023-09"].paid_fen == 85_000 and statements["2023-10"].paid_fen == 15_000
    assert statements["2023-10"].outstanding_fen == 61_500 and statements["2023-10"].overdue(date(2023, 12, 1))
    assert contracts.owed_by(world.jinlv) == 61_500
    page = text_of(client.get(f"/companies/{world.jinlv.id}/statements/2023-10"))
    assert "应付金额 ¥765.00" in page and "已付 ¥150.00" in page and "未付 ¥615.00" in page
    overview = text_of(client.get("/admin/companies"))
    assert "应收 ¥615.00" in overview and "已逾期" in overview
    from io import BytesIO

    from openpyxl import load_workbook

    workbook = load_workbook(BytesIO(client.post(f"/companies/{world.jinlv.id}/statements/2023-10.xlsx", data={}).data))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert rows[2][2] == 90 and str(rows[2][4]) == "765" and str(rows[-3][1]) == "765"
    assert rows[1][6:8] == ("送货数量", "拒收") and rows[2][6] - rows[2][7] == 90  # delivered less refused
    assert_books_clean(app)


def test_one_company_sees_nothing_of_another(app, client, world):
    theirs = make_contract(world, number="YH-1", org=world.yonghao)
    stock_brooms(world, 5000)
    order = contracts.generate_for(theirs, "2023-09").order
    contracts.deliver(order, user_id=world.manager.id)
    db.session.commit()
    client.login("buyer-jinlv")
    for url in (f"/company/contracts/{theirs.id}", f"/orders/{order.id}", f"/orders/{order.id}/delivery-note",
                f"/company/orders/{order.id}/accept", f"/companies/{world.yonghao.id}/statements/2023-09"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/company/orders/{order.id}/accept", data={"note": ""}).status_code == 404
    page = text_of(client.get("/company"))
    assert "YH-1" not in page and "永昊" not in page
    assert order.number not in text_of(client.get("/orders"))
    db.session.refresh(order)
    assert order.status == "delivered"


@pytest.mark.parametrize("overrides,message", [
    (dict(first="2023-06", last="2023-01"), "结束月份不能早于开始月份"),
    (dict(cap=100_000), "合同总额低于一个月的货值"),
    (dict(price=0), "单价必须大于 0"),
    (dict(price=-5), "单价必须大于 0"),
    (dict(monthly=0), "应为 1–1000000 之间的整数"),
    (dict(first="2023-13"), "月份格式应为"),
])
def test_bad_contracts_are_refused(world, overrides, message):
    with pytest.raises(ValidationFailed, match=message):
        make_contract(world, **overrides)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Contract.id))) == 0


def test_admin_contract_pages_and_price_history(app, client, world):
    client.login("admin")
    data = {"number": "YH-2023-01", "organization_id": str(world.yonghao.id), "product_id": str(world.brooms.id),
            "unit_price": "8.50", "monthly_quantity": "500", "first_month": "2023-01", "last_month": "2023-12",
            "cap": "51000", "delivery_address": "永昊环卫车队", "delivery_day": "5", "payment_terms_days": "30",
            "status": "active"}
    assert client.post("/admin/contracts/new", data={**data, "cap": "1000"}).status_code == 422
    response = client.post("/admin/contracts/new", data=data)
    assert response.status_code == 302
    contract = db.session.scalars(select(Contract)).one()
    assert contract.cap_fen == 5_100_000 and contracts.price_for(contract, "2023-06") == 850
    stock_brooms(world, 2000)
    client.post("/admin/contracts/generate", data={"month": "2023-02"})
    client.post(f"/admin/contracts/{contract.id}/price", data={"from_month": "2023-01", "unit_price": "9.00"})
    assert contracts.price_for(contract, "2023-02") == 850  # months already ordered keep their price
    client.post(f"/admin/contracts/{contract.id}/price", data={"from_month": "2023-07", "unit_price": "9.00"})
    assert contracts.price_for(contract, "2023-06") == 850 and contracts.price_for(contract, "2023-07") == 900
    client.post("/admin/contracts/generate", data={"month": "2023-07"})
    july = db.session.scalar(select(Order).where(Order.contract_month == "2023-07"))
    assert july.lines[0].unit_price_fen == 900
    assert "YH-2023-01" in text_of(client.get("/admin/contracts"))


def test_bulk_orders_at_tier_prices_confirmed_by_the_manager(app, client, world):
    from shop.catalog.models import PriceTier

    db.session.add(PriceTier(product_id=world.brooms.id, min_quantity=500, unit_price_fen=700))
    db.session.commit()
    stock_brooms(world, 800)
    client.login("buyer-jinlv")
    page = text_of(client.get("/company/bulk"))
    assert "环卫扫帚" in page and "¥8.50/把" in page and "≥ 500 把：¥7.00" in page and "800 把" in page
    client.post("/company/bulk", data={f"qty-{world.brooms.id}": "600", "unit_price_fen": "1"})
    order = db.session.scalars(select(Order).where(Order.channel == "bulk")).one()
    assert order.status == "requested" and order.lines[0].unit_price_fen == 700 and order.total_fen == 420_000
    client.post("/company/bulk", data={f"qty-{world.brooms.id}": "１０"})  # full-width digits, as phones type them
    small = db.session.scalars(select(Order).where(Order.channel == "bulk").order_by(Order.id.desc())).first()
    assert small.lines[0].unit_price_fen == 850
    client.logout()
    client.login("manager")
    client.post(f"/manage/orders/{order.id}/confirm", data={})
    db.session.refresh(order)
    assert order.status == "confirmed" and sum(a.quantity for a in order.lines[0].allocations) == 600
    assert_books_clean(app)


def test_a_signed_scan_is_checked_re_encoded_and_shown_only_to_its_company(app, client, world):
    from io import BytesIO

    from PIL import Image

    image = BytesIO()
    Image.new("RGB", (60, 80), (250, 250, 250)).save(image, format="JPEG")
    client.login("admin")
    data = {"number": "YH-S", "organization_id": str(world.yonghao.id), "product_id": str(world.brooms.id),
            "unit_price": "8.50", "monthly_quantity": "500", "first_month": "2023-01", "last_month": "2023-12",
            "cap": "51000", "delivery_address": "永昊环卫车队", "delivery_day": "5", "payment_terms_days": "30",
            "status": "active"}
    bad = client.post("/admin/contracts/new", data={**data, "scan": (BytesIO(b"%PDF-1.4 not an image"), "scan.jpg")},
                      content_type="multipart/form-data")
    assert bad.status_code == 422 and "不是有效的图片" in text_of(bad)
    assert db.session.scalar(select(func.count(Contract.id))) == 0
    ok = client.post("/admin/contracts/new", data={**data, "scan": (BytesIO(image.getvalue()), "scan.jpg")},
                     content_type="multipart/form-data")
    assert ok.status_code == 302
    contract = db.session.scalars(select(Contract)).one()
    response = client.get(f"/contracts/{contract.id}/scan")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    client.logout()
    client.login("buyer-jinlv")
    assert client.get(f"/contracts/{contract.id}/scan").status_code == 404
    client.logout()
    client.login("buyer-yonghao")
    assert client.get(f"/contracts/{contract.id}/scan").status_code == 200

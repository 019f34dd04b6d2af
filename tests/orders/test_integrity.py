"""Money and order-state integrity beyond the sale path: the state machine is the only authority, a refund
never reopens fulfilment, company bulk orders have a whole life, reports agree with the ledger under a
service fee, and money columns hold county-scale sums."""
import itertools
from datetime import date

import pytest
from sqlalchemy import func, select

from shop.contracts import services as contracts
from shop.errors import DomainError, ValidationFailed
from shop.extensions import db
from shop import clock
from shop.inventory import services as inventory
from shop.ledger import services as ledger
from shop.ledger.models import Account, Entry, JournalTransaction
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from shop.reports import services as reports
from tests.conftest import text_of
from tests.factories import order as place, receive
from tests.orders.helpers import assert_books_clean


def paid(world, quantity, buyer=None):
    placed = place(buyer or world.staff, world.point, (world.eggs, quantity))
    payments.confirm_offline_payment(placed, reference=f"R-{placed.id}", user_id=world.manager.id)
    db.session.commit()
    return placed


def lot_state(lot):
    db.session.refresh(lot)
    return lot.remaining, lot.reserved


# --- 5. fulfilment never loops --------------------------------------------------------------------------

def test_a_refund_after_hand_over_never_reopens_packing_or_hand_over(app, client, world):
    order = paid(world, 10)
    orders.pack(order, user_id=world.manager.id)
    orders.hand_over(order, user_id=world.manager.id, to="康本树")
    other = place(world.staff2, world.point, (world.eggs, 15))  # 15 more held on the same lot
    payments.refund_order(order, {order.lines[0].id: 2}, restock=False, user_id=world.manager.id)
    db.session.commit()
    assert (order.status, order.payment_status) == ("handed_over", "partially_refunded")
    for again in (lambda: orders.pack(order, user_id=world.manager.id),
                  lambda: orders.hand_over(order, user_id=world.manager.id, to="又一次")):
        with pytest.raises(orders.InvalidTransition):
            again()
        db.session.rollback()
    client.login("manager")
    page = client.get(f"/orders/{order.id}").get_data(as_text=True)
    assert f"/manage/orders/{order.id}/pack" not in page and f"/manage/orders/{order.id}/hand-over" not in page
    assert f"/manage/orders/{order.id}/refund" in page  # the rest can still be refunded
    assert client.post(f"/manage/orders/{order.id}/pack", data={}).status_code == 302
    assert client.post(f"/manage/orders/{order.id}/hand-over", data={"handed_over_to": "x"}).status_code == 302
    db.session.refresh(order)
    assert order.status == "handed_over"
    assert lot_state(world.lot) == (30 - 10 - 15, 15)  # the other order's 15 stay held
    assert sum(a.held for a in db.session.get(Order, other.id).lines[0].allocations) == 15
    assert_books_clean(app)


def test_every_unit_refunded_before_packing_closes_the_order(app, world):
    order = paid(world, 4)
    payments.refund_order(order, {order.lines[0].id: 4}, restock=True, user_id=world.manager.id)
    db.session.commit()
    assert (order.status, order.payment_status, order.refunded_fen) == ("cancelled", "refunded", 480)
    with pytest.raises(orders.InvalidTransition):
        orders.pack(order, user_id=world.manager.id)
    db.session.rollback()
    assert lot_state(world.lot) == (30, 0)
    assert_books_clean(app)


def test_the_transition_table_is_the_only_authority(world):
    """No service names its own sources: every move of every flow comes from the one table."""
    import inspect

    from shop.orders import workflow

    source = inspect.getsource(orders) + inspect.getsource(contracts) + inspect.getsource(payments)
    assert "allowed_from" not in source
    for move in workflow.MOVES:
        for status in move.sources:
            assert status in workflow.FLOWS[move.flow], (move, status)
        assert move.target in workflow.FLOWS[move.flow]


def test_a_refused_move_is_a_409_in_the_api(app, world):
    from tests.api.conftest import ApiClient

    order = paid(world, 3)
    orders.pack(order, user_id=world.manager.id)
    orders.hand_over(order, user_id=world.manager.id, to="康本树")
    db.session.commit()
    api = ApiClient(app)
    status, body = api.post("manager", f"/orders/{order.id}/status", {"status": "packed"})
    assert status == 409 and body["error"]["code"] == "invalid_transition"


# --- 6. company bulk orders have a whole life ---------------------------------------------------------

def test_a_requested_bulk_order_can_be_cancelled_by_its_buyer(app, client, world):
    receive(world.h3, world.manager, (world.brooms, 300))
    db.session.commit()
    bulk = contracts.request_bulk_order(world.buyer, [(world.brooms.id, 200)])
    db.session.commit()
    client.login("buyer-jinlv")
    page = client.get(f"/orders/{bulk.id}").get_data(as_text=True)
    assert "待确认" in page and "requested" not in text_of(client.get(f"/orders/{bulk.id}"))
    assert f"/orders/{bulk.id}/cancel" in page
    assert client.post(f"/orders/{bulk.id}/cancel", data={"confirm": "1"}).status_code == 302
    db.session.refresh(bulk)
    assert bulk.status == "cancelled"
    assert bulk.events[-1].user_id == world.buyer.id


def test_the_manager_refuses_a_bulk_order_with_a_reason(app, client, world):
    receive(world.h3, world.manager, (world.brooms, 300))
    bulk = contracts.request_bulk_order(world.buyer, [(world.brooms.id, 200)])
    db.session.commit()
    client.login("manager")
    response = client.post(f"/manage/orders/{bulk.id}/refuse", data={"reason": ""})
    assert response.status_code == 302 and "请写明拒绝的原因" in text_of(client.get(response.headers["Location"]))
    db.session.refresh(bulk)
    assert bulk.status == "requested"
    client.post(f"/manage/orders/{bulk.id}/refuse", data={"reason": "本月扫帚已全部供给合同订单"})
    db.session.refresh(bulk)
    assert bulk.status == "refused" and bulk.events[-1].note == "本月扫帚已全部供给合同订单"
    client.logout()
    client.login("buyer-jinlv")
    page = text_of(client.get(f"/orders/{bulk.id}"))
    assert "已拒绝" in page and "本月扫帚已全部供给合同订单" in page
    with pytest.raises(orders.InvalidTransition):
        contracts.confirm_bulk_order(bulk, user_id=world.manager.id)


def test_a_bulk_request_beyond_the_stock_is_refused_naming_every_shortfall(world):
    receive(world.h3, world.manager, (world.brooms, 300))
    db.session.commit()
    with pytest.raises(inventory.InsufficientStock) as refused:
        contracts.request_bulk_order(world.buyer, [(world.brooms.id, 100_000), (world.peanuts.id, 5)])
    assert "环卫扫帚 需要 100000，现有 300" in refused.value.message and "花生米 需要 5，现有 0" in refused.value.message
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_a_confirmed_bulk_order_cancelled_by_the_manager_gives_its_stock_back(app, world):
    receive(world.h3, world.manager, (world.brooms, 300))
    bulk = contracts.request_bulk_order(world.buyer, [(world.brooms.id, 200)])
    contracts.confirm_bulk_order(bulk, user_id=world.manager.id)
    db.session.commit()
    with pytest.raises(orders.InvalidTransition):
        orders.cancel(bulk, user_id=world.buyer.id)  # the buyer may cancel only while it is requested
    db.session.rollback()
    orders.cancel(bulk, user_id=world.manager.id, note="企业改期")
    db.session.commit()
    assert bulk.status == "cancelled"
    assert db.session.scalar(select(func.sum(inventory.Lot.reserved))) == 0
    assert_books_clean(app)


def test_every_status_of_every_order_kind_has_a_chinese_label(app, client, world):
    """Each order is driven through every status its flow has; every page that shows it names the status
    in Chinese, never by its code."""
    from shop.orders import workflow

    seen = set()
    for flow, statuses in workflow.FLOWS.items():
        for status in statuses:
            order = place(world.staff, world.point, (world.eggs, 1))
            db.session.execute(Order.__table__.update().where(Order.id == order.id).values(
                status=status, payment_method="account" if flow == "account" else "offline"))
            db.session.commit()
            seen.add((flow, status))
            for payment in workflow.PAYMENT_STATUSES:
                db.session.execute(Order.__table__.update().where(Order.id == order.id).values(payment_status=payment))
                db.session.commit()
                client.login("manager")
                for url in (f"/orders/{order.id}", f"/manage/orders?status={status}", "/manage/company-orders"):
                    page = text_of(client.get(url))
                    codes = set(workflow.PAYMENT_STATUSES) | {s for ss in workflow.FLOWS.values() for s in ss}
                    raw = {code for code in codes if code in page.split()}
                    assert not raw, (url, raw)
                client.logout()
    assert len(seen) == sum(len(s) for s in workflow.FLOWS.values())


# --- 7. reports count what the ledger credited ---------------------------------------------------------

def test_reports_agree_with_the_ledger_under_a_service_fee(app, client, world):
    app.config["SHOP_SERVICE_FEE_PERMILLE"] = 30
    receive(world.h2, world.manager, (world.peanuts, 40))
    for n, (product, quantity) in zip(itertools.count(), [(world.eggs, 7), (world.peanuts, 13), (world.eggs, 11)]):
        placed = place(world.staff if n % 2 else world.staff2, world.point, (product, quantity))
        payments.confirm_offline_payment(placed, reference=f"F-{n}", user_id=world.manager.id)
    db.session.commit()
    last = db.session.scalars(select(Order).order_by(Order.id.desc())).first()
    payments.refund_order(last, {last.lines[0].id: 3}, restock=True, user_id=world.manager.id)
    db.session.commit()
    year = clock.today().year
    report = reports.build(reports.Period(date(year, 1, 1), date(year, 12, 31)), clock.today())
    credited = {}
    for (household_id,) in db.session.execute(select(Account.household_id).where(Account.kind == "household")):
        account = ledger.household_account(household_id)
        summary = ledger.summary(account, date(year, 1, 1), date(year, 12, 31))
        credited[household_id] = summary.earned_fen - summary.refunded_fen
    assert {h[0]: h[5] for h in report.households} == {k: v for k, v in credited.items() if v}
    fee = -db.session.scalar(select(func.sum(Entry.amount_fen)).join(Account).where(Account.code == "fee_income"))
    gross = 7 * 120 + 13 * 900 + (11 - 3) * 120
    assert report.total_fen == gross and report.fee_fen == fee > 0
    assert report.credited_fen == sum(credited.values()) == gross - fee
    client.login("admin")
    page = text_of(client.get(f"/admin/report/summary?year={year}"))
    words = reports.amount_words
    assert f"带动脱贫户1户增收{words(credited[world.h1.id])}" in page
    assert f"监测户1户通过消费帮扶增收{words(credited[world.h2.id])}" in page
    assert f"平台服务费{words(fee)}" in page
    assert reports.verify() == []
    assert_books_clean(app)


# --- 8. money columns hold county-scale sums ---------------------------------------------------------------

def test_a_contract_of_thirty_million_yuan_is_saved(app, client, world):
    client.login("admin")
    data = {"number": "COUNTY-1", "organization_id": str(world.jinlv.id), "product_id": str(world.brooms.id),
            "unit_price": "8.50", "monthly_quantity": "500", "first_month": "2026-01", "last_month": "2035-12",
            "cap": "30,000,000.00", "delivery_address": "县环卫处", "delivery_day": "5", "payment_terms_days": "30",
            "status": "active"}
    response = client.post("/admin/contracts/new", data=data)
    assert response.status_code == 302
    contract = db.session.scalars(select(contracts.Contract)).one()
    assert contract.cap_fen == 3_000_000_000
    too_much = client.post("/admin/contracts/new", data={**data, "number": "COUNTY-2", "cap": "1000000000000"})
    assert too_much.status_code == 422 and "金额过大" in text_of(too_much)
    assert db.session.scalar(select(func.count(contracts.Contract.id))) == 1


def test_ledger_sums_beyond_32_bits(app, world):
    big = 3_000_000_000  # ¥30,000,000.00
    account = ledger.platform_account("bank")
    ledger.post("adjustment", "test", 1, [ledger.Line(account, big), ledger.Line(ledger.platform_account("cash_on_hand"),
                                                                                  -big)])
    db.session.commit()
    assert ledger.platform_balance("bank") == big
    assert db.session.scalar(select(func.max(Entry.amount_fen))) == big
    assert db.session.scalar(select(func.count(JournalTransaction.id))) == 1


def test_money_inputs_beyond_the_bound_are_refused(world):
    with pytest.raises(ValidationFailed):
        ledger.pay_out(ledger.household_account(world.h1.id), 10**15, method="cash", reference="R",
                       user_id=world.manager.id)
    with pytest.raises(DomainError):
        contracts.record_payment(world.jinlv, 10**15, reference="T", paid_on=date(2024, 1, 1), user_id=world.admin.id)

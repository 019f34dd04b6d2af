"""The income ledger: postings to the fen, payouts never above what is owed, statements that reconcile."""
import io
import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from shop.extensions import db
from shop import clock
from shop.ledger import services as ledger
from shop.ledger.models import Entry, JournalTransaction, Payout
from shop.orders import services as orders
from shop.payments import services as payments
from tests.conftest import text_of
from tests.factories import order as place, receive
from tests.orders.helpers import assert_books_clean, run_cli


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_largest_remainder_split_adds_up_exactly(total, weights):
    parts = ledger.split_largest_remainder(total, weights)
    whole = sum(weights)
    if whole == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights):
        assert abs(part * whole - total * weight) < whole  # within one fen of the exact share


def paid(world, *items, user=None):
    order = place(user or world.staff, world.point, *items)
    payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
    db.session.commit()
    return order


def owed(household) -> int:
    return ledger.household_account(household.id).owed_fen


def test_fee_split_with_three_suppliers(app, world):
    app.config["SHOP_SERVICE_FEE_PERMILLE"] = 15
    receive(world.h2, world.manager, (world.eggs, 7))
    receive(world.h3, world.manager, (world.eggs, 11))
    db.session.commit()
    order = paid(world, (world.eggs, 46))  # 30 from h1 (paired), 7 from h2 (monitored), 9 from h3
    line_total = 46 * 120  # 5520 fen, fee 15‰ = 82 fen (82.8 rounded down)
    credits = [owed(world.h1), owed(world.h2), owed(world.h3)]
    fee = -db.session.scalar(select(func.sum(Entry.amount_fen)).where(
        Entry.account_id == ledger.platform_account("fee_income").id))
    assert fee == 82 and sum(credits) + fee == line_total
    # fee shares 53.48, 12.48, 16.04 → 53, 12, 16 = 81; the 82nd fen goes to the largest remainder (h1)
    assert credits == [30 * 120 - 54, 7 * 120 - 12, 9 * 120 - 16]
    assert_books_clean(app)
    # refunding every unit gives every fen back
    payments.refund_order(order, {order.lines[0].id: 46}, restock=True, user_id=world.manager.id)
    db.session.commit()
    assert [owed(world.h1), owed(world.h2), owed(world.h3)] == [0, 0, 0]
    assert_books_clean(app)


def test_a_fee_that_takes_the_whole_value_still_refunds_cleanly(app, world):
    """Found by the property test: a 100% fee leaves the supplier a 0-fen credit, so no entry is written."""
    app.config["SHOP_SERVICE_FEE_PERMILLE"] = 1000
    order = paid(world, (world.eggs, 1))
    assert owed(world.h1) == 0
    payments.refund_order(order, {order.lines[0].id: 1}, restock=False, user_id=world.manager.id)
    db.session.commit()
    assert owed(world.h1) == 0
    assert_books_clean(app)


def test_the_same_sale_never_posts_twice(app, world):
    order = paid(world, (world.eggs, 3))
    with pytest.raises(ledger.AlreadyPosted):
        ledger.post_sale(order.id, orders.sold_units(order.id), debit=ledger.platform_account("cash_on_hand"))
    db.session.rollback()
    assert db.session.scalar(select(func.count(JournalTransaction.id)).where(JournalTransaction.kind == "sale")) == 1


def test_the_ledger_is_append_only(world):
    order = paid(world, (world.eggs, 3))
    entry = db.session.scalars(select(Entry)).first()
    entry.amount_fen = 1
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.scalars(select(JournalTransaction)).first())
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()
    del order


@pytest.mark.parametrize("amount,message", [("0", "金额必须大于 0"), ("-5", None), ("abc", "请输入金额"),
                                            ("3.60", "超过了应付余额（¥3.59）")])
def test_bad_payouts_change_nothing(client, world, amount, message):
    paid(world, (world.eggs, 3))  # owed ¥3.60
    ledger.pay_out(ledger.household_account(world.h1.id), 1, method="cash", reference="R-0", user_id=world.manager.id)
    db.session.commit()  # owed ¥3.59
    client.login("manager")
    response = client.post(f"/manage/ledger/household/{world.h1.id}/payouts",
                           data={"amount": amount, "method": "cash", "reference": "R-1"})
    assert response.status_code == 422
    if message:
        assert message in text_of(response)
    assert owed(world.h1) == 359
    assert db.session.scalar(select(func.count(Payout.id))) == 1


def test_payout_needs_a_reference(client, world):
    paid(world, (world.eggs, 3))
    client.login("manager")
    response = client.post(f"/manage/ledger/household/{world.h1.id}/payouts",
                           data={"amount": "1.00", "method": "cash", "reference": ""})
    assert response.status_code == 422 and owed(world.h1) == 360


def test_payout_and_the_ledger_page(app, client, world):
    paid(world, (world.eggs, 25))  # ¥30.00
    client.login("manager")
    response = client.post(f"/manage/ledger/household/{world.h1.id}/payouts",
                           data={"amount": "20.00", "method": "bank_transfer", "reference": "TX-77"})
    assert response.status_code == 302
    page = text_of(client.get(f"/manage/ledger/household/{world.h1.id}"))
    assert "应付余额 ¥10.00" in page and "¥30.00" in page and "已结算 ¥20.00" in page
    assert "李建国" in text_of(client.get("/manage/ledger"))
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_two_managers_paying_out_at_once_never_exceed_what_is_owed(app, world, backend):
    if backend != "postgresql":
        pytest.skip("the concurrency guarantee is tested on PostgreSQL")
    paid(world, (world.eggs, 25))  # owed 3000 fen
    account_id = ledger.household_account(world.h1.id).id
    manager_id = world.manager.id
    db.session.commit()
    for _ in range(5):  # enough rounds for a race to show
        outcomes = []
        start = threading.Barrier(2)

        def manager(n):
            with app.app_context():
                from shop.ledger.models import Account
                from shop.unit_of_work import run as commit_with_retry

                start.wait()
                try:
                    commit_with_retry(lambda: ledger.pay_out(db.session.get(Account, account_id), 200, method="cash",
                                                             reference=f"R-{n}", user_id=manager_id))
                    outcomes.append("paid")
                except ledger.ExceedsBalance:
                    outcomes.append("refused")
                finally:
                    db.session.remove()

        before = owed(world.h1)
        db.session.commit()
        threads = [threading.Thread(target=manager, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        db.session.expire_all()
        paid_now = outcomes.count("paid")
        assert owed(world.h1) == before - 200 * paid_now >= 0
    # drain to below one payout, then race: exactly one of two 200-fen payouts may go through at most
    assert owed(world.h1) == 1000
    ledger.pay_out(ledger.household_account(world.h1.id), 900, method="cash", reference="R-x", user_id=manager_id)
    db.session.commit()
    outcomes = []
    start = threading.Barrier(2)

    def last(n):
        with app.app_context():
            from shop.ledger.models import Account
            from shop.unit_of_work import run as commit_with_retry

            start.wait()
            try:
                commit_with_retry(lambda: ledger.pay_out(db.session.get(Account, account_id), 100, method="cash",
                                                         reference=f"L-{n}", user_id=manager_id))
                outcomes.append("paid")
            except ledger.ExceedsBalance:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=last, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["paid", "refused"]
    db.session.expire_all()
    assert owed(world.h1) == 0
    assert_books_clean(app)


def test_a_refund_after_payout_never_makes_a_household_owe(app, world):
    order = paid(world, (world.eggs, 10))  # owed 1200
    ledger.pay_out(ledger.household_account(world.h1.id), 1000, method="cash", reference="R-1",
                   user_id=world.manager.id)
    payments.refund_order(order, {order.lines[0].id: 5}, restock=False, user_id=world.manager.id)  # 600 back
    db.session.commit()
    assert owed(world.h1) == 0
    shortfall = db.session.scalar(select(func.sum(Entry.amount_fen)).where(
        Entry.account_id == ledger.platform_account("refund_shortfall").id))
    assert shortfall == 400  # already paid out: to be recovered by the service point, not a negative balance
    assert_books_clean(app)


def test_statement_reconciles_and_exports(app, client, world):
    first = paid(world, (world.eggs, 10))  # 1200
    payments.refund_order(first, {first.lines[0].id: 2}, restock=True, user_id=world.manager.id)  # −240
    ledger.pay_out(ledger.household_account(world.h1.id), 500, method="cash", reference="R-5", user_id=world.manager.id)
    db.session.commit()
    today = clock.today()
    client.login("manager")
    url = f"/manage/ledger/household/{world.h1.id}/statement?from={today}&to={today}"
    page = text_of(client.get(url))
    assert "期初应付余额 ¥0.00" in page and "本期销售 ¥12.00" in page and "本期退款 -¥2.40" in page
    assert "本期结算 -¥5.00" in page and "期末应付余额 ¥4.60" in page and "R-5" in page
    summary = ledger.summary(ledger.household_account(world.h1.id), today, today)
    assert summary.owed_fen == 460 and summary.earned_fen - summary.refunded_fen - summary.paid_out_fen == 460
    # the next day's statement opens where this one closed
    tomorrow = ledger.statement(ledger.household_account(world.h1.id), today + timedelta(days=1), today + timedelta(days=2))
    assert tomorrow.opening_fen == 460 and tomorrow.rows == []
    response = client.post(url.replace("/statement?", "/statement.xlsx?"), data={})
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
    assert values[1][1] == 0 and values[-1][1] == pytest.approx(4.6) and str(values[-1][1]) == "4.6"
    amounts = [row[7] for row in values[3:-1]]
    assert [str(a) for a in amounts] == ["12", "-2.4", "-5"]


def test_statement_period_must_make_sense(client, world):
    client.login("manager")
    response = client.get(f"/manage/ledger/household/{world.h1.id}/statement?from=2023-12-31&to=2023-01-01")
    assert response.status_code == 302
    assert "结束日期不能早于开始日期" in text_of(client.get(response.headers["Location"]))
    response = client.get(f"/manage/ledger/household/{world.h1.id}/statement?from=2023-13-45")
    assert "日期格式应为" in text_of(client.get(response.headers["Location"]))
    assert client.get("/manage/ledger/household/99999").status_code == 404
    assert client.get(f"/manage/ledger/village/{world.h1.id}").status_code == 404


def test_enterprises_have_ledgers_too(app, client, world):
    receive(world.enterprise, world.manager, (world.peanuts, 10))
    db.session.commit()
    paid(world, (world.peanuts, 4))
    assert ledger.enterprise_account(world.enterprise.id).owed_fen == 3600
    client.login("manager")
    assert "¥36.00" in text_of(client.get(f"/manage/ledger/enterprise/{world.enterprise.id}"))
    assert_books_clean(app)


@pytest.mark.parametrize("corruption,message", [
    ("INSERT INTO ledger_entry (transaction_id, account_id, amount_fen, created_at) "
     "SELECT id, (SELECT id FROM ledger_account WHERE code = 'cash_on_hand'), 7, created_at FROM journal_transaction",
     "does not sum to zero"),
    ("UPDATE ledger_account SET balance_fen = balance_fen - 5 WHERE kind = 'household'", "kept balance"),
    ("UPDATE shop_order SET payment_status = 'unpaid' WHERE payment_status = 'paid'",
     "has a sale transaction but is not paid"),
    ("UPDATE shop_order SET payment_status = 'paid' WHERE status = 'pending_payment'",
     "is paid or accepted but has no sale"),
    ("UPDATE allocation SET quantity = quantity + 1", "units sold and not refunded"),
])
def test_ledger_verify_names_the_problem_in_a_corrupted_database(app, world, corruption, message):
    paid(world, (world.eggs, 4))
    place(world.staff2, world.point, (world.eggs, 1))
    assert run_cli(app, "ledger", "verify")[0] == 0
    with db.engine.begin() as conn:
        conn.execute(text(corruption))
    code, output = run_cli(app, "ledger", "verify")
    assert code == 1 and message in output


def test_a_statement_names_each_sale_by_its_order_number(app, client, world, pending_order):
    from shop.payments import services as payments

    payments.confirm_offline_payment(pending_order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    client.login("manager")
    page = text_of(client.get(f"/manage/ledger/household/{world.h1.id}/statement"))
    assert pending_order.number in page and f"#{pending_order.id} " not in page


def test_a_statement_prints_what_people_wrote_as_text(app, client, world, pending_order):
    """The statement's rows are made outside the template: a product's or unit's name is escaped there too."""
    world.eggs.name = '<img src=x onerror=alert(1)>土鸡蛋'
    world.bureau.name = '县"XX"局&<b>'
    db.session.commit()
    payments.confirm_offline_payment(pending_order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    client.login("manager")
    html = client.get(f"/manage/ledger/household/{world.h1.id}/statement").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;土鸡蛋" in html
    assert "<b>" not in html and '县"XX"' not in html
    assert "县&quot;XX&quot;局&amp;&lt;b&gt;" in html or "县&#34;XX&#34;局&amp;&lt;b&gt;" in html

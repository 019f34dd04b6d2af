"""Welfare grants spent at checkout: earliest expiry first, the rest paid the chosen way (nothing more when the
grants pay it all); what an unpaid order drew goes back when it is cancelled, and a refund gives the welfare part
back first — to the grant while it may be spent, otherwise to the fund. Households are credited as for any sale."""
import io
from datetime import timedelta

import openpyxl

import pytest
from sqlalchemy import func, select, update

from shop import clock
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.ledger import services as ledger
from shop.orders import services as orders
from shop.orders.models import Order, Refund
from shop.payments import services as payments
from shop.welfare import services as welfare
from shop.welfare.models import WelfareGrant, WelfareMovement
from tests import factories
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean, last_order
from tests.orders.test_split_checkout import far  # noqa: F401 (a fixture: 远山村 and its service point)
from tests.races import race
from tests.welfare.test_funds import ask


@pytest.fixture
def fund(world):
    """The bureau's fund with ¥1,000; staff01 holds ¥3 expiring in ten days and ¥300 expiring in sixty."""
    made = welfare.fund_of(world.bureau.id)
    welfare.top_up(made, 100_000, reference="GH-2027-001", user_id=world.coordinator.id)
    today = clock.today()
    world.soon = welfare.grant(made, ask(world.staff, 300, expires=today + timedelta(days=10), purpose="元旦慰问"),
                               granted_by=world.coordinator.id)
    world.later = welfare.grant(made, ask(world.staff, 30_000), granted_by=world.coordinator.id)
    db.session.commit()
    return made


def place(world, quantity=10, *, welfare_fen=0, payment_method="offline", user=None, grant_ids=None):
    placed = payments.checkout(user or world.staff, payment_method=payment_method, pickup_point_id=world.point.id,
                               lines=[(world.eggs.id, quantity)], welfare_fen=welfare_fen, grant_ids=grant_ids)
    db.session.commit()
    return placed[0]


def left(*grants) -> tuple[int, ...]:
    db.session.expire_all()
    return tuple(db.session.get(WelfareGrant, g.id).remaining_fen for g in grants)


def snapshot():
    return (db.session.scalar(select(func.count(Order.id))), db.session.scalar(select(func.count(WelfareMovement.id))),
            db.session.scalars(select(WelfareGrant.remaining_fen).order_by(WelfareGrant.id)).all(),
            ledger.platform_balance("welfare_held"))


def test_grants_pay_part_of_an_order_earliest_expiry_first_and_the_rest_is_paid_at_the_point(app, world, fund):
    order = place(world, 10, welfare_fen=500)  # ¥12.00 of eggs: ¥5.00 from welfare, ¥7.00 at the point
    assert (order.total_fen, order.welfare_fen, order.due_fen, order.status) == (1200, 500, 700, "pending_payment")
    assert left(world.soon, world.later) == (0, 29_800)  # the ¥3 that expires first is spent first
    assert -ledger.platform_balance("welfare_held") == 500
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    db.session.refresh(order)
    assert order.status == "paid" and -ledger.platform_balance("welfare_held") == 0
    # the household is credited the whole sale, exactly as if it had been paid in cash
    assert ledger.household_account(world.h1.id).owed_fen == 1200 - ledger.fee_for(1200)
    f = welfare.figures(fund)
    assert (f.spent_fen, f.unspent_fen) == (500, 29_800)
    assert welfare.verify() == []
    assert_books_clean(app)


def test_an_order_the_grants_pay_whole_is_paid_at_once(app, world, fund):
    order = place(world, 10, welfare_fen=5000)  # more than the order: only its ¥12.00
    assert (order.welfare_fen, order.due_fen, order.status, order.payment_status) == (1200, 0, "paid", "paid")
    assert left(world.soon, world.later) == (0, 30_000 - 900)  # ¥3 + ¥9
    assert ledger.household_account(world.h1.id).owed_fen == 1200 - ledger.fee_for(1200)
    assert welfare.verify() == []
    assert_books_clean(app)


def test_a_checkout_of_two_service_points_draws_each_grant_once_and_pays_both_parts(app, world, fund, far):  # noqa: F811
    # ¥6.00 of eggs here, ¥90.00 of honey at 远山村: the first part empties the ¥3 grant, so the second must
    # draw all of its ¥90.00 from the ¥300 one
    ours, theirs = payments.checkout(world.staff, payment_method="offline", welfare_fen=9600,
                                     pickup_point_ids=[far.point.id, world.point.id],
                                     lines=[(world.eggs.id, 5), (far.honey.id, 2)])
    db.session.commit()
    assert [(o.total_fen, o.welfare_fen, o.status) for o in (ours, theirs)] == [(600, 600, "paid"),
                                                                                (9000, 9000, "paid")]
    assert left(world.soon, world.later) == (0, 30_000 - 300 - 9000)
    assert welfare.figures(fund).spent_fen == 9600
    assert welfare.verify() == [] and -ledger.platform_balance("welfare_held") == 0
    assert_books_clean(app)


def test_a_cancelled_order_gives_its_welfare_back_and_after_expiry_to_the_fund(app, world, fund):
    order = place(world, 10, welfare_fen=500)
    orders.cancel(order, user_id=world.staff.id)
    db.session.commit()
    assert left(world.soon, world.later) == (300, 30_000)
    assert welfare.verify() == [] and -ledger.platform_balance("welfare_held") == 0
    order = place(world, 10, welfare_fen=500)
    welfare.expire_grants(clock.today() + timedelta(days=11))  # the ¥3 grant has expired meanwhile
    db.session.commit()
    orders.cancel(order, user_id=world.staff.id)
    db.session.commit()
    assert left(world.soon, world.later) == (0, 30_000)
    f = welfare.figures(fund)
    assert (f.available_fen, f.expired_fen, f.spent_fen - f.returned_fen) == (100_000 - 30_300 + 300, 300, 0)
    assert welfare.verify() == []
    assert_books_clean(app)


def test_a_refund_gives_the_welfare_part_back_first_to_the_grant_or_else_the_fund(app, world, fund):
    order = place(world, 10, welfare_fen=500)
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    line = order.lines[0]
    first = payments.refund_order(order, {line.id: 2}, restock=True, user_id=world.manager.id)  # ¥2.40
    db.session.commit()
    assert (first.amount_fen, first.welfare_fen, first.method) == (240, 240, "welfare")
    # back to each grant what the order drew on it, the latest-expiring first: ¥2.00 to the ¥300 grant, ¥0.40 to
    # the ¥3 one
    assert left(world.soon, world.later) == (40, 30_000)
    welfare.expire_grants(clock.today() + timedelta(days=11))  # the ¥3 grant expires with ¥0.40 on it
    db.session.commit()
    second = payments.refund_order(order, {line.id: 5}, restock=True, user_id=world.manager.id)  # ¥6.00
    db.session.commit()
    # ¥2.60 of welfare was left on the order, all drawn on the expired grant: to the fund; ¥3.40 in cash
    assert (second.amount_fen, second.welfare_fen, second.method) == (600, 260, "offline")
    assert left(world.soon, world.later) == (0, 30_000)
    f = welfare.figures(fund)
    assert (f.available_fen, f.expired_fen) == (100_000 - 30_000, 300)
    assert db.session.scalar(select(func.sum(Refund.amount_fen - Refund.welfare_fen))) == 340  # the only cash back
    assert welfare.verify() == []
    assert_books_clean(app)


def test_bad_spending_is_refused_with_why_and_writes_nothing(app, world, fund):
    other = welfare.grant(fund, ask(world.staff2, 1000), granted_by=world.coordinator.id)
    future = welfare.grant(fund, ask(world.staff, 1000, starts=clock.today() + timedelta(days=3)),
                           granted_by=world.coordinator.id)
    db.session.commit()
    before = snapshot()
    refusals = [
        (dict(welfare_fen=1200, user=world.staff2), "可用的福利只有 ¥10.00，不够支付 ¥12.00"),
        (dict(welfare_fen=100, grant_ids=[other.id]), "只能使用发给您本人的福利"),
        (dict(welfare_fen=-100), "必须是 0 或正数"),
        (dict(welfare_fen=1000, grant_ids=[future.id]), "可用的福利只有 ¥0.00"),
        (dict(welfare_fen=100, user=world.staff2, grant_ids=[world.later.id]), "只能使用发给您本人的福利"),
    ]
    for kwargs, message in refusals:
        with pytest.raises(ValidationFailed) as refused:
            place(world, kwargs.pop("quantity", 10), **kwargs)
        db.session.rollback()
        assert message in str(refused.value.fields), (kwargs, refused.value.fields)
        assert snapshot() == before
    assert welfare.verify() == []


def test_the_cart_page_offers_the_balance_and_the_rule_and_spends_what_is_asked(app, client, world, fund):
    client.login("staff01")
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "10"})
    page = text_of(client.get("/cart"))
    assert "您可用的福利：¥303.00" in page and "元旦慰问" in page and "不退现金" in page
    response = client.post("/checkout", data={"handover": "pickup", "payment_method": "offline",
                                               "pickup_point_id": str(world.point.id), "welfare": "5.00"})
    assert response.status_code == 302
    order = last_order()
    assert (order.welfare_fen, order.due_fen) == (500, 700)
    page = text_of(client.get(f"/orders/{order.id}"))
    assert "福利支付 -¥5.00" in page and "应付 ¥7.00" in page and "不退现金" in page
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    assert "福利支付 ¥5.00" in text_of(client.get(f"/orders/{order.id}/receipt"))
    client.post("/cart/add", data={"product_id": str(world.eggs.id), "quantity": "1"})
    response = client.post("/checkout", data={"handover": "pickup", "payment_method": "offline",
                                               "pickup_point_id": str(world.point.id), "welfare": "abc"})
    assert "请输入金额" in text_of(response) and last_order().id == order.id


@pytest.mark.postgres_only
def test_twenty_checkouts_at_once_never_overspend_one_grant(app, world, fund):
    """A member's ¥30.00 grant; twenty checkouts of theirs at once — phone, computer, the API — each paying ¥6.00
    of eggs wholly from welfare: exactly five are placed and paid, fifteen refused; nothing overspent, nothing
    lost."""
    factories.receive(world.h1, world.manager, (world.eggs, 200))
    grant = welfare.grant(fund, ask(world.staff2, 3000), granted_by=world.coordinator.id)
    db.session.commit()
    member_id = world.staff2.id

    def work(_n: int):
        from shop.accounts.models import User

        payments.checkout(db.session.get(User, member_id), payment_method="offline", pickup_point_id=world.point.id,
                          lines=[(world.eggs.id, 5)], welfare_fen=600)

    outcomes = race(app, 20, work)
    assert sorted(outcomes) == ["invalid"] * 15 + ["ok"] * 5, outcomes
    assert left(grant) == (0,)
    assert db.session.scalar(select(func.sum(Order.welfare_fen))) == 3000
    # each paid whole by welfare at once: the households credited, nothing left held
    assert db.session.scalars(select(Order.status).distinct()).all() == ["paid"]
    assert ledger.household_account(world.h1.id).owed_fen == 5 * (600 - ledger.fee_for(600))
    assert ledger.platform_balance("welfare_held") == 0
    assert welfare.verify() == []
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_refunds_racing_an_expiry_leave_the_books_exact(app, world, fund):
    """An order paid wholly from the ¥300 grant on its last day; ten refunds of one egg each and two expiry runs
    (cron on two hosts) at once. Whichever goes first, every fen ends in the fund: what was left of the grant by
    the expiry, what was refunded before it by the expiry too, what was refunded after it directly."""
    factories.receive(world.h1, world.manager, (world.eggs, 20))
    db.session.execute(update(WelfareGrant).where(WelfareGrant.id == world.later.id)
                       .values(expires_on=clock.today()))
    db.session.commit()
    order = payments.checkout(world.staff, payment_method="offline", pickup_point_id=world.point.id,
                              lines=[(world.eggs.id, 30)], welfare_fen=3600)[0]
    db.session.commit()
    # the ¥300 grant now expires first (today), so it paid all ¥36.00
    assert order.status == "paid" and left(world.soon, world.later) == (300, 30_000 - 3600)
    order_id, line_id, manager_id = order.id, order.lines[0].id, world.manager.id
    tomorrow = clock.today() + timedelta(days=1)

    def work(n: int):
        if n >= 10:
            welfare.expire_grants(tomorrow)
            return
        payments.refund_order(db.session.get(Order, order_id), {line_id: 1}, restock=True, user_id=manager_id)

    outcomes = race(app, 12, work)
    assert outcomes == ["ok"] * 12, outcomes
    assert db.session.scalar(select(func.sum(Refund.welfare_fen)).where(Refund.order_id == order_id)) == 1200
    # the ¥300 grant expired once with all it had left, refunds before it included
    assert db.session.scalar(select(func.count(WelfareMovement.id)).where(WelfareMovement.kind == "expire",
                                                                          WelfareMovement.order_id.is_(None))) == 1
    f = welfare.figures(fund)
    assert (f.available_fen, f.unspent_fen) == (100_000 - 30_300 + (30_000 - 3600) + 1200, 300)
    assert left(world.soon, world.later) == (300, 0)
    assert welfare.verify() == []
    assert_books_clean(app)


def test_the_unions_monthly_statement_shows_members_orders_refunds_and_the_households_reached(app, client, world,
                                                                                               fund):
    zhao = factories.household(world.village, "XXC009", "赵明")
    factories.receive(zhao, world.manager, (world.peanuts, 10))
    welfare.grant(fund, ask(world.staff2, 2000), granted_by=world.coordinator.id)
    db.session.commit()
    first = payments.checkout(world.staff, payment_method="offline", pickup_point_id=world.point.id,
                              lines=[(world.eggs.id, 10), (world.peanuts.id, 2)], welfare_fen=3000)[0]  # ¥12 + ¥18
    second = place(world, 5, welfare_fen=200, user=world.staff2)  # ¥6.00: ¥2.00 welfare, ¥4.00 at the point
    place(world, 2, welfare_fen=120)  # placed, ¥1.20 still to pay: not on the statement
    db.session.commit()
    payments.confirm_offline_payment(second, reference="R-2", user_id=world.manager.id)
    payments.refund_order(first, {first.lines[0].id: 5}, restock=True, user_id=world.manager.id)  # ¥6.00 back
    db.session.commit()
    month = clock.month_of(clock.today())
    found = welfare.statement(fund, month)
    assert (found.spent_fen, found.refunded_fen, found.net_fen) == (3200, 600, 2600)
    assert [(o.number, o.welfare_fen, o.refunded_fen) for o in found.orders] == [(first.number, 3000, 600),
                                                                                   (second.number, 200, 0)]
    assert found.members == [("康本树", 1, 3000, 600), ("王秀英", 1, 200, 0)]
    # the first order's ¥30 of welfare split by value: ¥12 to 李建国's eggs, ¥18 to 赵明's peanuts; ¥2 more to 李建国
    assert sorted((r.name, r.welfare_fen) for r in found.reached) == [("李建国", 1400), ("赵明", 1800)]
    assert found.villages == [("XX村", 2, 3200)]
    client.login("coordinator")
    page = text_of(client.get(f"/unit/welfare/statements/{month}"))
    assert "工会福利月度对账单" in page and "¥32.00" in page and "¥26.00" in page and "赵明" in page
    assert month in text_of(client.get("/unit/welfare"))
    export = client.post(f"/unit/welfare/statements/{month}.xlsx", data={})
    assert export.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(export.data))
    assert [row[0] for row in book["订单"].iter_rows(values_only=True)][2:4] == [first.number, second.number]
    assert client.get("/unit/welfare/statements/2026-13").status_code == 404
    client.logout()
    client.login("staff01")
    assert client.get(f"/unit/welfare/statements/{month}").status_code == 403


def test_the_county_counts_welfare_buying_toward_the_units_target_apart_from_private_buying(app, client, world,
                                                                                             fund):
    from shop.reports import services as reports

    order = place(world, 10, welfare_fen=500)  # ¥12.00: ¥5.00 from welfare
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id)
    whole = place(world, 5, welfare_fen=600)  # ¥6.00, all from welfare
    payments.refund_order(whole, {whole.lines[0].id: 1}, restock=True, user_id=world.manager.id)  # ¥1.20 back
    db.session.commit()
    today = clock.today()
    bureau = next(t for t in reports.targets(today.year, today) if t.organization.id == world.bureau.id)
    assert (bureau.spent_fen, bureau.welfare_fen, bureau.private_fen) == (1680, 980, 700)
    client.login("coordinator")
    assert "其中工会福利 ¥9.80，职工自费和单位采购 ¥7.00" in text_of(client.get("/unit"))
    client.logout()
    client.login("admin")
    assert "其中工会福利" in text_of(client.get("/admin/report"))

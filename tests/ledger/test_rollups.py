"""The daily sales rollups the reports read: kept in the transaction of every sale, refund and acceptance,
equal to the ledger's postings to the fen (`verify` says when they are not), recounted by a command."""
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from shop import clock
from shop.contracts import services as contracts
from shop.extensions import db
from shop.ledger import rollups
from shop.ledger import services as ledger
from shop.ledger.models import JournalTransaction, SalesDayBuyer, SalesDaySupply
from shop.orders.models import Order
from shop.payments import services as payments
from shop.reports import services as reports
from tests.factories import order as place, receive
from tests.orders.helpers import assert_books_clean, run_cli
from tests.races import race


def buyer_rows():
    return {(r.day, r.organization_id, r.channel, r.contract_id, r.buyer_id):
            (r.units, r.gross_fen, r.credited_fen, r.borne_fen, r.sales)
            for r in db.session.scalars(select(SalesDayBuyer))}


def supply_rows():
    return {(r.day, r.organization_id, r.channel, r.product_id, r.household_id, r.enterprise_id):
            (r.units, r.gross_fen, r.credited_fen, r.borne_fen, r.sales)
            for r in db.session.scalars(select(SalesDaySupply))}


def day_of(order: Order, kind: str = "sale"):
    moment = db.session.scalar(select(JournalTransaction.created_at).where(JournalTransaction.order_id == order.id,
                                                                           JournalTransaction.kind == kind))
    return clock.local_day(moment)


def paid(world, buyer, *items):
    order = place(buyer, world.point, *items)
    payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
    db.session.commit()
    return order


def test_a_sale_and_a_refund_change_the_days_rows_by_exactly_their_postings(app, world):
    app.config["SHOP_SERVICE_FEE_PERMILLE"] = 30
    receive(world.h2, world.manager, (world.peanuts, 10))
    db.session.commit()
    # 5 eggs of h1 (¥1.20, fee 3% = 18 fen of ¥6.00) and 4 jin of h2's peanuts (¥9.00: ¥36.00, fee 108)
    order = paid(world, world.staff2, (world.eggs, 5), (world.peanuts, 4))
    day, bureau = day_of(order), world.bureau.id
    assert buyer_rows() == {(day, bureau, "retail", 0, world.staff2.id): (9, 4200, 4074, 0, 2)}
    assert supply_rows() == {(day, bureau, "retail", world.eggs.id, world.h1.id, 0): (5, 600, 582, 0, 1),
                             (day, bureau, "retail", world.peanuts.id, world.h2.id, 0): (4, 3600, 3492, 0, 1)}
    egg_line = next(line for line in order.lines if line.product_id == world.eggs.id)
    payments.refund_order(order, {egg_line.id: 2}, restock=False, user_id=world.manager.id)
    db.session.commit()
    # two eggs back: ¥2.40 less, their fee (7 of the 18 fen) reversed; a refund is not a sale
    refund_day = day_of(order, "refund")
    assert refund_day == day  # the same local day in this test (both posted now)
    assert buyer_rows() == {(day, bureau, "retail", 0, world.staff2.id): (7, 3960, 3841, 0, 2)}
    assert supply_rows()[(day, bureau, "retail", world.eggs.id, world.h1.id, 0)] == (3, 360, 349, 0, 1)
    assert rollups.verify() == []
    report = reports.build(reports.Period(day, day), clock.today())
    assert (report.total_fen, report.fee_fen, report.credited_fen) == (3960, 119, 3841)
    assert {h[0]: h[5] for h in report.households} == {world.h1.id: 349, world.h2.id: 3492}


def test_an_acceptance_counts_on_the_day_it_was_accepted_under_its_company_and_contract(app, world):
    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-2023-001", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=100, first_month="2023-07", last_month="2024-06", cap_fen=1_000_000,
        delivery_address="劲旅环卫城区作业站", delivery_day=5, payment_terms_days=30, status="active"),
        user_id=world.admin.id)
    receive(world.h3, world.manager, (world.brooms, 100))
    db.session.commit()
    order = contracts.generate_for(contract, "2023-08").order
    contracts.deliver(order, user_id=world.manager.id)
    contracts.accept(order, {order.lines[0].id: 96}, user_id=world.buyer.id, note="短少4把",
                     at=datetime(2023, 8, 9, 18))  # 02:00 on 10 August in the shop's time zone
    db.session.commit()
    accepted = clock.local_day(datetime(2023, 8, 9, 18))
    assert str(accepted) == "2023-08-10"
    assert buyer_rows() == {(accepted, world.jinlv.id, "standing", contract.id, world.buyer.id):
                            (96, 52800, 52800, 0, 1)}
    assert list(supply_rows()) == [(accepted, world.jinlv.id, "standing", world.brooms.id, world.h3.id, 0)]
    august = reports.build(reports.Period.parse("2023-08-01", "2023-08-31", None, clock.today()), clock.today())
    assert august.total_fen == 52800 and august.contracts[0][4:6] == (96, 52800) and august.contract_months == 1
    assert reports.build(reports.Period.parse("2023-08-01", "2023-08-09", None, clock.today()),
                         clock.today()).total_fen == 0
    assert_books_clean(app)


def test_verify_names_a_row_that_drifts_and_the_command_recounts_it(app, world):
    order = paid(world, world.staff2, (world.eggs, 5))
    day = day_of(order)
    db.session.execute(update(SalesDaySupply).values(gross_fen=SalesDaySupply.gross_fen + 1))
    db.session.execute(SalesDayBuyer.__table__.insert().values(
        day=day, organization_id=0, channel="bulk", contract_id=0, buyer_id=world.buyer.id, units=1, gross_fen=100,
        credited_fen=97, borne_fen=0, sales=1))  # a row no posting made
    db.session.commit()
    problems = rollups.verify()
    assert len(problems) == 2
    assert any("sales_day_supply" in p and "(5, 601, 600, 0, 1)" in p and "(5, 600, 600, 0, 1)" in p for p in problems)
    assert any("sales_day_buyer" in p and "'bulk'" in p and "sum to None" in p for p in problems)
    code, output = run_cli(app, "verify")
    assert code == 1 and "sales_day_supply" in output
    code, output = run_cli(app, "ledger", "rollups-rebuild")
    assert code == 0 and "sales_day_buyer: 1 rows" in output and "sales_day_supply: 1 rows" in output
    db.session.expire_all()
    assert supply_rows() == {(day, world.bureau.id, "retail", world.eggs.id, world.h1.id, 0): (5, 600, 600, 0, 1)}
    assert_books_clean(app)


def test_the_report_reads_the_rollups(app, world):
    """The summed tables come from the rollups, not the raw postings: a drifted rollup shows (and `verify`
    catches it), so the page and the check can never both be wrong in the same way."""
    order = paid(world, world.staff2, (world.eggs, 5))
    day = day_of(order)
    db.session.execute(update(SalesDayBuyer).values(gross_fen=SalesDayBuyer.gross_fen + 100))
    db.session.commit()
    assert reports.build(reports.Period(day, day), clock.today()).total_fen == 700
    assert any("sales_day_buyer" in problem and "(5, 700, 600, 0, 1)" in problem for problem in rollups.verify())


@pytest.mark.postgres_only
def test_twelve_payments_and_ten_refunds_at_once_leave_the_rows_exact(app, world):
    """Twelve buyers' orders of the same household's eggs paid at once all add to the same supply row (and two
    staff members' buyer rows), then ten refunds of one egg each at once: every increment lands, none twice."""
    receive(world.h1, world.manager, (world.eggs, 100))
    db.session.commit()
    orders = [place(world.staff if n % 2 else world.staff2, world.point, (world.eggs, 3)) for n in range(12)]
    ids = [o.id for o in orders]
    manager = world.manager.id

    def pay(n):
        order = db.session.get(Order, ids[n])
        payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=manager)

    assert race(app, 12, pay) == ["ok"] * 12

    def refund(n):
        order = db.session.get(Order, ids[n])
        payments.refund_order(order, {order.lines[0].id: 1}, restock=False, user_id=manager)

    assert race(app, 10, refund) == ["ok"] * 10
    days = {day_of(o) for o in orders}
    sold = 12 * 3 - 10
    supply = supply_rows()
    assert sum(v[0] for v in supply.values()) == sold and sum(v[1] for v in supply.values()) == sold * 120
    assert sum(v[4] for v in supply.values()) == 12
    assert len(supply) == len(days)  # one row a day: one product, one household, one unit, one channel
    buyers = buyer_rows()
    assert sum(v[1] for v in buyers.values()) == sold * 120
    assert {k[4] for k in buyers} == {world.staff.id, world.staff2.id}
    assert sum(v[2] for v in supply.values()) == -ledger.household_account(world.h1.id).balance_fen  # no payouts
    assert rollups.verify() == [] and ledger.verify() == []
    assert db.session.scalar(select(func.count()).select_from(SalesDaySupply)) == len(days)

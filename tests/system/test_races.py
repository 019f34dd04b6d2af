"""Every path that moves money or stock, raced by ten or more actors on PostgreSQL (READ COMMITTED, as in
production). Each test asserts the exact end state, and that every check of `flask verify` still holds."""
from datetime import date

import pytest
from sqlalchemy import func, select

from shop.contracts import services as contracts
from shop.contracts.models import Backorder, CompanyPayment
from shop.extensions import db
from shop.inventory.models import Lot
from shop.ledger import services as ledger
from shop.ledger.models import Account
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from tests.factories import order as place, receive
from tests.orders.helpers import assert_books_clean
from tests.races import race

pytestmark = pytest.mark.postgres_only

ACTORS = 12


def paid_order(world, quantity, product=None):
    placed = place(world.staff, world.point, (product or world.eggs, quantity))
    payments.confirm_offline_payment(placed, reference=f"R-{placed.id}", user_id=world.manager.id)
    db.session.commit()
    return placed


def company_order(world, quantity, price=500, *, accepted=None, stock=None):
    """A standing order of `quantity` brooms at `price`, delivered (and accepted, if asked)."""
    receive(world.h3, world.manager, (world.brooms, stock or quantity))
    contract = contracts.save_contract(None, contracts.ContractData(
        number=f"R-{quantity}-{price}", organization_id=world.jinlv.id, product_id=world.brooms.id,
        unit_price_fen=price, monthly_quantity=quantity, first_month="2024-01", last_month="2024-12",
        cap_fen=10_000_000, delivery_address="站", delivery_day=5, payment_terms_days=30, status="active"),
        user_id=world.admin.id)
    made = contracts.generate_for(contract, "2024-03").order
    contracts.deliver(made, user_id=world.manager.id)
    if accepted is not None:
        note = None if accepted == quantity else "短少"
        contracts.accept(made, {made.lines[0].id: accepted}, user_id=world.buyer.id, note=note)
    db.session.commit()
    return made


def test_refunds_on_a_partially_refunded_order_never_lose_an_update(app, world):
    order = paid_order(world, 12)
    payments.refund_order(order, {order.lines[0].id: 2}, restock=True, user_id=world.manager.id)
    db.session.commit()
    order_id, line_id, manager_id = order.id, order.lines[0].id, world.manager.id

    outcomes = race(app, ACTORS, lambda n: payments.refund_order(
        db.session.get(Order, order_id), {line_id: 1}, restock=True, user_id=manager_id))

    assert outcomes.count("ok") == 10 and len(outcomes) - outcomes.count("ok") == 2
    order = db.session.get(Order, order_id)
    assert order.lines[0].refunded_quantity == 12 and order.refunded_fen == 12 * 120
    assert sum(r.amount_fen for r in order.refunds) == 12 * 120 and len(order.refunds) == 11
    assert order.payment_status == "refunded" and order.status == "cancelled"  # nothing left to pack
    assert ledger.household_account(world.h1.id).owed_fen == 0
    db.session.refresh(world.lot)
    assert (world.lot.remaining, world.lot.reserved) == (30, 0)
    assert_books_clean(app)


@pytest.mark.parametrize("amount,accepted", [(800, 1), (100, 10)])
def test_transfers_against_one_statement_never_exceed_what_is_owed(app, world, amount, accepted):
    company_order(world, 2, 500, accepted=2)  # ¥10.00 owed
    org_id, admin_id = world.jinlv.id, world.admin.id
    from shop.accounts.models import Organization

    outcomes = race(app, ACTORS, lambda n: contracts.record_payment(
        db.session.get(Organization, org_id), amount, reference=f"TX-{n}", paid_on=date(2024, 4, 2),
        user_id=admin_id))

    assert outcomes.count("ok") == accepted
    assert set(outcomes) - {"ok"} <= {"exceeds_balance"}
    assert db.session.scalar(select(func.count(CompanyPayment.id))) == accepted
    assert contracts.owed_by(world.jinlv) == 1000 - accepted * amount >= 0
    assert_books_clean(app)


def test_refused_units_are_handled_once(app, world):
    made = company_order(world, 100, accepted=94)  # 6 refused
    lot = db.session.scalars(select(Lot).where(Lot.product_id == world.brooms.id)).one()
    assert (lot.remaining, lot.reserved) == (0, 0)
    order_id, manager_id = made.id, world.manager.id

    outcomes = race(app, ACTORS, lambda n: contracts.handle_rejected(
        db.session.get(Order, order_id), restock=True, user_id=manager_id))

    assert outcomes.count("ok") == 1
    db.session.refresh(lot)
    assert (lot.remaining, lot.reserved) == (6, 0)
    assert db.session.get(Order, order_id).rejected_handled == "restocked"
    assert_books_clean(app)


def test_a_backorder_is_filled_once(app, world):
    receive(world.h3, world.manager, (world.brooms, 600))
    contract = contracts.save_contract(None, contracts.ContractData(
        number="BO-1", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=550,
        monthly_quantity=1000, first_month="2024-01", last_month="2024-12", cap_fen=10_000_000,
        delivery_address="站", delivery_day=5, payment_terms_days=30, status="active"), user_id=world.admin.id)
    contracts.generate_for(contract, "2024-06")
    receive(world.h1, world.manager, (world.brooms, 1000))
    db.session.commit()
    backorder_id = db.session.scalars(select(Backorder.id)).one()

    outcomes = race(app, ACTORS, lambda n: contracts.fill_backorder(db.session.get(Backorder, backorder_id)))

    assert outcomes.count("ok") == 1
    assert db.session.scalar(select(func.count(Order.id)).where(Order.contract_id == contract.id)) == 2
    assert db.session.scalar(select(func.sum(Lot.reserved))) == 1000  # 600 + the 400 filled, once
    assert db.session.scalar(select(func.count(Backorder.id)).where(Backorder.filled_at.is_(None))) == 0
    assert_books_clean(app)


def test_bulk_confirm_against_cancel_has_one_winner(app, world):
    receive(world.h3, world.manager, (world.brooms, 500))
    bulk = contracts.request_bulk_order(world.buyer, [(world.brooms.id, 200)])
    db.session.commit()
    order_id, manager_id, buyer_id = bulk.id, world.manager.id, world.buyer.id

    def actor(n):
        order = db.session.get(Order, order_id)
        if n % 2:
            return contracts.confirm_bulk_order(order, user_id=manager_id)
        return orders.cancel(order, user_id=buyer_id)

    outcomes = race(app, ACTORS, actor)

    assert outcomes.count("ok") == 1
    assert set(outcomes) - {"ok"} == {"invalid_transition"}
    order = db.session.get(Order, order_id)
    reserved = db.session.scalar(select(func.sum(Lot.reserved)))
    allocated = sum(a.quantity for a in order.lines[0].allocations)
    if order.status == "confirmed":
        assert (reserved, allocated) == (200, 200)
    else:
        assert order.status == "cancelled" and (reserved, allocated) == (0, 0)
    assert_books_clean(app)


def test_hand_over_against_refunds(app, world):
    """Refunds and hand-overs of one packed order at once: it is handed over once, every refunded unit goes
    back on the shelf once, and another order's units held on the same lot are untouched."""
    order = paid_order(world, 10)
    other = place(world.staff2, world.point, (world.eggs, 5))  # 5 more held on the same lot
    orders.pack(order, user_id=world.manager.id)
    db.session.commit()
    order_id, line_id, manager_id = order.id, order.lines[0].id, world.manager.id

    def actor(n):
        if n % 2:
            return orders.hand_over(db.session.get(Order, order_id), user_id=manager_id, to="康本树")
        return payments.refund_order(db.session.get(Order, order_id), {line_id: 1}, restock=True, user_id=manager_id)

    outcomes = race(app, ACTORS, actor)

    assert outcomes.count("ok") == 1 + ACTORS // 2  # one hand-over, every refund
    order = db.session.get(Order, order_id)
    assert order.status == "handed_over" and order.lines[0].refunded_quantity == ACTORS // 2
    db.session.refresh(world.lot)
    assert (world.lot.remaining, world.lot.reserved) == (30 - 10 - 5 + ACTORS // 2, 5)
    assert db.session.get(Order, other.id).lines[0].allocations[0].quantity == 5
    assert_books_clean(app)


def test_payouts_by_many_managers_never_exceed_what_is_owed(app, world):
    paid_order(world, 25)  # ¥30.00 owed to h1
    account_id, manager_id = ledger.household_account(world.h1.id).id, world.manager.id
    db.session.commit()

    outcomes = race(app, ACTORS, lambda n: ledger.pay_out(db.session.get(Account, account_id), 700, method="cash",
                                                          reference=f"R-{n}", user_id=manager_id))

    assert outcomes.count("ok") == 4 and set(outcomes) - {"ok"} == {"exceeds_balance"}
    assert ledger.household_account(world.h1.id).owed_fen == 3000 - 4 * 700
    assert_books_clean(app)

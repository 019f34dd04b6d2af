"""Stateful property test: whatever happens, in whatever order, every invariant holds after every step — and
every household, every company and the platform's fees hold exactly what a model of the rules, kept by the
test itself, says they should.

The machine drives staff orders (paid offline or by Stripe events, duplicated), cancellations, hand-overs,
refunds naming lots, refunds made in Stripe's dashboard (`charge.refunded`), payouts, a company's standing
contract orders delivered and accepted with shortfalls, refused units, bulk orders confirmed, refused or
cancelled, and the company's bank transfers, under random prices and service fees.
"""
import itertools
from datetime import date

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from shop import clock
from shop.contracts import services as contracts
from shop.errors import DomainError
from shop.extensions import db
from shop.inventory import services as inventory
from shop.ledger import services as ledger
from shop.orders import services as orders
from shop.orders.models import Order, Refund
from shop.payments import services as payments
from shop.reports import services as reports
from tests.conftest import empty_all_tables
from tests.factories import household, product, receive, world as make_world

COUNTER = itertools.count()


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """The model's own statement of the split rule: proportional parts, the leftover fen to the largest
    remainders (ties to the earliest)."""
    whole = sum(weights)
    if not whole or not total:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return parts


class Model:
    """What each supplier and company should hold, by the rules as the README states them."""

    def __init__(self, fee_permille: int):
        self.fee_permille = fee_permille
        self.owed: dict[int, int] = {}        # household id → owed to it
        self.company_owed = 0
        self.fees = 0
        self.sold: dict[int, tuple[int, int, int, int]] = {}  # allocation → (household, units, price, fee)
        self.refunded: dict[int, int] = {}    # allocation → units refunded so far

    def sale(self, order: Order, *, company: bool = False) -> None:
        for line in order.lines:
            sold = [a for a in line.allocations if a.sold > 0]
            values = [a.sold * line.unit_price_fen for a in sold]
            fees = largest_remainder(sum(values) * self.fee_permille // 1000, values)
            for allocation, value, fee in zip(sold, values, fees):
                self.sold[allocation.id] = (allocation.household_id, allocation.sold, line.unit_price_fen, fee)
                self.owed[allocation.household_id] = self.owed.get(allocation.household_id, 0) + value - fee
                self.fees += fee
            if company:
                self.company_owed += sum(values)

    def refund(self, refund: Refund, *, company: bool = False) -> None:
        taken: dict[int, int] = {}
        for line in refund.lines:
            household_id, sold, price, fee = self.sold[line.allocation_id]
            before = self.refunded.get(line.allocation_id, 0)
            fee_back = fee * (before + line.quantity) // sold - fee * before // sold
            net = line.quantity * price - fee_back
            owed = self.owed[household_id] - taken.get(household_id, 0)
            back = min(net, max(owed, 0))
            taken[household_id] = taken.get(household_id, 0) + back
            self.refunded[line.allocation_id] = before + line.quantity
            self.fees -= fee_back
        for household_id, back in taken.items():
            self.owed[household_id] -= back
        if company:
            self.company_owed -= refund.amount_fen


class Shop(RuleBasedStateMachine):
    """The shop under random use; `app` and `world` are the test's (set before it runs)."""

    app = world = None

    @initialize(fee=st.one_of(st.just(0), st.integers(1, 999), st.just(1000)), price=st.integers(1, 5000),
                broom_price=st.integers(100, 2000))
    def start(self, fee, price, broom_price):
        """Every run starts from the same empty shop (the world made afresh) with its own products, households
        and contract, so runs never depend on each other: the same choices always make the same run, which
        Hypothesis relies on when it replays and shrinks."""
        from shop.producers import services as producers

        db.session.rollback()  # a run never inherits a half-finished transaction
        db.session.remove()
        empty_all_tables()
        self.world = make_world()
        self.app.config["SHOP_SERVICE_FEE_PERMILLE"] = fee
        run = next(COUNTER)
        self.model = Model(fee)
        self.product = product(f"性质{run}", price_fen=price)
        self.brooms = product(f"扫帚{run}", category="brooms", unit="把", price_fen=broom_price)
        self.households = [household(self.world.village, f"P{run}-{n}", status=status)
                           for n, status in enumerate(("alleviated", "monitored", "ordinary"))]
        producers.pair(self.world.staff, self.households[0])
        for supplier in self.households:
            receive(supplier, self.world.manager, (self.product, 200), (self.brooms, 40))
            ledger.household_account(supplier.id)
        self.model.owed = {h.id: 0 for h in self.households}
        self.company_before = contracts.owed_by(self.world.jinlv)
        self.fees_before = -ledger.platform_balance("fee_income")
        self.contract = contracts.save_contract(None, contracts.ContractData(
            number=f"PROP-{run}", organization_id=self.world.jinlv.id, product_id=self.brooms.id,
            unit_price_fen=broom_price, monthly_quantity=15, first_month="2024-01", last_month="2030-12",
            cap_fen=broom_price * 15 * 24, delivery_address="站", delivery_day=5, payment_terms_days=30,
            status="active"), user_id=self.world.admin.id)
        db.session.commit()
        self.month = "2024-01"
        self.pending: set[int] = set()
        self.to_pack: set[int] = set()
        self.refundable: dict[int, str] = {}  # order id → payment method
        self.events: list[dict] = []

    # --- staff orders ------------------------------------------------------------------------

    def _pick(self, ids, index):
        ids = sorted(ids)
        return db.session.get(Order, ids[index % len(ids)]) if ids else None

    def _refundable(self, method):
        return {i for i, m in self.refundable.items() if m == method}

    @rule(who=st.integers(0, 2), quantity=st.integers(1, 40))
    def intake(self, who, quantity):
        receive(self.households[who], self.world.manager, (self.product, quantity))
        db.session.commit()

    @rule(who=st.integers(0, 1), quantity=st.integers(1, 25), online=st.booleans())
    def place(self, who, quantity, online):
        try:
            order = orders.place_order((self.world.staff, self.world.staff2)[who], payment_method="stripe" if online else "offline",
                                       pickup_point_id=self.world.point.id, lines=[(self.product.id, quantity)])
        except DomainError:
            db.session.rollback()
            return
        if online:
            order.stripe_session_id = f"cs_prop_{order.id}_{next(COUNTER)}"
        db.session.commit()
        self.pending.add(order.id)

    @rule(who=st.integers(0, 1), quantity=st.integers(1, 25), online=st.booleans())
    def sell(self, who, quantity, online):
        """An order placed and paid at once (what most orders do)."""
        self.place(who, quantity, online)
        if self.pending:
            self.pay(max(self.pending))

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 100))
    def pay(self, index):
        order = self._pick(self.pending, index)
        if order.payment_method == "offline":
            payments.confirm_offline_payment(order, reference=f"R{order.id}", user_id=self.world.manager.id)
        else:
            event = {"id": f"evt_prop_{next(COUNTER)}", "type": "checkout.session.completed",
                     "data": {"object": {"id": order.stripe_session_id, "client_reference_id": str(order.id),
                                         "payment_status": "paid", "amount_total": order.total_fen,
                                         "currency": "cny", "payment_intent": f"pi_prop_{order.id}"}}}
            payments.handle_event(event)
            self.events.append(event)
        db.session.commit()
        self.pending.discard(order.id)
        self.to_pack.add(order.id)
        self.refundable[order.id] = order.payment_method
        self.model.sale(db.session.get(Order, order.id))

    @precondition(lambda self: self.events)
    @rule(index=st.integers(0, 100))
    def duplicate_event(self, index):
        assert payments.handle_event(self.events[index % len(self.events)]) == "duplicate"
        db.session.commit()

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 100))
    def cancel(self, index):
        order = self._pick(self.pending, index)
        orders.cancel(order, user_id=self.world.staff.id if order.buyer_id == self.world.staff.id else self.world.manager.id)
        db.session.commit()
        self.pending.discard(order.id)

    def _after_refund(self, order_id):
        order = db.session.get(Order, order_id)
        if order.payment_status == "refunded":
            self.refundable.pop(order_id, None)
        if order.status == "cancelled":
            self.to_pack.discard(order_id)

    @precondition(lambda self: self._refundable("offline"))
    @rule(index=st.integers(0, 100), share=st.integers(1, 120), restock=st.booleans(), name_lot=st.booleans())
    def refund(self, index, share, restock, name_lot):
        order = self._pick(self._refundable("offline"), index)
        line = order.lines[0]
        quantity = max(1, (line.quantity - line.refunded_quantity) * share // 100)  # now and then too many
        lots = None
        if name_lot:
            lots = {line.id: [a.id for a in line.allocations if a.held > 0][-1:]}
        try:
            record = payments.refund_order(order, {line.id: quantity}, restock=restock, user_id=self.world.manager.id,
                                           lots=lots)
        except DomainError:
            db.session.rollback()
            assert share > 100 or name_lot
            return
        db.session.commit()
        if name_lot:
            assert {rl.allocation_id for rl in record.lines} <= set(lots[line.id])
        self.model.refund(record)
        self._after_refund(order.id)

    @precondition(lambda self: self._refundable("stripe"))
    @rule(index=st.integers(0, 100), share=st.integers(1, 100), odd=st.integers(0, 1))
    def refunded_in_stripe(self, index, share, odd):
        """A refund made in Stripe's dashboard arrives as `charge.refunded` (its amount is cumulative)."""
        order = self._pick(self._refundable("stripe"), index)
        price = order.lines[0].unit_price_fen
        left_units = order.lines[0].quantity - order.lines[0].refunded_quantity
        amount = min(order.total_fen, order.refunded_fen + max(1, left_units * share // 100) * price + odd)
        event = {"id": f"evt_prop_{next(COUNTER)}", "type": "charge.refunded",
                 "data": {"object": {"id": f"ch_prop_{order.id}", "payment_intent": order.stripe_payment_intent_id,
                                     "amount": order.total_fen, "amount_refunded": amount, "currency": "cny"}}}
        before = {r.id for r in order.refunds}
        payments.handle_event(event)
        db.session.commit()
        db.session.expire_all()
        for record in db.session.get(Order, order.id).refunds:
            if record.id not in before:
                self.model.refund(record)
        self._after_refund(order.id)

    @precondition(lambda self: self.to_pack)
    @rule(index=st.integers(0, 100))
    def hand_over(self, index):
        order = self._pick(self.to_pack, index)
        orders.pack(order, user_id=self.world.manager.id)
        orders.hand_over(order, user_id=self.world.manager.id, to="领取人")
        db.session.commit()
        self.to_pack.discard(order.id)

    @rule(who=st.integers(0, 2), share=st.one_of(st.integers(1, 120), st.sampled_from([97, 99, 100, 101])))
    def payout(self, who, share):
        household_id = self.households[who].id
        amount = max(1, self.model.owed[household_id] * share // 100)  # now and then more than is owed
        try:
            ledger.pay_out(ledger.household_account(household_id), amount, method="cash", reference="R",
                           user_id=self.world.manager.id)
        except ledger.ExceedsBalance:
            db.session.rollback()
            assert amount > self.model.owed[household_id]
            return
        db.session.commit()
        assert amount <= self.model.owed[household_id]
        self.model.owed[household_id] -= amount

    # --- the company: a standing contract, bulk orders, transfers --------------------------------

    @rule(shortfall=st.integers(0, 15), restock=st.booleans())
    def contract_month(self, shortfall, restock):
        result = contracts.generate_for(self.contract, self.month)
        self.month = clock.month_after(self.month)
        if result.order is None:
            db.session.commit()
            return
        made = result.order
        contracts.deliver(made, user_id=self.world.manager.id)
        line = made.lines[0]
        accepted = max(0, line.quantity - shortfall)
        contracts.accept(made, {line.id: accepted}, user_id=self.world.buyer.id,
                         note="短少" if accepted < line.quantity else None)
        if accepted < line.quantity:
            contracts.handle_rejected(made, restock=restock, user_id=self.world.manager.id)
        db.session.commit()
        self.model.sale(db.session.get(Order, made.id), company=True)

    @rule(quantity=st.integers(1, 60), decision=st.sampled_from(["confirm", "refuse", "cancel"]),
          deliver=st.booleans())
    def bulk_order(self, quantity, decision, deliver):
        try:
            bulk = contracts.request_bulk_order(self.world.buyer, [(self.brooms.id, quantity)])
        except DomainError:
            db.session.rollback()
            return
        try:
            if decision == "confirm":
                contracts.confirm_bulk_order(bulk, user_id=self.world.manager.id)
            elif decision == "refuse":
                contracts.refuse_bulk_order(bulk, reason="本月不供", user_id=self.world.manager.id)
            else:
                orders.cancel(bulk, user_id=self.world.buyer.id)
        except DomainError:  # the stock moved on since the request
            db.session.rollback()
            return
        if decision == "confirm" and deliver:
            contracts.deliver(bulk, user_id=self.world.manager.id)
            contracts.accept(bulk, {}, user_id=self.world.buyer.id)
            db.session.commit()
            self.model.sale(db.session.get(Order, bulk.id), company=True)
        db.session.commit()

    @rule(share=st.integers(1, 120))
    def transfer(self, share):
        amount = max(1, (self.company_before + self.model.company_owed) * share // 100)
        try:
            contracts.record_payment(self.world.jinlv, amount, reference="TX", paid_on=date(2024, 5, 1),
                                     user_id=self.world.admin.id)
        except ledger.ExceedsBalance:
            db.session.rollback()
            assert amount > self.model.company_owed + self.company_before
            return
        db.session.commit()
        self.model.company_owed -= amount

    # --- after every step ----------------------------------------------------------------------

    @invariant()
    def books_are_clean(self):
        assert ledger.verify() == []
        assert inventory.verify() == []
        assert orders.verify() == []
        assert contracts.verify() == []

    @invariant()
    def everyone_holds_what_the_model_says(self):
        for supplier in self.households:
            assert ledger.household_account(supplier.id).owed_fen == self.model.owed[supplier.id], supplier.code
        assert contracts.owed_by(self.world.jinlv) == self.company_before + self.model.company_owed
        assert -ledger.platform_balance("fee_income") == self.fees_before + self.model.fees

    def teardown(self):
        assert reports.verify([clock.today().year]) == []


def test_any_sequence_of_shop_events_keeps_every_invariant(app, world):
    app.config["STRIPE_SECRET_KEY"] = "sk_test_not_called"  # stripe orders are paid by signed-event handling here
    Shop.app, Shop.world = app, world
    run_state_machine_as_test(Shop, settings=settings(max_examples=30, stateful_step_count=50, deadline=None,
                                                     database=None, suppress_health_check=list(HealthCheck)))

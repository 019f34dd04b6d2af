"""Stateful property test: whatever happens, in whatever order, every invariant holds after every step."""
import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from shop.errors import DomainError
from shop.extensions import db
from shop.inventory import services as inventory
from shop.ledger import services as ledger
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from tests.factories import household, product, receive

COUNTER = itertools.count()


def test_any_sequence_of_shop_events_keeps_every_invariant(app, world):
    app.config["STRIPE_SECRET_KEY"] = "sk_test_not_called"  # stripe orders are paid by signed-event handling here
    buyers = [world.staff, world.staff2]

    class Shop(RuleBasedStateMachine):
        @initialize(fee=st.sampled_from([0, 15, 333, 1000]), price=st.integers(1, 5000))
        def start(self, fee, price):
            """Every run has its own product and households, so runs never depend on each other."""
            from shop.producers import services as producers

            db.session.rollback()  # a run never inherits a half-finished transaction
            app.config["SHOP_SERVICE_FEE_PERMILLE"] = fee
            run = next(COUNTER)
            self.product = product(f"性质{run}", price_fen=price)
            self.households = [household(world.village, f"P{run}-{n}", status=status)
                               for n, status in enumerate(("alleviated", "monitored", "ordinary"))]
            producers.pair(world.staff, self.households[0])
            for supplier in self.households:
                receive(supplier, world.manager, (self.product, 30))
            db.session.commit()
            self.orders: list[int] = []
            self.events: list[dict] = []

        @rule(who=st.integers(0, 2), quantity=st.integers(1, 40))
        def intake(self, who, quantity):
            receive(self.households[who], world.manager, (self.product, quantity))
            db.session.commit()

        @rule(who=st.integers(0, 1), quantity=st.integers(1, 25), online=st.booleans())
        def place(self, who, quantity, online):
            try:
                order = orders.place_order(buyers[who], payment_method="stripe" if online else "offline",
                                           pickup_point_id=world.point.id, lines=[(self.product.id, quantity)])
            except DomainError:
                db.session.rollback()
                return
            if online:
                order.stripe_session_id = f"cs_prop_{order.id}_{next(COUNTER)}"
            db.session.commit()
            self.orders.append(order.id)

        def _order(self, index, *statuses):
            candidates = [db.session.get(Order, i) for i in self.orders]
            candidates = [o for o in candidates if o.status in statuses]
            return candidates[index % len(candidates)] if candidates else None

        @rule(index=st.integers(0, 100))
        def pay(self, index):
            order = self._order(index, "pending_payment")
            if order is None:
                return
            if order.payment_method == "offline":
                orders.confirm_offline_payment(order, reference=f"R{order.id}", user_id=world.manager.id)
            else:
                event = {"id": f"evt_prop_{next(COUNTER)}", "type": "checkout.session.completed",
                         "data": {"object": {"id": order.stripe_session_id, "client_reference_id": str(order.id),
                                             "payment_status": "paid", "amount_total": order.total_fen,
                                             "currency": "cny", "payment_intent": f"pi_prop_{order.id}"}}}
                payments.handle_event(event)
                self.events.append(event)
            db.session.commit()

        @precondition(lambda self: self.events)
        @rule(index=st.integers(0, 100))
        def duplicate_event(self, index):
            assert payments.handle_event(self.events[index % len(self.events)]) == "duplicate"
            db.session.commit()

        @rule(index=st.integers(0, 100))
        def cancel(self, index):
            order = self._order(index, "pending_payment")
            if order is not None:
                orders.cancel(order, user_id=world.staff.id)
                db.session.commit()

        @rule(index=st.integers(0, 100), quantity=st.integers(1, 25), restock=st.booleans())
        def refund(self, index, quantity, restock):
            order = self._order(index, "paid", "packed", "handed_over", "partially_refunded")
            if order is None:
                return
            line = order.lines[0]
            try:
                orders.refund(order, {line.id: quantity}, restock=restock, user_id=world.manager.id)
            except DomainError:
                db.session.rollback()
                return
            db.session.commit()

        @rule(index=st.integers(0, 100))
        def hand_over(self, index):
            order = self._order(index, "paid")
            if order is not None:
                orders.pack(order, user_id=world.manager.id)
                orders.hand_over(order, user_id=world.manager.id, to="领取人")
                db.session.commit()

        @rule(who=st.integers(0, 2), amount=st.integers(1, 200_000))
        def payout(self, who, amount):
            account = ledger.household_account(self.households[who].id)
            try:
                ledger.pay_out(account, amount, method="cash", reference="R", user_id=world.manager.id)
            except ledger.ExceedsBalance:
                db.session.rollback()
                assert amount > ledger.household_account(self.households[who].id).owed_fen
                return
            db.session.commit()

        @invariant()
        def books_are_clean(self):
            assert ledger.verify() == []
            assert inventory.verify() == []

    run_state_machine_as_test(Shop, settings=settings(max_examples=40, stateful_step_count=40, deadline=None,
                                                     database=None, suppress_health_check=list(HealthCheck)))

"""Stateful property test: top-ups, grants (some refused), checkouts spending grants (some refused), payments,
cancellations, refunds, and days passing with grants expiring, in any order — after every step each fund holds
exactly what a model of the rules says, every grant exactly what is left of it, and
Σ granted = Σ spent − Σ returned + Σ unspent + Σ expired, to the fen."""
from datetime import timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from shop import clock
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.ledger import services as ledger
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from shop.welfare import services as welfare
from shop.welfare.models import WelfareGrant
from tests.conftest import empty_all_tables
from tests.factories import receive
from tests.factories import world as make_world

EGG = 120  # fen a piece


class Funds(RuleBasedStateMachine):
    app = None

    @initialize()
    def start(self):
        db.session.rollback()  # a run never inherits a half-finished transaction
        db.session.remove()
        empty_all_tables()
        self.world = make_world()
        self.members = [self.world.staff, self.world.staff2, self.world.coordinator]
        self.fund = welfare.fund_of(self.world.bureau.id)
        db.session.commit()
        self.day = clock.today()
        welfare.top_up(self.fund, 20_000, reference="GH", user_id=self.world.coordinator.id)
        db.session.commit()
        self.available = 20_000
        self.left: dict[int, tuple[int, object]] = {}  # grant id → (what is left, its expiry date)
        self.granted_in_year: dict[tuple[int, int], int] = {}
        self.expiry: dict[int, object] = {}  # every grant's expiry date
        receive(self.world.h1, self.world.manager, (self.world.eggs, 5000))
        db.session.commit()
        self.orders: dict[int, dict] = {}  # order id → {paid, units, drawn: {grant id: fen}, welfare_left}
        for member in (0, 1):  # each member starts with a small grant expiring soon and a larger one later
            for amount, days in ((500, 3), (5_000, 40)):
                self._grant(member, amount, days)

    @rule(amount=st.integers(1, 50_000))
    def top_up(self, amount):
        welfare.top_up(self.fund, amount, reference="GH", user_id=self.world.coordinator.id,
                       at=clock.at_local_time(self.day, clock.now().time()))
        db.session.commit()
        self.available += amount

    @rule(member=st.integers(0, 2), amount=st.one_of(st.integers(-5, 3_000), st.integers(3_000, 80_000)),
          days=st.integers(-2, 40))
    def grant(self, member, amount, days):
        self._grant(member, amount, days)

    def _grant(self, member, amount, days):
        user = self.members[member]
        expires = self.day + timedelta(days=days)
        ask = welfare.GrantAsk(user, amount, min(self.day, expires), expires, "慰问")
        cap = self.app.config["SHOP_WELFARE_MEMBER_YEAR_CAP_FEN"]
        so_far = self.granted_in_year.get((user.id, self.day.year), 0)
        fits = (amount > 0 and days >= 0 and amount <= self.available and (not cap or so_far + amount <= cap)
                and user.role == "staff")  # the coordinator buys for the unit, on account: never granted
        try:
            made = welfare.grant(self.fund, ask, granted_by=self.world.coordinator.id,
                                 at=clock.at_local_time(self.day, clock.now().time()))
        except ValidationFailed:
            db.session.rollback()
            assert not fits
            return
        db.session.commit()
        assert fits
        self.available -= amount
        self.left[made.id] = (amount, expires)
        self.expiry[made.id] = expires
        self.granted_in_year[(user.id, self.day.year)] = so_far + amount

    def _at(self):
        return clock.at_local_time(self.day, clock.now().time())

    @rule(member=st.integers(0, 1), units=st.integers(1, 30), data=st.data())
    def checkout(self, member, units, data):
        user = self.members[member]
        usable = sorted((expires, gid) for gid, (left, expires) in self.left.items()
                        if left > 0 and db.session.get(WelfareGrant, gid).user_id == user.id)
        wanted = data.draw(st.integers(0, sum(self.left[gid][0] for _e, gid in usable) + 200))  # now and then more
        drawn_total = min(wanted, units * EGG)
        try:
            placed = payments.checkout(user, payment_method="offline", pickup_point_id=self.world.point.id,
                                       lines=[(self.world.eggs.id, units)], welfare_fen=wanted, at=self._at())
        except ValidationFailed:
            db.session.rollback()
            assert drawn_total > sum(self.left[gid][0] for _e, gid in usable)
            return
        db.session.commit()
        self._lapsed()
        order = placed[0]
        need, drawn = drawn_total, {}
        for _expires, gid in usable:
            take = min(need, self.left[gid][0])
            if take:
                drawn[gid] = take
                self.left[gid] = (self.left[gid][0] - take, self.left[gid][1])
                need -= take
        assert need == 0 and order.welfare_fen == drawn_total
        event(f"checkout drawing on {len(drawn)} grants")
        self.orders[order.id] = {"paid": order.due_fen == 0, "units": units, "drawn": drawn,
                                 "welfare_left": drawn_total}

    def _lapsed(self):
        """Placing an order cancels unpaid orders whose hold has run out (their welfare goes back)."""
        for order_id in sorted(oid for oid, entry in self.orders.items() if not entry["paid"]):
            if db.session.get(Order, order_id).status == "cancelled":
                self._give_back(self.orders[order_id], self.orders[order_id]["welfare_left"])
                del self.orders[order_id]

    def _give_back(self, entry, amount):
        for gid in sorted(entry["drawn"], key=lambda g: (self.expiry[g], g), reverse=True):
            take = min(amount, entry["drawn"][gid])
            if not take:
                continue
            entry["drawn"][gid] -= take
            amount -= take
            if gid in self.left:
                self.left[gid] = (self.left[gid][0] + take, self.left[gid][1])
            else:
                self.available += take
        assert amount == 0

    @rule(data=st.data(), pay=st.booleans())
    def pay_or_cancel(self, data, pay):
        unpaid = sorted(oid for oid, entry in self.orders.items() if not entry["paid"])
        if not unpaid:
            return
        order_id = data.draw(st.sampled_from(unpaid))
        order = db.session.get(Order, order_id)
        entry = self.orders[order_id]
        if pay:
            payments.confirm_offline_payment(order, reference="R", user_id=self.world.manager.id, at=self._at())
            entry["paid"] = True
        else:
            orders.cancel(order, user_id=None)
            self._give_back(entry, entry["welfare_left"])
            del self.orders[order_id]
        db.session.commit()

    @rule(data=st.data())
    def refund(self, data):
        paid = sorted(oid for oid, entry in self.orders.items() if entry["paid"] and entry["units"])
        if not paid:
            return
        order_id = data.draw(st.sampled_from(paid))
        entry = self.orders[order_id]
        units = data.draw(st.integers(1, entry["units"]))
        order = db.session.get(Order, order_id)
        record = payments.refund_order(order, {order.lines[0].id: units}, restock=True, user_id=self.world.manager.id)
        db.session.commit()
        welfare_part = min(units * EGG, entry["welfare_left"])
        event(f"refund: welfare back {'partly' if 0 < welfare_part < entry['welfare_left'] else 'all or none'}, "
              f"{sum(1 for v in entry['drawn'].values() if v)} grants drawn")
        assert record.welfare_fen == welfare_part
        entry["units"] -= units
        entry["welfare_left"] -= welfare_part
        self._give_back(entry, welfare_part)

    @rule(days=st.integers(1, 30))
    def days_pass(self, days):
        self.day += timedelta(days=days)
        expired = welfare.expire_grants(self.day, at=clock.at_local_time(self.day, clock.now().time()))
        db.session.commit()
        due = sorted(g for g, (_left, expires) in self.left.items() if expires < self.day)
        assert expired == due
        for grant_id in due:
            self.available += self.left.pop(grant_id)[0]

    @invariant()
    def books_add_up(self):
        assert welfare.verify() == []
        assert ledger.verify() == []
        figures = welfare.figures(self.fund)
        assert figures.available_fen == self.available
        assert figures.unspent_fen == sum(left for left, _e in self.left.values())
        assert figures.granted_fen == figures.spent_fen - figures.returned_fen + figures.unspent_fen + figures.expired_fen
        for grant_id, (left, _e) in self.left.items():
            assert db.session.get(WelfareGrant, grant_id).remaining_fen == left


def test_any_sequence_of_grants_spends_refunds_and_expiries_keeps_the_funds_exact(app, world):
    app.config["SHOP_WELFARE_MEMBER_YEAR_CAP_FEN"] = 100_000
    Funds.app = app
    run_state_machine_as_test(Funds, settings=settings(max_examples=25, stateful_step_count=30, deadline=None,
                                                       database=None, suppress_health_check=list(HealthCheck)))

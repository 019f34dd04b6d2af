"""Stateful property test: top-ups, grants (some refused), and days passing with grants expiring, in any order —
after every step each fund holds exactly what a model of the rules says, every grant exactly what is left of it,
and Σ granted = Σ spent − Σ returned + Σ unspent + Σ expired, to the fen."""
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from shop import clock
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.ledger import services as ledger
from shop.welfare import services as welfare
from shop.welfare.models import WelfareGrant
from tests.conftest import empty_all_tables
from tests.factories import world as make_world


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
        self.available = 0
        self.left: dict[int, tuple[int, object]] = {}  # grant id → (what is left, its expiry date)
        self.granted_in_year: dict[tuple[int, int], int] = {}

    @rule(amount=st.integers(1, 50_000))
    def top_up(self, amount):
        welfare.top_up(self.fund, amount, reference="GH", user_id=self.world.coordinator.id,
                       at=clock.at_local_time(self.day, clock.now().time()))
        db.session.commit()
        self.available += amount

    @rule(member=st.integers(0, 2), amount=st.integers(-5, 80_000), days=st.integers(-2, 40))
    def grant(self, member, amount, days):
        user = self.members[member]
        expires = self.day + timedelta(days=days)
        ask = welfare.GrantAsk(user, amount, min(self.day, expires), expires, "慰问")
        cap = self.app.config["SHOP_WELFARE_MEMBER_YEAR_CAP_FEN"]
        so_far = self.granted_in_year.get((user.id, self.day.year), 0)
        fits = amount > 0 and days >= 0 and amount <= self.available and (not cap or so_far + amount <= cap)
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
        self.granted_in_year[(user.id, self.day.year)] = so_far + amount

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


def test_any_sequence_of_top_ups_grants_and_expiries_keeps_the_funds_exact(app, world):
    app.config["SHOP_WELFARE_MEMBER_YEAR_CAP_FEN"] = 100_000
    Funds.app = app
    run_state_machine_as_test(Funds, settings=settings(max_examples=25, stateful_step_count=30, deadline=None,
                                                       database=None, suppress_health_check=list(HealthCheck)))

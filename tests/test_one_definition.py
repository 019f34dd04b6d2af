"""Each fact has one definition, and where the database computes it too, its SQL twin gives the very same answer:
an order's number, a moment's local day and month (in any time zone, summer time and half-hour offsets
included), a line's value."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import DateTime, Integer, literal, select

from shop import clock
from shop.extensions import db
from shop.ledger import services as ledger
from shop.ledger.models import SalesDayBuyer
from shop.models_base import value_fen, value_fen_sql
from shop.orders.models import order_number
from shop.payments import services as payments
from shop.reports import services as reports
from shop.orders.models import order_number_sql
from shop.sqltime import local_date, local_month
from tests.conftest import text_of
from tests.factories import order as place
from tests.orders.helpers import assert_books_clean, run_cli

ZONES = ["Asia/Shanghai", "Asia/Kolkata", "Europe/Berlin"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31))


@FAST
@given(placed=moments, order_id=st.integers(1, 2**31 - 1))
def test_an_order_number_is_the_same_in_python_and_in_sql(app, placed, order_id):
    in_sql = db.session.scalar(select(order_number_sql(literal(placed, DateTime), literal(order_id, Integer))))
    assert in_sql == order_number(placed, order_id)


@pytest.mark.parametrize("zone", ZONES)
@FAST
@given(moment=moments)
def test_a_moments_local_day_and_month_are_the_same_in_python_and_in_sql(app, zone, moment):
    app.config["SHOP_TIMEZONE"] = zone
    stored = literal(moment, DateTime)
    day, month = db.session.execute(select(local_date(stored), local_month(stored))).one()
    expected = moment.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).date()
    assert (day, month) == (expected.isoformat(), expected.isoformat()[:7]) == (
        clock.local_day(moment).isoformat(), clock.month_of(clock.local_day(moment)))


@FAST
@given(quantity=st.integers(0, 10**6), price=st.integers(0, 10**7), scale=st.sampled_from([1, 10, 100, 1000]))
def test_a_lines_value_is_the_same_in_python_and_in_sql(app, quantity, price, scale):
    in_sql = db.session.scalar(select(value_fen_sql(literal(quantity, Integer), literal(price, Integer),
                                                    literal(scale, Integer))))
    assert in_sql == value_fen(quantity, price, scale)


# (zone, a local moment just after midnight on the first of a month, when the offset differs from today's or is
# not whole hours): the sale belongs to that day and month everywhere — rollups, reports, statements, verify
NEAR_MIDNIGHT = [("Asia/Kolkata", datetime(2026, 3, 1, 0, 10)), ("Europe/Berlin", datetime(2026, 7, 1, 0, 30)),
                 ("Europe/Berlin", datetime(2026, 1, 1, 0, 20))]


@pytest.mark.parametrize("zone,local_moment", NEAR_MIDNIGHT, ids=[f"{z} {m:%m-%d %H:%M}" for z, m in NEAR_MIDNIGHT])
def test_a_sale_just_after_local_midnight_counts_on_its_own_day_everywhere(app, client, world, zone, local_moment):
    app.config["SHOP_TIMEZONE"] = zone
    at = local_moment.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc).replace(tzinfo=None)
    assert at.date() < local_moment.date()  # in UTC it is still the day before
    order = place(world.staff, world.point, (world.eggs, 5), at=at - timedelta(minutes=5))
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id, at=at)
    db.session.commit()
    day = local_moment.date()
    assert db.session.scalars(select(SalesDayBuyer.day)).all() == [day]
    assert_books_clean(app)  # the rollups kept with the sale are what a recount in SQL gives
    assert run_cli(app, "verify")[0] == 0
    report = reports.build(reports.Period(date(day.year, day.month, 1), day), day)
    assert report.total_fen == 600 and report.by_month == [(f"{day:%Y-%m}", 600)]
    account = ledger.household_account(world.h1.id)
    statement = ledger.statement(account, day, day)
    assert [row.day for row in statement.rows] == [day.isoformat()]
    assert ledger.summary(account, day, day).by_month == [(f"{day:%Y-%m}", 600)]
    assert ledger.incomes([world.h1.id], day, day)[world.h1.id].income_fen == 600
    assert ledger.incomes([world.h1.id], day - timedelta(days=1), day - timedelta(days=1))[world.h1.id].income_fen == 0
    client.login("manager")
    page = text_of(client.get(f"/manage/ledger/household/{world.h1.id}/statement?from={day}&to={day}"))
    assert day.isoformat() in page and "¥6.00" in page

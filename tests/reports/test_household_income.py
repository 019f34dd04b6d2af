"""A household reads its own income with its card and PIN; its staff member sees it on /my; the watch list
names the households at risk of falling back — every figure the ledger's."""
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from shop import clock
from shop.audit.models import AuditEvent
from shop.extensions import db
from shop.ledger import services as ledger
from shop.notifications.models import Notification
from shop.payments import services as payments
from shop.producers import services as producers
from shop.producers.models import HouseholdCard, VisitNote
from shop.reports import services as reports
from shop.unit_of_work import run
from tests.conftest import text_of
from tests.factories import household, order as place, receive
from tests.races import race


def sell(world, supplier, quantity, product=None):
    """Goods of `supplier` sold to staff and paid: its income in the ledger."""
    product = product or world.peanuts
    receive(supplier, world.manager, (product, quantity))
    db.session.commit()
    order = place(world.staff2, world.point, (product, quantity))
    payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
    db.session.commit()
    return order


def issue(world, supplier):
    card, pin = run(lambda: producers.issue_card(supplier, user_id=world.manager.id))
    return card, pin


def open_page(client, card, pin):
    return client.post(f"/h/{card.token}", data={"pin": pin})


def test_the_household_opens_its_page_with_its_pin_and_reads_its_own_income(app, world, client):
    sell(world, world.h2, 5)  # 5 × ¥9.00 of peanuts
    card, pin = issue(world, world.h2)
    assert len(pin) == 6 and pin.isdigit() and pin not in card.pin_hash  # only the hash is kept
    closed = client.get(f"/h/{card.token}")
    assert closed.status_code == 200 and "张秀英" not in text_of(closed) and "noindex" in closed.headers["X-Robots-Tag"]
    wrong = open_page(client, card, "000000" if pin != "000000" else "111111")
    assert wrong.status_code == 422 and "还可以再试 4 次" in text_of(wrong) and "张秀英" not in text_of(wrong)
    assert open_page(client, card, pin).status_code == 303
    page = client.get(f"/h/{card.token}")
    text = text_of(page)
    account = ledger.household_account(world.h2.id)
    assert "张秀英" in text and "¥45.00" in text and "花生米" in text and "县XX局" in text
    assert f"{ledger.summary(account, date(clock.today().year, 1, 1), clock.today()).income_fen / 100:.2f}" in text
    assert "下次结算" in text and '<meta name="robots" content="noindex, nofollow">' in page.get_data(as_text=True)
    assert "李建国" not in text and "XXC001" not in text


def test_wrong_pins_are_limited_and_a_new_pin_or_a_revoked_card_takes_effect_at_once(app, world, client):
    card, pin = issue(world, world.h1)
    wrong = "123456" if pin != "123456" else "654321"
    for left in (4, 3, 2, 1):
        assert f"还可以再试 {left} 次" in text_of(open_page(client, card, wrong))
    assert open_page(client, card, wrong).status_code == 429
    refused = open_page(client, card, pin)  # even the right PIN, while the card rests
    assert refused.status_code == 429 and "李建国" not in text_of(refused)
    card, new_pin = run(lambda: producers.reset_pin(world.h1, user_id=world.manager.id))
    assert open_page(client, card, new_pin).status_code == 303
    assert "李建国" in text_of(client.get(f"/h/{card.token}"))
    run(lambda: producers.revoke_card(world.h1, user_id=world.manager.id))
    gone = client.get(f"/h/{card.token}")
    assert gone.status_code == 404 and "李建国" not in text_of(gone) and "停用" in text_of(gone)


def test_a_new_pin_closes_pages_opened_with_the_old_one(app, world, client):
    card, pin = issue(world, world.h1)
    open_page(client, card, pin)
    assert "李建国" in text_of(client.get(f"/h/{card.token}"))
    run(lambda: producers.reset_pin(world.h1, user_id=world.manager.id))
    assert "李建国" not in text_of(client.get(f"/h/{card.token}"))


@pytest.mark.postgres_only
def test_twenty_simultaneous_guesses_check_at_most_five_pins(app, world):
    card, pin = issue(world, world.h1)
    wrong = "123456" if pin != "123456" else "654321"
    results, token = [], card.token
    race(app, 20, lambda n: results.append(producers.try_pin(token, wrong)))
    assert sum(r.checked for r in results) == producers.CARD_ATTEMPTS
    assert not any(r.ok for r in results)
    db.session.expire_all()
    rested = db.session.get(HouseholdCard, card.id)
    assert rested.failed_attempts == producers.CARD_ATTEMPTS and rested.locked_until > clock.now()
    assert run(lambda: producers.try_pin(card.token, pin)).locked  # the right PIN waits out the rest too
    later = clock.now() + producers.CARD_REST + timedelta(seconds=1)
    assert run(lambda: producers.try_pin(card.token, pin, now=later)).ok


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sales=st.lists(st.integers(0, 7), min_size=2, max_size=4), which=st.integers(0, 3))
def test_one_households_link_and_pin_never_show_anothers_data(app, world, sales, which):
    from shop.catalog.models import Product

    run_id = db.session.scalar(select(func.count(HouseholdCard.id))) + 1
    product = db.session.scalar(select(Product).where(Product.id == world.peanuts.id))
    made = []
    for n, quantity in enumerate(sales):
        supplier = household(world.village, f"PR{run_id}-{n}", name=f"测试户{run_id}丙{n}")
        db.session.commit()
        if quantity:
            sell(world, supplier, quantity, product)
        made.append((supplier, *issue(world, supplier)))
    supplier, card, pin = made[which % len(made)]
    client = app.test_client()
    assert client.post(f"/h/{card.token}", data={"pin": pin}).status_code == 303
    text = text_of(client.get(f"/h/{card.token}"))
    assert supplier.head_name in text
    income = ledger.incomes([supplier.id], date(clock.today().year, 1, 1), clock.today())[supplier.id].income_fen
    assert f"¥{income // 100:,}.{income % 100:02d}" in text
    for other, other_card, _pin in made:
        if other.id != supplier.id:
            assert other.head_name not in text and other.code not in text
    # its PIN opens no other card
    for other, other_card, _pin in made:
        if other.id != supplier.id and pin != _pin:
            assert client.post(f"/h/{other_card.token}", data={"pin": pin}).status_code in (422, 429)


def test_the_staff_member_sees_their_own_households_by_name_with_income_and_notes_visits(app, world, client):
    sell(world, world.h1, 4)  # world.staff is paired with h1
    sell(world, world.h3, 2)  # not theirs
    client.login("staff01")
    page = text_of(client.get("/my"))
    account = ledger.household_account(world.h1.id)
    income = ledger.summary(account, date(clock.today().year, 1, 1), clock.today()).income_fen
    assert "李建国" in page and f"¥{income // 100:,}.{income % 100:02d}" in page and "人均" in page
    assert "刘德明" not in page
    today = clock.today().isoformat()
    assert client.post(f"/my/households/{world.h1.id}/visits", data={"visited_on": today, "note": "花生收成好"}).status_code == 302
    assert "花生收成好" in text_of(client.get("/my"))
    client.post(f"/my/households/{world.h3.id}/visits", data={"visited_on": today, "note": "不是我的"})
    assert db.session.scalar(select(func.count(VisitNote.id))) == 1


def test_the_watch_list_names_households_at_risk_with_the_ledgers_figures(app, world, client):
    app.config.update(SHOP_WATCH_INCOME_LINE_FEN=10**8, SHOP_WATCH_IDLE_DAYS=30)
    sell(world, world.h1, 6)
    client.login("manager")
    page = text_of(client.get("/manage/watch"))
    assert "李建国" in page and "张秀英" in page and "刘德明" not in page  # ordinary households are not watched
    rules = reports.WatchRules(10**8, 30, 30)
    for figures in reports.watch_list(clock.today(), rules):
        account = ledger.find_account(household_id=figures.household.id)
        expected = ledger.summary(account, date(clock.today().year, 1, 1), clock.today()).income_fen
        assert figures.this_year_fen == expected
        assert figures.twelve_months_fen == ledger.summary(account, *clock.twelve_months(clock.today())).income_fen
    assert "还没有销售" in page and "康本树" in page  # h2 never sold; h1's responsible staff member is named
    months = reports.monthly_incomes([world.h1.id, world.h2.id], 12, clock.today())  # both in one query
    assert [len(months[world.h1.id]), len(months[world.h2.id])] == [12, 12]
    assert months[world.h1.id][-1] == (clock.month_of(clock.today()), 5400)  # 6 jin of peanuts at ¥9.00
    assert sum(fen for _m, fen in months[world.h1.id]) == 5400 and not any(f for _m, f in months[world.h2.id])
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "watch.view")) == 1
    exported = client.post("/manage/watch/export.csv", data={})
    assert exported.get_data().startswith(b"\xef\xbb\xbf") and "李建国" in exported.get_data().decode("utf-8-sig")
    app.config["SHOP_WATCH_INCOME_LINE_FEN"] = 0
    assert "李建国" not in text_of(client.get("/manage/watch"))  # it sold within 30 days and is above a zero line


def test_views_of_a_households_page_by_staff_are_audited_and_a_weekly_digest_tells_each_staff_member(app, world, client):
    card, pin = issue(world, world.h1)
    client.login("manager")
    open_page(client, card, pin)
    client.get(f"/h/{card.token}")
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "household.page.view")) == 1
    rules = reports.WatchRules(10**8, 30, 30)
    assert run(lambda: reports.tell_watch_digests(clock.today(), rules)) == 1
    assert run(lambda: reports.tell_watch_digests(clock.today(), rules)) == 0  # once a week
    digest = db.session.scalar(select(Notification).where(Notification.event == "watch_digest"))
    assert digest.user_id == world.staff.id and "李建国" in digest.body


def test_the_intake_receipt_carries_the_households_card_link(app, world, client):
    card, _pin = issue(world, world.h1)
    client.login("manager")
    receipt = client.get(f"/manage/intakes/{world.lot.intake_id}/receipt").get_data(as_text=True)
    assert f"/h/{card.token}" in receipt and "<svg" in receipt

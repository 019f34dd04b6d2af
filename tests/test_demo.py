"""The demo village holds the work summary's figures, and loading it twice changes nothing."""
import pytest
from sqlalchemy import func, select

from shop import demo
from shop.accounts.models import Organization, User
from shop.catalog.models import CATEGORIES, PickupPoint, Product
from shop.extensions import db
from shop.inventory.models import Lot
from shop.orders.models import Order
from shop.producers import services as producers
from shop.producers.models import Enterprise, Household, Pairing, Village


def snapshot() -> dict:
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (User, Organization, Household, Enterprise, Pairing, Product, PickupPoint, Lot, Order)}


def test_demo_load_is_idempotent_and_holds_the_work_summary_figures(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    first = snapshot()
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0 and "nothing changed" in result.output
    assert snapshot() == first

    alleviated = db.session.execute(select(func.count(), func.sum(Household.members))
                                    .where(Household.status == "alleviated")).one()
    assert tuple(alleviated) == (86, 222)
    monitored = db.session.scalars(select(Household).where(Household.status == "monitored")).all()
    assert len(monitored) == 3 and sum(h.risk_eliminated for h in monitored) == 1

    bureau = db.session.scalar(select(Organization.id).where(Organization.name == "县XX局"))
    staff = db.session.scalar(select(func.count(User.id)).where(User.role == "staff", User.organization_id == bureau))
    assert staff == 56
    paired_by_status = dict(db.session.execute(
        select(Household.status, func.count()).join(Pairing).join(User, User.id == Pairing.user_id)
        .where(User.organization_id == bureau).group_by(Household.status)).all())
    assert paired_by_status == {"alleviated": 63, "monitored": 2}
    per_staff = db.session.execute(select(Pairing.user_id, func.count()).join(User, User.id == Pairing.user_id)
                                   .where(User.organization_id == bureau).group_by(Pairing.user_id)).all()
    assert len(per_staff) == 56 and all(n in (1, 2) for _, n in per_staff)
    # the county: four units and the two sanitation companies buying; each neighbour village supported by its own
    # unit, whose two staff are paired with two of its households
    assert {o.name for o in db.session.scalars(select(Organization))} == {
        "县XX局", "县农业农村局", "县交通运输局", "劲旅环卫", "永昊环卫"}
    assert first["Pairing"] == 65 + 4
    for unit, village in (("县XX局", "XX村"), ("县农业农村局", "东岭村"), ("县交通运输局", "南河村")):
        unit_id = db.session.scalar(select(Organization.id).where(Organization.name == unit))
        assert producers.supported_village_names()[unit_id] == [village]
        villages = set(db.session.scalars(select(Village.name).join(Household).join(Pairing)
                                          .join(User, User.id == Pairing.user_id).where(User.organization_id == unit_id)))
        assert villages == {village}
    assert first["Enterprise"] == 2
    # the bureau's union greets each of its 56 staff with ¥300 for Spring Festival, to spend until next month's end
    from shop import clock
    from shop.welfare import services as welfare

    fund = welfare.fund_of(bureau)
    grants = welfare.fund_grants(fund)
    assert len(grants) == 56 and {g.amount_fen for g in grants} == {30_000} and {g.purpose for g in grants} == {"春节慰问"}
    # … partly spent already: a few baskets paid wholly or partly from it, one still to be paid at the point
    spent = welfare.figures(fund)
    assert 0 < spent.spent_fen < 8 * 30_000 and spent.unspent_fen == 56 * 30_000 - spent.spent_fen
    assert welfare.verify() == []
    staff01 = next(g for g in grants if g.user.username == "staff01")
    assert 0 < staff01.remaining_fen < 30_000  # the demo login has some of it left to try at checkout
    statement = welfare.statement(fund, clock.month_of(clock.today()))
    assert len(statement.orders) >= 5 and statement.net_fen > 0 and statement.reached
    assert {p.category for p in db.session.scalars(select(Product))} == set(CATEGORIES)
    melon_points = db.session.scalar(select(func.count(PickupPoint.id)).where(PickupPoint.season_start_month == 6))
    assert melon_points == 20

    from shop.inventory import services as inventory

    stock = inventory.available()
    assert len(stock) >= 8 and all(n > 0 for n in stock.values())
    assert inventory.verify() == []

    from shop.ledger import services as ledger
    from shop.orders.models import Order

    statuses = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    # the demo's own orders, and the Spring Festival baskets (one still to be paid at the point)
    assert statuses.get("handed_over", 0) >= 10 and statuses.get("paid") == 1 and statuses.get("pending_payment") == 2
    assert ledger.verify() == []

    from shop import clock
    from shop.contracts import services as contracts
    from shop.contracts.models import Contract

    today = clock.today()
    three_year = db.session.scalar(select(Contract).where(Contract.organization.has(name="劲旅环卫")))
    assert (three_year.first_month, three_year.last_month, three_year.cap_fen) == (
        clock.month_after(clock.month_of(today), -36), clock.month_after(clock.month_of(today), -1), 19_000_000)
    assert three_year.status == "ended" and contracts.committed_fen(three_year) <= three_year.cap_fen
    assert db.session.scalar(select(func.count(Order.id)).where(Order.contract_id == three_year.id)) in (35, 36)
    running = db.session.scalar(select(Contract).where(Contract.organization.has(name="永昊环卫")))
    assert running.status == "active" and running.first_month < clock.month_of(today) < running.last_month

    from shop.reports import services as reports

    year = reports.Period(*clock.twelve_months(today))
    report = reports.build(year, today)
    assert 4_000_000 <= report.by_channel["retail"] <= 4_470_000  # about the work summary's ¥44,700 a year
    assert report.by_channel["bulk"] > 0 and report.by_channel["standing"] > 0 and report.by_channel["point"] > 0
    assert report.staff[0][2] == 56 and report.staff[0][3] > 40
    buying_days = {clock.local_day(o.placed_at) for o in db.session.scalars(select(Order).where(Order.channel == "retail"))}
    assert min(buying_days) >= year.start and (today - max(buying_days)).days <= 7  # the twelve months to now

    # the watch list names the few households the data puts at risk, and no others
    rules = reports.WatchRules(app.config["SHOP_WATCH_INCOME_LINE_FEN"], app.config["SHOP_WATCH_DROP_PERCENT"],
                               app.config["SHOP_WATCH_IDLE_DAYS"])
    assert sorted(f.household.code for f in reports.watch_list(today, rules)) == sorted(demo.AT_RISK.values())

    # a sales point sells today, with growers holding permits valid today: the watermelon points in summer,
    # the market point otherwise; the season's days so far are closed
    from shop.points import services as points
    from shop.points.models import Permit, PointDay, PointSale, SalesPoint

    selling = [p for p in db.session.scalars(select(SalesPoint)) if p.first_day <= today <= p.last_day]
    assert selling and all(points.valid_permit(p.id, g.household_id, g.enterprise_id, today)
                           for p in selling for g in p.growers)
    assert db.session.scalar(select(func.count(PointDay.id)).where(PointDay.day >= today)) == 0
    assert db.session.scalar(select(func.count(Permit.id))) >= 40
    assert db.session.scalar(select(func.count(PointSale.id)).where(PointSale.status != "recorded")) == 0
    assert report.points_used >= 20
    assert any(s.startswith("设置西瓜临时销售点") for s in reports.summary_sentences(report))
    assert points.verify() == []

    # every demo login works with the demo password (the same load: the demo takes a while)
    for username in ("admin", "manager", "staff01", "staff56", "buyer-jinlv", "buyer-yonghao", "op01"):
        response = client.post("/login", data={"username": username, "password": demo.DEMO_PASSWORD})
        assert response.status_code == 302, username
        client.logout()
    client.login("staff01", demo.DEMO_PASSWORD)
    from tests.conftest import text_of

    page = text_of(client.get("/my/households"))
    assert page.count("脱贫户") == 2  # staff01 is paired with two households

    # a county of three villages: each service point's manager sees their own village's households and stock only

    assert db.session.scalar(select(func.count(Village.id))) == 3
    for username, own, others in (("manager", ("XXC001", "散养土鸡蛋"), ("DLC001", "东岭小米", "NHC001")),
                                  ("manager-dongling", ("DLC001", "东岭小米"), ("XXC001", "散养土鸡蛋", "NHC001")),
                                  ("admin", ("XXC001", "DLC001", "NHC001", "南河土蜂蜜"), ())):
        client.logout()
        client.login(username, demo.DEMO_PASSWORD)
        seen = " ".join(text_of(client.get(f"/manage/households?q={code}")) for code in ("XXC001", "DLC001", "NHC001"))
        seen += text_of(client.get("/manage/stock"))
        assert all(word in seen for word in own) and not any(word in seen for word in others), username


def test_demo_load_if_empty_leaves_a_used_database_alone(app, world):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--if-empty"])
    assert "not loaded" in result.output
    assert db.session.scalar(select(func.count(Household.id))) == 3


@pytest.mark.slow
@pytest.mark.parametrize("month,day", [(7, 20), (1, 3)])
def test_the_demo_lives_on_any_day(app, month, day):
    """Loaded on a summer day, the watermelon points sell that day; on 3 January, the market point does — and
    either way the last twelve months hold the staff's buying and the watch list names the same few households."""
    from datetime import date

    from shop import clock, unit_of_work
    from shop.points.models import SalesPoint
    from shop.reports import services as reports

    today = clock.today()
    on = date(today.year, month, day)
    if on >= today:
        on = on.replace(year=today.year - 1)
    unit_of_work.run(lambda: demo.load(on))
    selling = {p.code[:2] for p in db.session.scalars(select(SalesPoint)) if p.first_day <= on <= p.last_day}
    assert selling == ({"XG"} if month == 7 else {"NH"})
    rules = reports.WatchRules(app.config["SHOP_WATCH_INCOME_LINE_FEN"], app.config["SHOP_WATCH_DROP_PERCENT"],
                               app.config["SHOP_WATCH_IDLE_DAYS"])
    assert sorted(f.household.code for f in reports.watch_list(on, rules)) == sorted(demo.AT_RISK.values())
    retail = reports.build(reports.Period(*clock.twelve_months(on)), on).by_channel["retail"]
    assert 4_000_000 <= retail <= 4_470_000


def test_demo_logins_link_to_the_port_served(app):
    result = app.test_cli_runner().invoke(args=["demo", "logins", "--port", "8123"])
    assert "http://127.0.0.1:8123/login" in result.output and "http://127.0.0.1:8123/h/" in result.output

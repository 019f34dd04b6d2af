"""The demo village holds the work summary's figures, and loading it twice changes nothing."""
from sqlalchemy import func, select

from shop import demo
from shop.accounts.models import Organization, User
from shop.catalog.models import CATEGORIES, PickupPoint, Product
from shop.extensions import db
from shop.inventory.models import Lot
from shop.orders.models import Order
from shop.producers.models import Enterprise, Household, Pairing


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

    staff = db.session.scalar(select(func.count(User.id)).where(User.role == "staff"))
    assert staff == 56
    assert first["Pairing"] == 65
    paired_by_status = dict(db.session.execute(
        select(Household.status, func.count()).join(Pairing).group_by(Household.status)).all())
    assert paired_by_status == {"alleviated": 63, "monitored": 2}
    per_staff = db.session.execute(select(Pairing.user_id, func.count()).group_by(Pairing.user_id)).all()
    assert len(per_staff) == 56 and all(n in (1, 2) for _, n in per_staff)

    assert {o.name for o in db.session.scalars(select(Organization))} >= {"县XX局", "劲旅环卫", "永昊环卫"}
    assert first["Enterprise"] == 2
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
    assert statuses.get("handed_over", 0) >= 5 and statuses.get("paid") == 1 and statuses.get("pending_payment") == 1
    assert ledger.verify() == []

    from shop.contracts import services as contracts
    from shop.contracts.models import Contract

    three_year = db.session.scalar(select(Contract).where(Contract.number == "JL-2022-07"))
    assert (three_year.first_month, three_year.last_month, three_year.cap_fen) == ("2022-07", "2025-06", 19_000_000)
    assert contracts.committed_fen(three_year) <= three_year.cap_fen
    assert db.session.scalar(select(func.count(Order.id)).where(Order.contract_id == three_year.id)) == 35
    jinlv = three_year.organization
    assert len(contracts.statements(jinlv)) == 35 and contracts.owed_by(jinlv) == 0

    from datetime import date

    from shop import clock
    from shop.reports import services as reports

    last_year = clock.today().year - 1
    report = reports.build(reports.Period(date(last_year, 1, 1), date(last_year, 12, 31)), clock.today())
    assert 4_300_000 <= report.by_channel["retail"] <= 4_470_000  # the work summary's ¥44,700 of staff buying
    assert report.staff[0][2] == 56 and report.staff[0][3] > 40

    # last summer at the 20 watermelon sales points: permits, July's sales by weight, every day closed
    from shop.points import services as points
    from shop.points.models import Permit, PointDay, PointSale, SalesPoint

    assert db.session.scalar(select(func.count(SalesPoint.id))) == 20
    assert db.session.scalar(select(func.count(Permit.id))) == 40
    assert db.session.scalar(select(func.count(PointSale.id)).where(PointSale.status == "recorded")) == 20 * 31 * 2
    assert db.session.scalar(select(func.count(PointDay.id))) == 20 * 31
    assert report.by_channel["point"] > 0 and report.points_used == 20 and report.point_households == 40
    assert any(s.startswith("设置西瓜临时销售点20处") for s in reports.summary_sentences(report))
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


def test_demo_load_if_empty_leaves_a_used_database_alone(app, world):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--if-empty"])
    assert "not loaded" in result.output
    assert db.session.scalar(select(func.count(Household.id))) == 3

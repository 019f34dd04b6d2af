"""The benchmark's bulk seed writes the rows the services would: the shop's own checks hold on it."""
import threading

from sqlalchemy import func, select

from bench.seed import seed
from shop.extensions import db
from shop import clock
from shop.inventory import services as inventory
from shop.ledger import services as ledger
from shop.ledger.models import Entry, JournalTransaction
from shop.orders.models import Order
from shop.reports import services as reports


def test_the_seeded_county_passes_the_shops_own_checks(app):
    seeded = seed("tiny")
    assert seeded.counts["order_line"] >= 250 and seeded.counts["household"] == 12
    assert ledger.verify() == []
    assert inventory.verify() == []
    # the report's year agrees with the ledger's sale credits, to the fen
    today = clock.today()
    report = reports.build(reports.Period(today.replace(year=today.year - 2), today), today)
    credits = db.session.scalar(select(-func.sum(Entry.amount_fen)).join(JournalTransaction)
                                .where(JournalTransaction.kind == "sale", Entry.allocation_id.is_not(None)))
    assert report.total_fen == credits > 0
    assert report.by_channel["standing"] > 0 and report.by_channel["retail"] > 0
    # the pending online orders hold their stock as reservations
    pending = db.session.scalar(select(func.count()).select_from(Order).where(Order.status == "pending_payment"))
    assert pending == len(seeded.pending_orders) > 0


def test_a_large_csv_export_streams_to_the_end(app, client):
    """More rows than one fetch: the CSV is written after the view has returned, and still completes
    (on PostgreSQL its server-side cursor once died with the request's session)."""
    from bench.seed import Scale

    seed(Scale(villages=1, households=20, governments=2, companies=1, staff=30, products=10, lots=80, lines=2600,
               pending=0))
    client.login("admin", "bench-password-1")
    today = clock.today()
    body = {}
    token = client.csrf_token()

    def download():  # as on a real server: a thread with no application context around the request
        from flask.testing import FlaskClient

        response = FlaskClient.open(client, f"/admin/report/export/lines.csv?from={today.year - 2}-01-01&to={today}",
                                    method="POST", data={"csrf_token": token}, buffered=False)
        body["csv"] = b"".join(response.response).decode("utf-8-sig")
        response.close()

    worker = threading.Thread(target=download)
    worker.start()
    worker.join()
    rows = body["csv"].strip().splitlines()
    sold = db.session.scalar(select(func.count()).select_from(Entry).where(Entry.allocation_id.is_not(None)))
    assert len(rows) - 1 == sold > 2000


def test_the_seeded_manager_runs_every_village_and_sees_the_busiest_households_statement(app, client):
    """`make bench` times this page as the seeded manager, who is granted every village's point."""
    seeded = seed("tiny")
    client.login("manager", "bench-password-1")
    today = clock.today()
    url = (f"/manage/ledger/household/{seeded.busiest_household_id}/statement"
           f"?from={today.replace(year=today.year - 1, day=1)}&to={today}")
    assert client.get(url).status_code == 200

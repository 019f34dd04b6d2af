"""Notifications: each event tells the right people once, in the shop and on every channel an operator
enabled — against a real SMTP server (aiosmtpd) and a local HTTP server standing in for the 企业微信 and
钉钉 group robots. A channel that is down is retried later; concurrent senders send each message once."""
from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

from shop import clock
from shop.contracts import services as contracts
from shop.extensions import db
from shop.notifications import sender
from shop.notifications import services as notices
from shop.notifications.models import Notification, OutboxMessage
from shop.orders import services as orders
from shop.payments import services as payments
from shop.unit_of_work import run
from tests.conftest import text_of
from tests.factories import order as place
from tests.factories import receive


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture(autouse=True)
def local_servers_allowed(app):
    """The stand-in SMTP server and robots listen on 127.0.0.1: the tests allow that host and address, as an
    operator would allow an intranet relay (SHOP_OUTBOUND_HOSTS, SHOP_OUTBOUND_ALLOW_NETWORKS)."""
    import ipaddress

    app.config.update(SHOP_OUTBOUND_HOSTS=("127.0.0.1",),
                      SHOP_OUTBOUND_ALLOW_NETWORKS=(ipaddress.ip_network("127.0.0.1/32"),))


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller checks it is up by connecting to it)
        probe.bind(("127.0.0.1", 0))
        inbox.port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


class Robots:
    """Both robots' webhooks: records every JSON post by path; `down` answers 503 (a channel that is down)."""

    def __init__(self):
        self.posts: list[tuple[str, dict, dict]] = []
        self.down = False
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                url = urlparse(self.path)
                if robots.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                robots.posts.append((url.path, parse_qs(url.query), body))
                answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path):
        return [body for p, _q, body in self.posts if p == path]


@pytest.fixture
def robots():
    stub = Robots()
    yield stub
    stub.server.shutdown()


@pytest.fixture
def channels(world, smtp, robots):
    run(lambda: notices.save_channel("email", enabled=True, settings={
        "host": "127.0.0.1", "port": smtp.port, "security": "none", "sender": "shop@xxc.example"}))
    run(lambda: notices.save_channel("wecom", enabled=True, settings={"webhook_url": f"{robots.url}/wecom?key=k1"}))
    run(lambda: notices.save_channel("dingtalk", enabled=True, settings={
        "webhook_url": f"{robots.url}/dingtalk?access_token=t1", "secret": "SEC-test"}))
    world.manager.email = "manager@xxc.example"
    world.staff.email = "staff01@bureau.example"
    db.session.commit()
    return smtp, robots


def outbox(**where):
    query = select(OutboxMessage)
    for name, value in where.items():
        query = query.where(getattr(OutboxMessage, name) == value)
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


def test_an_order_placed_tells_the_manager_once_on_every_channel(app, world, channels):
    smtp, robots = channels
    order = place(world.staff, world.point, (world.eggs, 3))
    mine = db.session.scalars(select(Notification).where(Notification.user_id == world.manager.id)).all()
    assert [(n.event, n.link) for n in mine] == [("order_placed", f"/orders/{order.id}")]
    assert order.number in mine[0].title and "¥3.60" in mine[0].title
    assert sorted(m.channel for m in outbox(event="order_placed")) == ["dingtalk", "email", "wecom"]
    assert sender.send_due() == {"sent": 3, "retry": 0, "failed": 0}
    assert len(smtp.messages) == 1 and smtp.messages[0][0] == ["manager@xxc.example"]
    assert "Subject: =?utf-8?" in smtp.messages[0][1] or order.number in smtp.messages[0][1]
    wecom, dingtalk = robots.to("/wecom"), robots.to("/dingtalk")
    assert len(wecom) == 1 and wecom[0]["msgtype"] == "markdown" and order.number in wecom[0]["markdown"]["content"]
    assert len(dingtalk) == 1 and dingtalk[0]["markdown"]["title"].startswith("新订单")
    query = next(q for p, q, _b in robots.posts if p == "/dingtalk")
    assert query["access_token"] == ["t1"] and query["timestamp"] and query["sign"]  # 加签
    assert sender.send_due() == {"sent": 0, "retry": 0, "failed": 0}  # nothing is sent twice
    assert len(smtp.messages) == 1 and len(robots.posts) == 2


def test_links_in_outbound_messages_are_absolute_where_the_shop_says_it_is_served(app, world, channels):
    smtp, robots = channels
    app.config["SHOP_BASE_URL"] = "https://shop.xxc.example/"
    order = place(world.staff, world.point, (world.eggs, 1))
    sender.send_due()
    assert f"https://shop.xxc.example/orders/{order.id}" in robots.to("/wecom")[0]["markdown"]["content"]
    assert f"https://shop.xxc.example/orders/{order.id}" in smtp.messages[0][1]


def test_each_step_of_an_order_tells_its_buyer(app, world, channels):
    smtp, _robots = channels
    order = place(world.staff, world.point, (world.eggs, 2))
    payments.confirm_offline_payment(order, reference="R-1", user_id=world.manager.id)
    db.session.commit()
    run(lambda: orders.pack(db.session.get(type(order), order.id), user_id=world.manager.id))
    told = db.session.scalars(select(Notification.event).where(Notification.user_id == world.staff.id)
                              .order_by(Notification.id)).all()
    assert told == ["payment_recorded", "ready_for_pickup"]
    sender.send_due()
    to_staff = [m for rcpt, m in smtp.messages if rcpt == ["staff01@bureau.example"]]
    assert len(to_staff) == 2


def test_a_channel_that_is_down_is_retried_later_and_nothing_is_lost(app, world, channels):
    smtp, robots = channels
    robots.down = True
    place(world.staff, world.point, (world.eggs, 1))
    assert sender.send_due() == {"sent": 1, "retry": 2, "failed": 0}  # the email went; both robots are down
    waiting = outbox(state="pending")
    assert sorted(m.channel for m in waiting) == ["dingtalk", "wecom"]
    assert all(m.attempts == 1 and m.next_attempt_at > clock.now() and "503" in m.last_error for m in waiting)
    robots.down = False
    assert sender.send_due() == {"sent": 0, "retry": 0, "failed": 0}  # not before its back-off
    db.session.execute(update(OutboxMessage).values(next_attempt_at=clock.now() - timedelta(seconds=1)))
    db.session.commit()
    assert sender.send_due() == {"sent": 2, "retry": 0, "failed": 0}
    assert len(robots.to("/wecom")) == 1 and len(robots.to("/dingtalk")) == 1
    assert {m.state for m in outbox()} == {"sent"}


def test_a_message_is_given_up_after_its_last_attempt_and_listed_for_the_admin(app, world, client, channels):
    _smtp, robots = channels
    robots.down = True
    place(world.staff, world.point, (world.eggs, 1))
    for _attempt in range(notices.MAX_ATTEMPTS):
        db.session.execute(update(OutboxMessage).values(next_attempt_at=clock.now() - timedelta(seconds=1)))
        db.session.commit()
        sender.send_due()
    assert sorted((m.channel, m.state) for m in outbox()) == [("dingtalk", "failed"), ("email", "sent"),
                                                               ("wecom", "failed")]
    client.login("admin")
    page = text_of(client.get("/admin/notifications"))
    assert "已放弃" in page and "对方返回 HTTP 错误 503" in page


def test_concurrent_senders_send_each_message_once(app, world, channels):
    smtp, robots = channels
    for n in range(4):
        place(world.staff, world.point, (world.eggs, 1))
    assert len(outbox(state="pending")) == 12
    start = threading.Barrier(10)
    results = []

    def send():
        with app.app_context():
            start.wait()
            results.append(sender.send_due())
            db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r["sent"] for r in results) == 12 and sum(r["retry"] + r["failed"] for r in results) == 0
    assert len(smtp.messages) == 4 and len(robots.to("/wecom")) == 4 and len(robots.to("/dingtalk")) == 4
    db.session.expire_all()
    assert {m.state for m in outbox()} == {"sent"}


def test_holds_ending_statements_deliveries_and_backorders_tell_the_right_people(app, world, channels):
    order = place(world.staff, world.point, (world.eggs, 1))
    soon = order.reserved_until - timedelta(minutes=30)
    assert run(lambda: orders.tell_holds_ending(soon)) == 1
    assert run(lambda: orders.tell_holds_ending(soon)) == 0  # once per order
    assert db.session.scalar(select(Notification.event).where(Notification.user_id == world.staff.id,
                                                             Notification.event == "hold_expiring")) == "hold_expiring"
    # a company delivery waits for acceptance: the company's buyers are told, no one else
    receive(world.h3, world.manager, (world.brooms, 50))
    db.session.commit()
    bulk = run(lambda: contracts.request_bulk_order(world.buyer, [(world.brooms.id, 20)]))
    run(lambda: contracts.confirm_bulk_order(db.session.get(type(bulk), bulk.id), user_id=world.manager.id))
    run(lambda: contracts.deliver(db.session.get(type(bulk), bulk.id), user_id=world.manager.id))
    waiting = db.session.scalars(select(Notification.user_id).where(Notification.event == "awaiting_acceptance")).all()
    assert waiting == [world.buyer.id]
    line = db.session.get(type(bulk), bulk.id).lines[0]
    run(lambda: contracts.accept(db.session.get(type(bulk), bulk.id), {line.id: 20}, user_id=world.buyer.id))
    accepted_month = clock.month_of(clock.today())
    next_month_day = clock.month_end(accepted_month) + timedelta(days=3)
    assert run(lambda: contracts.tell_statements(next_month_day)) == 1
    assert run(lambda: contracts.tell_statements(next_month_day)) == 0
    statement = db.session.scalar(select(Notification).where(Notification.event == "statement_issued"))
    assert statement.user_id == world.buyer.id and accepted_month in statement.title


def test_the_bell_counts_unread_and_opening_one_reads_it(app, world, client):
    order = place(world.staff, world.point, (world.eggs, 1))
    client.login("manager")
    page = client.get("/manage/today").get_data(as_text=True)
    assert 'data-unread>1<' in page
    inbox = text_of(client.get("/notifications"))
    assert order.number in inbox
    notification = db.session.scalar(select(Notification).where(Notification.user_id == world.manager.id))
    opened = client.post(f"/notifications/{notification.id}/open", data={})
    assert opened.headers["Location"].endswith(f"/orders/{order.id}")
    assert 'data-unread' not in client.get("/manage/today").get_data(as_text=True)
    client.logout()
    client.login("staff02")  # someone else's notification is not theirs to open
    assert client.post(f"/notifications/{notification.id}/open", data={}).status_code == 404


def test_the_admin_configures_channels_and_sends_a_test_message(app, world, client, smtp, robots):
    client.login("admin")
    refused = client.post("/admin/notifications/wecom", data={"wecom-enabled": "y", "wecom-webhook_url": ""})
    assert refused.status_code == 422 and "请填写 Webhook 地址" in text_of(refused)
    assert notices.settings_for("wecom") is None
    client.post("/admin/notifications/wecom", data={"wecom-enabled": "y", "wecom-webhook_url": f"{robots.url}/wecom?key=k"})
    client.post("/admin/notifications/email", data={"email-enabled": "y", "email-host": "127.0.0.1",
                                                     "email-port": str(smtp.port), "email-security": "none",
                                                     "email-sender": "shop@xxc.example"})
    # the test button only queues the message: it goes out once the answer has been sent (the response closed)
    queued = client.post("/admin/notifications/wecom/test", data={})
    assert queued.status_code == 302 and robots.to("/wecom") == []
    assert outbox(event="test")[0].state == "pending"
    queued.close()
    assert len(robots.to("/wecom")) == 1
    page = text_of(client.get("/admin/notifications"))
    assert "最近一次测试" in page and "已发送" in page
    sent = client.post("/admin/notifications/email/test", data={"recipient": "ops@xxc.example"}, follow_redirects=True)
    assert "已排入发送队列" in text_of(sent) and smtp.messages[0][0] == ["ops@xxc.example"]
    robots.down = True
    failed = client.post("/admin/notifications/wecom/test", data={}, follow_redirects=True)
    assert "没有发出" in text_of(failed) and "对方返回 HTTP 错误 503" in text_of(failed)
    assert db.session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.state == "pending")) == 0


def test_users_set_their_own_email_for_notifications(app, world, client):
    client.login("staff01")
    refused = client.post("/account/email", data={"email": "not an address"})
    assert refused.status_code == 422 and "请填写正确的邮箱地址" in text_of(refused)
    client.post("/account/email", data={"email": "kang@bureau.example"})
    db.session.refresh(world.staff)
    assert world.staff.email == "kang@bureau.example"


@pytest.mark.postgres_only
def test_the_bell_count_kept_on_the_user_is_exact_however_many_tell_and_read_at_once(app, world, client):
    """Twelve actors at once: six tell the manager of something new (two of them of the same thing), six read
    — one each a notification, the others all of them. The count on the manager's row is what is unread."""
    from tests.races import race

    manager_id = world.manager.id
    for n in range(4):  # four unread to begin with
        run(lambda n=n: notices.notify([db.session.get(type(world.manager), manager_id)], "test", f"before:{n}", "t"))
    first = db.session.scalars(select(Notification.id).where(Notification.user_id == manager_id)
                               .order_by(Notification.id)).all()

    def actor(n: int):
        manager = db.session.get(type(world.manager), manager_id)
        if n < 6:
            notices.notify([manager, world.admin], "test", f"new:{min(n, 4)}", "t")  # new:4 twice
        elif n < 10:
            notices.mark_read(manager_id, first[n - 6])
        else:
            notices.mark_read(manager_id)

    assert race(app, 12, actor) == ["ok"] * 12
    db.session.expire_all()
    unread = db.session.scalar(select(func.count(Notification.id)).where(Notification.user_id == manager_id,
                                                                       Notification.read_at.is_(None)))
    assert db.session.get(type(world.manager), manager_id).unread_notifications == unread
    assert db.session.get(type(world.admin), world.admin.id).unread_notifications == 5
    assert run(notices.verify) == []
    client.login("manager")
    page = client.get("/manage/today").get_data(as_text=True)
    assert (f"data-unread>{unread}<" in page) if unread else ("data-unread" not in page)


def test_the_bell_count_is_checked_by_verify(app, world):
    place(world.staff, world.point, (world.eggs, 1))
    assert run(notices.verify) == []
    db.session.execute(update(type(world.manager)).where(type(world.manager).id == world.manager.id)
                       .values(unread_notifications=7))
    db.session.commit()
    assert run(notices.verify) == [f"user {world.manager.id}: the bell says 7 unread, there are 1"]

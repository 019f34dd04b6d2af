"""Calls out of the shop cannot reach inside: only allowed hosts, checked addresses, no redirects, a total deadline,
verified TLS, fixed reasons instead of what the other side said — and channel secrets sealed at rest."""
from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from shop import outbound
from shop.extensions import db
from shop.notifications import sender
from shop.notifications import services as notices
from shop.notifications.models import ChannelSetting, OutboxMessage
from shop.unit_of_work import run
from tests.conftest import text_of

LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)


class Remote:
    """A web server that answers as told: `mode` is "ok", "redirect", "slow", "errcode" or "big"."""

    def __init__(self):
        self.hits: list[str] = []
        self.mode = "ok"
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                remote.hits.append(self.path)
                if remote.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "/inside")
                    self.end_headers()
                    return
                if remote.mode == "slow":  # headers at once, then the body a byte at a time
                    self.send_response(200)
                    self.send_header("Content-Length", "200")
                    self.end_headers()
                    for _ in range(200):
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.1)
                    return
                body = {"ok": {"errcode": 0}, "errcode": {"errcode": 40001, "errmsg": "redis_version:7.0.15 internal"},
                        "big": {"errcode": 0, "pad": "x" * 100_000}}[remote.mode]
                answer = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def remote():
    server = Remote()
    yield server
    server.server.shutdown()


def _allow_local(app, hosts=("127.0.0.1",), networks=LOCAL):
    app.config.update(SHOP_OUTBOUND_HOSTS=hosts, SHOP_OUTBOUND_ALLOW_NETWORKS=networks)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://[::1]:5432/", "http://0x7f000001/", "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/", "https://evil.example/robot", "http://qyapi.weixin.qq.com@127.0.0.1/",
    "gopher://qyapi.weixin.qq.com/", "https://qyapi.weixin.qq.com.evil.example/",
])
def test_a_robot_address_outside_the_allowed_hosts_is_refused_when_saved(app, client, world, url):
    client.login("admin")
    response = client.post("/admin/notifications/wecom", data={"wecom-enabled": "y", "wecom-webhook_url": url})
    assert response.status_code == 422
    assert db.session.get(ChannelSetting, "wecom") is None


def test_the_official_robot_hosts_are_allowed_by_default(app, client, world):
    client.login("admin")
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"
    assert client.post("/admin/notifications/wecom", data={"wecom-enabled": "y", "wecom-webhook_url": url}
                       ).status_code == 302
    assert notices.settings_for("wecom")["webhook_url"] == url


def test_an_allowed_name_that_resolves_inside_is_never_connected_to(app, world, remote):
    """`localhost` allowed by name, but it resolves to loopback and no network was allowed: refused before any
    connection, with a fixed reason."""
    app.config.update(SHOP_OUTBOUND_HOSTS=("localhost",), SHOP_OUTBOUND_ALLOW_NETWORKS=())
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.post_json(f"http://localhost:{remote.port}/robot", {"msgtype": "text"})
    assert refused.value.reason == "private_address" and remote.hits == []
    app.config["SHOP_OUTBOUND_ALLOW_NETWORKS"] = (ipaddress.ip_network("169.254.0.0/16"),) + LOCAL
    assert not outbound.address_allowed("169.254.169.254")  # the metadata service, even when "allowed"
    assert not outbound.address_allowed("::ffff:169.254.169.254")
    assert outbound.address_allowed("::ffff:127.0.0.1")


def test_a_redirect_is_not_followed(app, world, remote):
    _allow_local(app)
    remote.mode = "redirect"
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.post_json(f"http://127.0.0.1:{remote.port}/robot", {"msgtype": "text"})
    assert str(refused.value) == "redirect 307" and remote.hits == ["/robot"]


def test_a_slow_endpoint_is_cut_off_at_the_deadline(app, world, remote):
    _allow_local(app)
    app.config["SHOP_OUTBOUND_TIMEOUT"] = 1
    remote.mode = "slow"
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.post_json(f"http://127.0.0.1:{remote.port}/robot", {"msgtype": "text"})
    assert refused.value.reason == "timeout" and time.monotonic() - started < 3


def test_an_endless_answer_is_cut_off(app, world, remote):
    _allow_local(app)
    remote.mode = "big"
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.post_json(f"http://127.0.0.1:{remote.port}/robot", {"msgtype": "text"})
    assert refused.value.reason == "too_large"


def test_what_the_other_side_says_is_never_shown_only_a_fixed_reason(app, client, world, remote):
    _allow_local(app)
    remote.mode = "errcode"
    run(lambda: notices.save_channel("wecom", enabled=True,
                                     settings={"webhook_url": f"http://127.0.0.1:{remote.port}/robot"}))
    client.login("admin")
    page = client.post("/admin/notifications/wecom/test", data={}, follow_redirects=True)
    shown = text_of(page)
    assert "机器人返回错误码 40001" in shown and "redis_version" not in page.get_data(as_text=True)
    failed = db.session.scalars(select(OutboxMessage)).one()
    assert failed.state == "failed" and failed.last_error == "robot_error 40001"


def test_no_transaction_is_open_while_a_message_goes_out(app, world, remote, monkeypatch):
    _allow_local(app)
    run(lambda: notices.save_channel("wecom", enabled=True,
                                     settings={"webhook_url": f"http://127.0.0.1:{remote.port}/robot"}))
    run(lambda: notices.queue_test("wecom", "group", "t", "b"))
    seen = []
    real = outbound.post_json

    def watching(url, payload, **kwargs):
        seen.append(db.session().in_transaction())
        return real(url, payload, **kwargs)

    monkeypatch.setattr(outbound, "post_json", watching)
    assert sender.send_due()["sent"] == 1
    assert seen == [False]


# --- SMTP -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["smtp.example.cn\r\nRCPT TO:<x@evil>", "127.0.0.1:6379", "", "smtp .example.cn",
                                  "internal.example.cn"])
def test_an_smtp_host_that_is_not_a_plain_allowed_host_is_refused(app, client, world, host):
    app.config["SHOP_OUTBOUND_HOSTS"] = ("smtp.example.cn",)
    client.login("admin")
    response = client.post("/admin/notifications/email", data={
        "email-enabled": "y", "email-host": host, "email-port": "465", "email-security": "ssl",
        "email-sender": "shop@xxc.example"})
    assert response.status_code == 422 and db.session.get(ChannelSetting, "email") is None


def test_an_smtp_login_needs_tls(app, client, world):
    app.config["SHOP_OUTBOUND_HOSTS"] = ("smtp.example.cn",)
    client.login("admin")
    response = client.post("/admin/notifications/email", data={
        "email-enabled": "y", "email-host": "smtp.example.cn", "email-port": "25", "email-security": "none",
        "email-username": "shop", "email-password": "mail-password", "email-sender": "shop@xxc.example"})
    assert response.status_code == 422 and "明文" in text_of(response)


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "relay.pem", tmp_path / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_starttls_verifies_the_relay_and_a_self_signed_one_needs_its_ca_named(app, world, tmp_path):
    import ssl

    from aiosmtpd.controller import Controller

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    received = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append(envelope.rcpt_tos)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        _allow_local(app)
        run(lambda: notices.save_channel("email", enabled=True, settings={
            "host": "127.0.0.1", "port": port, "security": "starttls", "sender": "shop@xxc.example"}))
        run(lambda: notices.queue_test("email", "ops@xxc.example", "t", "b"))
        assert sender.send_due() == {"sent": 0, "retry": 1, "failed": 0}
        assert db.session.scalars(select(OutboxMessage)).one().last_error == "tls" and received == []
        app.config["SHOP_SMTP_CA_FILE"] = str(cert_file)
        run(lambda: notices.queue_test("email", "ops@xxc.example", "t", "b"))
        assert sender.send_due()["sent"] == 1 and received == [["ops@xxc.example"]]
    finally:
        controller.stop()


# --- secrets at rest ------------------------------------------------------------------------------------------

def test_channel_secrets_are_sealed_at_rest_and_rotated_by_a_command(app, client, world):
    from cryptography.fernet import Fernet

    from shop import vault

    client.login("admin")
    client.post("/admin/notifications/dingtalk", data={
        "dingtalk-enabled": "y", "dingtalk-webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t",
        "dingtalk-secret": "SEC-very-secret"})
    stored = db.session.get(ChannelSetting, "dingtalk").settings["secret"]
    assert stored.startswith("sealed:") and "SEC-very-secret" not in json.dumps(
        db.session.get(ChannelSetting, "dingtalk").settings)
    assert vault.unseal(stored) == "SEC-very-secret"
    # saving again with the secret left blank keeps it
    client.post("/admin/notifications/dingtalk", data={
        "dingtalk-enabled": "y", "dingtalk-webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t2"})
    assert vault.unseal(db.session.get(ChannelSetting, "dingtalk").settings["secret"]) == "SEC-very-secret"

    old = app.config["SHOP_SECRETS_KEY"]
    new_key = Fernet.generate_key().decode()
    app.config["SHOP_SECRETS_KEY"] = (new_key, *old)
    result = app.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert result.exit_code == 0 and "sealed 1" in result.output
    app.config["SHOP_SECRETS_KEY"] = (new_key,)  # the old key dropped: the secret still opens
    db.session.expire_all()
    assert vault.unseal(db.session.get(ChannelSetting, "dingtalk").settings["secret"]) == "SEC-very-secret"


def test_a_secret_stored_in_plain_text_before_sealing_is_flagged_and_sealed_by_rotate(app, client, world):
    from shop import vault

    db.session.add(ChannelSetting(kind="email", enabled=True, settings={
        "host": "smtp.example.cn", "port": 465, "security": "ssl", "username": "shop", "password": "old-plain"}))
    db.session.commit()
    client.login("admin")
    assert "仍以明文保存" in text_of(client.get("/admin/notifications"))
    assert app.test_cli_runner().invoke(args=["secrets", "rotate"]).exit_code == 0
    db.session.expire_all()
    password = db.session.get(ChannelSetting, "email").settings["password"]
    assert vault.is_sealed(password) and vault.unseal(password) == "old-plain"
    assert "仍以明文保存" not in text_of(client.get("/admin/notifications"))


def test_without_a_sealing_key_a_password_is_refused_not_stored_in_plain(app, client, world):
    app.config["SHOP_SECRETS_KEY"] = ()
    client.login("admin")
    response = client.post("/admin/notifications/dingtalk", data={
        "dingtalk-enabled": "y", "dingtalk-webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t",
        "dingtalk-secret": "SEC-very-secret"})
    assert response.status_code == 422 and "SHOP_SECRETS_KEY" in text_of(response)
    assert db.session.get(ChannelSetting, "dingtalk") is None

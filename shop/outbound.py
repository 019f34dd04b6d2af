"""The one way the shop calls out: the 企业微信 / 钉钉 robots' webhooks over HTTP(S), and the mail relay over SMTP.

Every call:

* goes only to a host named in `SHOP_OUTBOUND_HOSTS` (default: the two robots' official hosts; add the mail
  relay), compared by name before anything is looked up — so no `127.0.0.1:6379`, `[::1]` or `0x7f000001`;
* is made to an address looked up once and checked: nothing loopback, private, link-local (the cloud metadata
  service at 169.254.169.254 included), multicast or reserved, unless it lies in a network the operator named
  in `SHOP_OUTBOUND_ALLOW_NETWORKS` (an intranet relay; never link-local); the connection goes to that very
  address, so a second lookup cannot point elsewhere (DNS rebinding);
* follows no redirect, and has a total deadline — look-up, connect, TLS, request and answer together: a watchdog
  shuts the socket when it passes, however slowly the other side drips;
* verifies TLS against the system's certificates (for SMTP, `SHOP_SMTP_CA_FILE` may name the CA of a
  self-signed internal relay instead);
* fails with `OutboundError(reason)`, where `reason` is one of a few fixed codes (`REASONS`) — never the other
  side's words, which go to the log only.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app

log = logging.getLogger(__name__)

DEFAULT_HOSTS = ("qyapi.weixin.qq.com", "oapi.dingtalk.com")
DEADLINE = 5             # seconds for a whole robot call (SHOP_OUTBOUND_TIMEOUT); an email gets three times that
MAX_ANSWER = 64 * 1024    # a robot answers a few dozen bytes
METADATA = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"),
            ipaddress.ip_network("fd00:ec2::254/128"))
REASONS = ("bad_url", "host_not_allowed", "private_address", "dns", "timeout", "connection", "tls", "redirect",
           "http_status", "bad_answer", "robot_error", "too_large", "smtp_auth", "smtp_refused", "smtp_error")


class OutboundError(Exception):
    """A call out failed or was refused: `reason` is one of REASONS; `code` an optional number (an HTTP status,
    a robot's errcode) — both safe to show; anything else the other side said goes to the log only."""

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason if code is None else f"{reason} {code}")
        self.reason, self.code = reason, code

    def __str__(self) -> str:
        return self.reason if self.code is None else f"{self.reason} {self.code}"


# --- which hosts and addresses ---------------------------------------------------------------------------

def allowed_hosts() -> tuple[str, ...]:
    return current_app.config.get("SHOP_OUTBOUND_HOSTS") or DEFAULT_HOSTS


def host_allowed(host: str | None) -> bool:
    return bool(host) and host.lower().rstrip(".") in {h.lower() for h in allowed_hosts()}


def _allowed_networks() -> tuple:
    return current_app.config.get("SHOP_OUTBOUND_ALLOW_NETWORKS") or ()


def address_allowed(address: str) -> bool:
    """A looked-up address the shop may connect to: a public one, or one in a network the operator allowed —
    never link-local (the cloud metadata service lives there)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in METADATA if network.version == ip.version):
        return False
    if any(ip in network for network in _allowed_networks() if network.version == ip.version):
        return True
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query


def check_url(url: str) -> Target:
    """A robot's webhook address the shop may call: http(s), no user or password in it, an allowed host."""
    try:
        parts = urllib.parse.urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        raise OutboundError("bad_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise OutboundError("bad_url")
    if any(ch in url for ch in "\r\n\t ") or not parts.hostname.isascii():
        raise OutboundError("bad_url")
    if not host_allowed(parts.hostname):
        raise OutboundError("host_not_allowed")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80), path)


def check_host(host: str | None) -> str:
    """A mail relay's host name as typed: a plain host name or address, and an allowed one."""
    host = (host or "").strip().lower().rstrip(".")
    if not host or len(host) > 253 or not all(ch.isascii() and (ch.isalnum() or ch in ".-:") for ch in host):
        raise OutboundError("bad_url")
    if not host_allowed(host):
        raise OutboundError("host_not_allowed")
    return host


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    """The host's addresses, looked up within the deadline; refused if any is one the shop may not reach."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        found = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM).result(
            timeout=max(0.05, deadline - time.monotonic()))
    except FutureTimeout:
        raise OutboundError("timeout") from None
    except OSError:
        raise OutboundError("dns") from None
    finally:
        pool.shutdown(wait=False)
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not addresses:
        raise OutboundError("dns")
    if not all(address_allowed(address) for address in addresses):
        log.warning("outbound call to %s refused: it resolves to %s", host, ", ".join(addresses))
        raise OutboundError("private_address")
    return addresses


def _left(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise OutboundError("timeout")
    return remaining


@contextmanager
def _watchdog(deadline: float, sockets: list):
    """Shut every socket in `sockets` when the deadline passes, so no read can outlast it."""
    fired = threading.Event()

    def fire():
        fired.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def _connect(addresses: list[str], port: int, deadline: float) -> socket.socket:
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=_left(deadline))
        except OSError:
            continue
    if time.monotonic() >= deadline:
        raise OutboundError("timeout")
    raise OutboundError("connection")


# --- the robots' webhooks ------------------------------------------------------------------------------------

def post_json(url: str, payload: dict) -> dict:
    """POST `payload` as JSON to an allowed webhook and return its JSON answer (an object), all within
    SHOP_OUTBOUND_TIMEOUT seconds."""
    target = check_url(url)
    deadline = time.monotonic() + current_app.config.get("SHOP_OUTBOUND_TIMEOUT", DEADLINE)
    addresses = _resolve(target.host, target.port, deadline)
    sockets: list = []
    with _watchdog(deadline, sockets) as fired:
        try:
            answer = _exchange(target, addresses, json.dumps(payload, ensure_ascii=False).encode(), deadline, sockets)
        except OutboundError:
            raise
        except ssl.SSLError as exc:
            log.warning("outbound TLS to %s failed: %s", target.host, exc)
            raise OutboundError("timeout" if fired.is_set() else "tls") from None
        except (OSError, http.client.HTTPException) as exc:
            log.warning("outbound call to %s failed: %s", target.host, exc)
            raise OutboundError("timeout" if fired.is_set() else "connection") from None
        if fired.is_set():  # the answer was cut short by the deadline
            raise OutboundError("timeout")
    if len(answer) > MAX_ANSWER:
        raise OutboundError("too_large")
    try:
        parsed = json.loads(answer)
    except ValueError:
        raise OutboundError("bad_answer") from None
    if not isinstance(parsed, dict):
        raise OutboundError("bad_answer")
    return parsed


def _exchange(target: Target, addresses: list[str], body: bytes, deadline: float, sockets: list) -> bytes:
    sock = _connect(addresses, target.port, deadline)
    sockets.append(sock)
    if target.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        sockets.append(sock)
    connection = http.client.HTTPConnection(target.host, target.port, timeout=_left(deadline))
    connection.sock = sock  # the address checked above, never looked up again
    try:
        host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        connection.request("POST", target.path, body=body, headers={
            "Host": host_header, "Content-Type": "application/json; charset=utf-8", "User-Agent": "xfbf-shop"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise OutboundError("redirect", response.status)
        if response.status != 200:
            raise OutboundError("http_status", response.status)
        return response.read(MAX_ANSWER + 1)
    finally:
        connection.close()


# --- the mail relay ------------------------------------------------------------------------------------------

def tls_context() -> ssl.SSLContext:
    """Certificates verified: the system's, or the CA named by SHOP_SMTP_CA_FILE (a self-signed internal relay)."""
    ca_file = current_app.config.get("SHOP_SMTP_CA_FILE")
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


class _PinnedSMTP(smtplib.SMTP):
    """smtplib's client, connecting to the address checked beforehand and naming the host for TLS."""

    def __init__(self, host: str, addresses: list[str], deadline: float, sockets: list, **kwargs):
        self._pinned, self._deadline, self._sockets = addresses, deadline, sockets
        super().__init__(timeout=_left(deadline), **kwargs)
        self._host = host

    def _get_socket(self, host, port, timeout):
        sock = _connect(self._pinned, port, self._deadline)
        self._sockets.append(sock)
        return sock


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, host: str, addresses: list[str], deadline: float, sockets: list, **kwargs):
        self._pinned, self._deadline, self._sockets, self._name = addresses, deadline, sockets, host
        super().__init__(timeout=_left(deadline), **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = _connect(self._pinned, port, self._deadline)
        self._sockets.append(sock)
        wrapped = self.context.wrap_socket(sock, server_hostname=self._name)
        self._sockets.append(wrapped)
        return wrapped


def send_mail(settings: dict, message, password: str | None) -> None:
    """Send one email through the configured relay (an allowed host), TLS verified, within the deadline."""
    host = check_host(settings.get("host"))
    port = int(settings.get("port") or 25)
    security = settings.get("security") or "none"
    deadline = time.monotonic() + 3 * current_app.config.get("SHOP_OUTBOUND_TIMEOUT", DEADLINE)
    addresses = _resolve(host, port, deadline)
    sockets: list = []
    with _watchdog(deadline, sockets) as fired:
        try:
            if security == "ssl":
                client = _PinnedSMTPSSL(host, addresses, deadline, sockets, context=tls_context())
            else:
                client = _PinnedSMTP(host, addresses, deadline, sockets)
            client.connect(host, port)
            with client:
                if security == "starttls":
                    client.starttls(context=tls_context())
                    sockets.append(client.sock)
                if settings.get("username"):
                    client.login(settings["username"], password or "")
                client.send_message(message)
        except OutboundError:
            raise
        except smtplib.SMTPAuthenticationError:
            raise OutboundError("smtp_auth") from None
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError):
            raise OutboundError("smtp_refused") from None
        except ssl.SSLError as exc:
            log.warning("SMTP TLS with %s failed: %s", host, exc)
            raise OutboundError("timeout" if fired.is_set() else "tls") from None
        except smtplib.SMTPServerDisconnected:
            raise OutboundError("timeout" if fired.is_set() else "connection") from None
        except smtplib.SMTPException as exc:
            log.warning("SMTP with %s failed: %s", host, exc)
            raise OutboundError("smtp_error") from None
        except OSError as exc:
            log.warning("SMTP with %s failed: %s", host, exc)
            raise OutboundError("timeout" if fired.is_set() or isinstance(exc, TimeoutError) else "connection") from None

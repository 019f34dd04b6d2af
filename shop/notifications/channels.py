"""The outbound channels, each in its documented form:

- email over SMTP (smtplib; STARTTLS or SSL, optional login);
- a 企业微信 group robot: POST {"msgtype": "markdown", "markdown": {"content": …}} to its webhook URL
  (https://developer.work.weixin.qq.com/document/path/91770), answered {"errcode": 0};
- a 钉钉 group robot: POST {"msgtype": "markdown", "markdown": {"title": …, "text": …}} to its webhook URL,
  signed when a secret is set — timestamp and sign=Base64(HMAC-SHA256(secret, "timestamp\\nsecret")) added to
  the URL (https://open.dingtalk.com/document/robots/customize-robot-security-settings), answered {"errcode": 0}.

Each send either returns or raises ChannelError with a reason to keep; the outbox decides about retrying.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import time
import urllib.parse
from email.message import EmailMessage

import requests

TIMEOUT = 10  # seconds; a channel slower than this is down for now and tried again later


class ChannelError(Exception):
    pass


def send(kind: str, settings: dict, recipient: str, subject: str, body: str) -> None:
    try:
        if kind == "email":
            _email(settings, recipient, subject, body)
        elif kind == "wecom":
            _robot(settings["webhook_url"], {"msgtype": "markdown", "markdown": {"content": f"**{subject}**\n{body}"}})
        elif kind == "dingtalk":
            _robot(_dingtalk_url(settings), {"msgtype": "markdown",
                                             "markdown": {"title": subject, "text": f"#### {subject}\n{body}"}})
        else:
            raise ChannelError(f"unknown channel {kind}")
    except ChannelError:
        raise
    except (OSError, smtplib.SMTPException, requests.RequestException, KeyError, ValueError) as exc:
        raise ChannelError(f"{type(exc).__name__}: {exc}") from exc


def _email(settings: dict, recipient: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = settings.get("sender") or "shop@localhost"
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    host, port = settings["host"], int(settings.get("port") or 25)
    security = settings.get("security") or "none"
    client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT) if security == "ssl" else smtplib.SMTP(host, port, timeout=TIMEOUT)
    with client:
        if security == "starttls":
            client.starttls()
        if settings.get("username"):
            client.login(settings["username"], settings.get("password") or "")
        client.send_message(message)


def _dingtalk_url(settings: dict) -> str:
    url, secret = settings["webhook_url"], settings.get("secret")
    if not secret:
        return url
    timestamp = str(round(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def _robot(url: str, payload: dict) -> None:
    response = requests.post(url, json=payload, timeout=TIMEOUT)
    if response.status_code != 200:
        raise ChannelError(f"HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError as exc:
        raise ChannelError("not a JSON answer") from exc
    if answer.get("errcode", 0) != 0:
        raise ChannelError(f"errcode {answer.get('errcode')}: {answer.get('errmsg')}")

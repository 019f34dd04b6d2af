"""The outbound channels, each in its documented form, each sent through the shop's one outbound client
(`shop.outbound`: allowed hosts only, checked addresses, no redirects, a total deadline, verified TLS):

- email over SMTP (STARTTLS or SSL, optional login);
- a 企业微信 group robot: POST {"msgtype": "markdown", "markdown": {"content": …}} to its webhook URL
  (https://developer.work.weixin.qq.com/document/path/91770), answered {"errcode": 0};
- a 钉钉 group robot: POST {"msgtype": "markdown", "markdown": {"title": …, "text": …}} to its webhook URL,
  signed when a secret is set — timestamp and sign=Base64(HMAC-SHA256(secret, "timestamp\\nsecret")) added to
  the URL (https://open.dingtalk.com/document/robots/customize-robot-security-settings), answered {"errcode": 0}.

Each send either returns or raises ChannelError whose text is a fixed reason code (`REASONS`, perhaps with a
number: an HTTP status, a robot's errcode) — never what the other side said. The outbox decides about retrying.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from email.message import EmailMessage

from .. import outbound, vault

REASONS = outbound.REASONS + ("secret", "bad_settings", "channel_disabled")


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
            raise ChannelError("bad_settings")
    except outbound.OutboundError as err:
        raise ChannelError(str(err)) from None
    except vault.CannotUnseal:
        raise ChannelError("secret") from None
    except (KeyError, ValueError, TypeError):
        raise ChannelError("bad_settings") from None


def _email(settings: dict, recipient: str, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = settings.get("sender") or "shop@localhost"
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    outbound.send_mail(settings, message, vault.unseal(settings.get("password")))


def _dingtalk_url(settings: dict) -> str:
    url, secret = settings["webhook_url"], vault.unseal(settings.get("secret"))
    if not secret:
        return url
    timestamp = str(round(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def _robot(url: str, payload: dict) -> None:
    answer = outbound.post_json(url, payload)
    errcode = answer.get("errcode", 0)
    if errcode != 0:
        raise outbound.OutboundError("robot_error", errcode if isinstance(errcode, int) and abs(errcode) < 10**9
                                     else None)

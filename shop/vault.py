"""Secrets the shop must keep to use them later — a mail relay's password, a 钉钉 robot's signing secret — are
stored sealed (cryptography's Fernet: AES with an HMAC), under keys from the environment (SHOP_SECRETS_KEY,
comma-separated: the first seals, every one unseals). `flask --app shop secrets rotate` seals every stored
secret again under the first key, so an old key can then be dropped."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from flask_babel import gettext as _

from .errors import ValidationFailed

PREFIX = "sealed:"


class CannotUnseal(Exception):
    """A stored secret none of the configured keys opens (the key was changed without a rotation)."""


def _fernet() -> MultiFernet | None:
    keys = current_app.config.get("SHOP_SECRETS_KEY") or ()
    return MultiFernet([Fernet(key) for key in keys]) if keys else None


def is_sealed(stored: str | None) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


def seal(plain: str, field_name: str = "password") -> str:
    """A secret as it is stored. Refused (a message beside the field) when no key is configured."""
    fernet = _fernet()
    if fernet is None:
        raise ValidationFailed.on(field_name, _("服务器未设置 SHOP_SECRETS_KEY，无法安全保存密码或密钥。"))
    return PREFIX + fernet.encrypt(plain.encode()).decode()


def unseal(stored: str | None) -> str | None:
    """A stored secret in the clear, for the moment it is used. A value stored before secrets were sealed is
    returned as it is (`secrets rotate` seals it)."""
    if not stored:
        return None
    if not is_sealed(stored):
        return stored
    fernet = _fernet()
    if fernet is None:
        raise CannotUnseal()
    try:
        return fernet.decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise CannotUnseal() from None


def reseal(stored: str | None) -> str | None:
    """The same secret sealed under the first key (a plain, older value sealed for the first time)."""
    if not stored:
        return stored
    fernet = _fernet()
    if fernet is None:
        raise CannotUnseal()
    if not is_sealed(stored):
        return seal(stored)
    try:
        return PREFIX + fernet.rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise CannotUnseal() from None

"""Form pieces shared by every domain."""
from __future__ import annotations

import secrets

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Form, HiddenField, PasswordField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from . import edge
from .errors import ValidationFailed
from .formatting import AmountTooLarge, fen_to_yuan_text, parse_yuan


class YuanField(StringField):
    """Typed in yuan ("12.50"), held as integer fen. Never a float."""

    def __init__(self, label=None, validators=None, *, allow_zero: bool = False, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.allow_zero = allow_zero

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return fen_to_yuan_text(self.data) if isinstance(self.data, int) else ""

    def process_formdata(self, valuelist):
        self.data = None
        if not valuelist or not valuelist[0].strip():
            return
        try:
            self.data = parse_yuan(valuelist[0])
        except AmountTooLarge:
            raise ValueError(_l("金额过大（最多 ¥999,999,999.99）。")) from None
        except ValueError:
            raise ValueError(_l("请输入金额，例如 12.50（最多两位小数）。")) from None

    def pre_validate(self, form):
        if self.data is not None and self.data <= 0 and not (self.allow_zero and self.data == 0):
            raise ValidationError(_l("金额必须大于 0。"))


def options(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms select options."""
    return [SelectChoice(value, label) for value, label in pairs]


MONTH_CHOICES = options([("", "—")] + [(str(m), str(m)) for m in range(1, 13)])


def optional_int(value):
    """A select's value as an id, or None for "—". Anything else — a superscript, a number beyond the
    database's ids — is not a choice (WTForms shows "Invalid choice")."""
    if value in (None, "", "None"):
        return None
    return id_value(value)


def id_value(value) -> int:
    """A select's value as an id within the database's range (ValueError otherwise)."""
    try:
        return edge.parse_int(value, "id", minimum=1, maximum=edge.MAX_ID)
    except ValidationFailed as err:
        raise ValueError(err.message) from None


def whole_number(text: str | None, field_name: str, *, maximum: int = 1_000_000, blank: int | None = 0) -> int:
    """A whole number typed into a form: digits only (ASCII or full-width), at most `maximum`. Blank is
    `blank` (refused when that is None)."""
    return edge.parse_int(text, field_name, minimum=0, maximum=maximum, blank=blank)


class WholeNumberField(StringField):
    """A whole number typed by a person (ASCII or full-width digits), within [minimum, maximum]: the edge's
    one parser, instead of WTForms' int(), which takes superscripts and numbers beyond any column."""

    def __init__(self, label=None, validators=None, *, minimum: int = 0, maximum: int = 1_000_000, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)

    def process_formdata(self, valuelist):
        self.data = None
        if not valuelist or not str(valuelist[0]).strip():
            return
        try:
            self.data = edge.parse_int(valuelist[0], self.name, minimum=self.minimum, maximum=self.maximum)
        except ValidationFailed as err:
            raise ValueError(err.message) from None


class _CleanText:
    """Meta for every form of the shop: text fields go through the edge (no control characters, no
    invisible format characters, trimmed) before any validator sees them."""

    def bind_field(self, form, unbound_field, options):
        field_class = unbound_field.field_class
        if issubclass(field_class, StringField) and not issubclass(field_class, (PasswordField, YuanField,
                                                                                 WholeNumberField)):
            options["filters"] = (*unbound_field.kwargs.get("filters", ()), _clean)
        return unbound_field.bind(form=form, **options)


def _clean(value):
    try:
        return edge.clean_text(value)
    except edge.BadInput:
        raise ValueError(_l("输入包含不允许的控制字符。")) from None


class ShopForm(FlaskForm):
    """The shop's forms: FlaskForm (CSRF) with every text field cleaned at the edge."""

    class Meta(_CleanText):
        pass


class ShopSubForm(Form):
    """A repeated part of a form (a row of an intake), cleaned like the form it belongs to."""

    class Meta(_CleanText):
        pass


def one_time_token() -> str:
    return secrets.token_urlsafe(18)


class OnceField(HiddenField):
    """A one-time token in a form that creates something: the same token submitted twice (a double tap, a
    reload) makes one record (viewutils.submit_once)."""

    def __init__(self, **kwargs):
        super().__init__(default=one_time_token, **kwargs)


class ActionForm(ShopForm):
    """A button that changes something: CSRF only."""

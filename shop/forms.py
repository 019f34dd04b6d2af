"""Form pieces shared by every domain."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

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
    if value in (None, "", "None"):
        return None
    return int(value)


def whole_number(text: str | None, field_name: str, *, maximum: int = 1_000_000, blank: int | None = 0) -> int:
    """A whole number typed into a form: digits only (ASCII or full-width), at most `maximum`. Blank is
    `blank` (refused when that is None)."""
    text = (text or "").strip().translate(_FULL_WIDTH)
    if not text and blank is not None:
        return blank
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)) or int(text) > maximum:
        raise ValidationFailed.on(field_name, _l("数量应为 0–%(m)d 之间的整数。", m=maximum))
    return int(text)


_FULL_WIDTH = {ord("０") + i: ord("0") + i for i in range(10)}


class ActionForm(FlaskForm):
    """A button that changes something: CSRF only."""

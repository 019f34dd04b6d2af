from flask_babel import lazy_gettext as _l
from wtforms import DateField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp

from ..forms import ShopForm


class PinForm(ShopForm):
    pin = StringField(_l("6 位密码"), validators=[DataRequired(message=_l("请输入卡上的 6 位密码。")),
                                                 Regexp(r"^[0-9]{6}$", message=_l("密码是 6 位数字。"))])


class VisitForm(ShopForm):
    visited_on = DateField(_l("走访日期"), validators=[DataRequired(message=_l("请填写走访日期。"))])
    note = TextAreaField(_l("走访情况"), validators=[DataRequired(message=_l("请写下走访情况。")), Length(max=2000)])

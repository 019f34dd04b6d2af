from flask_babel import lazy_gettext as _l
from wtforms import DateField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..forms import ShopForm


class VisitForm(ShopForm):
    visited_on = DateField(_l("走访日期"), validators=[DataRequired(message=_l("请填写走访日期。"))])
    note = TextAreaField(_l("走访情况"), validators=[DataRequired(message=_l("请写下走访情况。")), Length(max=2000)])

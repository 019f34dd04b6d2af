from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from ..forms import OnceField, ShopForm, YuanField
from .models import MANUAL_PAYOUT_METHODS
from ..glossary import choices


class PayoutForm(ShopForm):
    once = OnceField()
    amount = YuanField(_l("结算金额（元）"), validators=[InputRequired(message=_l("请填写结算金额。"))])
    method = SelectField(_l("结算方式"), choices=[])
    reference = StringField(_l("凭证号"), validators=[DataRequired(message=_l("请填写凭证号（收据号或转账流水号）。")),
                                                   Length(max=80)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.method.choices = [c for c in choices("payout_method") if c.value in MANUAL_PAYOUT_METHODS]

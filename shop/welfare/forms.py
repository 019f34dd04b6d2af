from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ..forms import OnceField, ShopForm, YuanField, optional_int, options


class TopUpForm(ShopForm):
    once = OnceField()
    amount = YuanField(_l("转入金额（元）"), validators=[InputRequired(message=_l("请填写金额。"))])
    reference = StringField(_l("转账凭证号"), validators=[DataRequired(message=_l("请填写转账凭证号。")), Length(max=80)])


class GrantForm(ShopForm):
    once = OnceField()
    user_id = SelectField(_l("职工"), coerce=optional_int, choices=[], validate_choice=False)
    amount = YuanField(_l("金额（元）"), validators=[InputRequired(message=_l("请填写金额。"))])
    starts_on = DateField(_l("开始日期"), validators=[DataRequired(message=_l("请填写开始日期。"))])
    expires_on = DateField(_l("到期日期"), validators=[DataRequired(message=_l("请填写到期日期。"))])
    purpose = StringField(_l("用途"), validators=[DataRequired(message=_l("请填写用途。")), Length(max=60)])

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.user_id.choices = options([("", "—")] + [(u.id, f"{u.display_name}（{u.username}）") for u in members])


class GrantImportForm(ShopForm):
    once = OnceField()
    file = FileField(_l("CSV 或 XLSX 文件"), validators=[FileRequired(message=_l("请选择要上传的文件。"))])
    purpose = StringField(_l("用途（表里没写时）"), validators=[Optional(), Length(max=60)])

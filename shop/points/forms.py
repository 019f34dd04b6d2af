from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField, TimeField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ..catalog.forms import VillageField
from ..forms import OnceField, ShopForm, YuanField, optional_int, options


class PointForm(VillageField, ShopForm):
    code = StringField(_l("编号（印在收据号开头，如 XG01）"), validators=[DataRequired(), Length(max=8)])
    name = StringField(_l("名称"), validators=[DataRequired(), Length(max=80)])
    address = StringField(_l("地址"), validators=[DataRequired(), Length(max=200)])
    map_url = StringField(_l("地图链接"), validators=[Optional(), Length(max=300)])
    first_day = DateField(_l("销售季第一天"), validators=[InputRequired(message=_l("请填写日期。"))])
    last_day = DateField(_l("销售季最后一天"), validators=[InputRequired(message=_l("请填写日期。"))])
    opens_at = TimeField(_l("每天开门"), validators=[Optional()])
    closes_at = TimeField(_l("每天收摊"), validators=[Optional()])
    active = BooleanField(_l("启用"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_villages()


class GrowerChoiceMixin:
    def set_growers(self, growers):
        """`growers`: (value "h12" / "e3", label) pairs."""
        self.grower.choices = options([("", "—")] + list(growers))


class GrowerForm(GrowerChoiceMixin, ShopForm):
    grower = SelectField(_l("农户或村企"), choices=[], validators=[DataRequired(message=_l("请选择。"))])
    qr_note = StringField(_l("收款码（如：微信收款码）"), validators=[Optional(), Length(max=80)])


class OperatorForm(ShopForm):
    user_id = SelectField(_l("销售点负责人"), coerce=optional_int, choices=[])


class PermitForm(GrowerChoiceMixin, ShopForm):
    once = OnceField()
    grower = SelectField(_l("农户或村企"), choices=[], validators=[DataRequired(message=_l("请选择。"))])
    issued_by = StringField(_l("发证单位"), validators=[DataRequired(), Length(max=80)])
    valid_from = DateField(_l("有效期自"), validators=[InputRequired(message=_l("请填写日期。"))])
    valid_to = DateField(_l("有效期至"), validators=[InputRequired(message=_l("请填写日期。"))])


class ArrivalForm(GrowerChoiceMixin, ShopForm):
    once = OnceField()
    grower = SelectField(_l("农户或村企"), choices=[], validators=[DataRequired(message=_l("请选择。"))])
    product_id = SelectField(_l("商品"), coerce=optional_int, choices=[])
    quantity = StringField(_l("数量或重量（如 1250.5）"), validators=[DataRequired(), Length(max=12)])


class CloseDayForm(ShopForm):
    once = OnceField()
    day = HiddenField()
    counted = YuanField(_l("清点的现金（元）"), allow_zero=True,
                        validators=[InputRequired(message=_l("请填写清点的现金。"))])
    note = TextAreaField(_l("说明（现金与记录不符时必填）"), validators=[Optional(), Length(max=1000)])


class ImportSalesForm(ShopForm):
    file = FileField(_l("手机导出的销售文件（.json）"), validators=[FileRequired(message=_l("请选择文件。"))])


class ResolveForm(ShopForm):
    action = SelectField(_l("处理"), choices=[])
    note = StringField(_l("核对结果"), validators=[DataRequired(message=_l("请写明核对结果。")), Length(max=500)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.action.choices = options([("post", _l("入账（农户确有此货，更正库存后记入农户收入）")),
                                       ("void", _l("作废（误录，未发生）")),
                                       ("ok", _l("核对无误（已入账）"))])

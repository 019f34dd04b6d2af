from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, TextAreaField, TimeField
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ..forms import MONTH_CHOICES, optional_int, options, ShopForm, YuanField
from ..glossary import choices
from ..producers.services import village_choices
from .models import UNITS


class VillageField:
    """Which village's service point it belongs to: the villages the user runs (one: chosen for them)."""
    village_id = SelectField(_l("所属村服务点"), coerce=optional_int, choices=[], validate_choice=False)  # the rule checks

    def offer_villages(self) -> None:
        self.village_id.choices = village_choices()


class SeasonFields:
    season_start_month = SelectField(_l("销售季开始月"), coerce=optional_int, choices=MONTH_CHOICES)
    season_end_month = SelectField(_l("销售季结束月"), coerce=optional_int, choices=MONTH_CHOICES)


class ProductForm(VillageField, SeasonFields, ShopForm):
    name = StringField(_l("商品名称"), validators=[DataRequired(), Length(max=80)])
    category = SelectField(_l("品类"), choices=[])
    unit = SelectField(_l("销售单位"), choices=options((u, u) for u in UNITS))
    price = YuanField(_l("单价（元）"), validators=[InputRequired(message=_l("请填写单价。"))])
    description = TextAreaField(_l("介绍"), validators=[Optional(), Length(max=4000)])
    photo = FileField(_l("照片（JPEG、PNG 或 WebP）"))
    by_weight = BooleanField(_l("按重量称重销售（精确到 0.1 斤或 0.1 公斤，只在临时销售点出售）"))
    active = BooleanField(_l("上架销售"), default=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.category.choices = choices("category")
        self.offer_villages()
        obj = kwargs.get("obj")
        if obj is not None and not self.is_submitted():
            self.by_weight.data = bool(obj.quantity_decimals)


class PickupPointForm(VillageField, SeasonFields, ShopForm):
    name = StringField(_l("名称"), validators=[DataRequired(), Length(max=80)])
    address = StringField(_l("地址"), validators=[DataRequired(), Length(max=200)])
    open_weekdays = SelectMultipleField(_l("开放日"), choices=[], validate_choice=False,
                                        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    closes_at = TimeField(_l("每天几点关门"), validators=[Optional()])
    active = BooleanField(_l("启用"), default=True)

    def __init__(self, *args, obj=None, **kwargs):
        super().__init__(*args, obj=obj, **kwargs)
        self.offer_villages()
        self.open_weekdays.choices = options([(str(n), name) for n, name in enumerate(
            (_l("周一"), _l("周二"), _l("周三"), _l("周四"), _l("周五"), _l("周六"), _l("周日")), start=1)])
        if obj is not None and not self.is_submitted():
            self.open_weekdays.data = list(obj.open_weekdays or "")

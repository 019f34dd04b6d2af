from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..forms import id_value, OnceField, options, ShopForm, WholeNumberField, YuanField
from ..glossary import choices


class ContractForm(ShopForm):
    number = StringField(_l("合同编号"), validators=[DataRequired(), Length(max=40)])
    organization_id = SelectField(_l("采购企业"), coerce=id_value, choices=[], validate_choice=False)
    product_id = SelectField(_l("商品"), coerce=id_value, choices=[], validate_choice=False)
    unit_price = YuanField(_l("单价（元）"))
    monthly_quantity = WholeNumberField(_l("每月数量"), validators=[InputRequired(), NumberRange(min=1, max=1_000_000)])
    first_month = StringField(_l("开始月份"), validators=[DataRequired()], render_kw={"placeholder": "2022-07"})
    last_month = StringField(_l("结束月份"), validators=[DataRequired()], render_kw={"placeholder": "2025-06"})
    cap = YuanField(_l("合同总额（元）"), validators=[InputRequired(message=_l("请填写合同总额。"))])
    delivery_address = StringField(_l("送货地址"), validators=[DataRequired(), Length(max=200)])
    delivery_day = WholeNumberField(_l("每月送货日"), default=5, validators=[InputRequired(), NumberRange(min=1, max=28)])
    payment_terms_days = WholeNumberField(_l("账期（对账后天数）"), default=30,
                                      validators=[InputRequired(), NumberRange(min=0, max=365)])
    status = SelectField(_l("状态"), choices=[])
    scan = FileField(_l("签署合同扫描件（JPEG、PNG 或 WebP）"))

    def __init__(self, *args, companies=(), products=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organization_id.choices = options((o.id, o.name) for o in companies)
        self.product_id.choices = options((p.id, p.name) for p in products)
        self.status.choices = choices("contract_status")


class PriceChangeForm(ShopForm):
    from_month = StringField(_l("从哪个月起"), validators=[DataRequired()], render_kw={"placeholder": "2024-01"})
    unit_price = YuanField(_l("新单价（元）"), validators=[InputRequired(message=_l("请填写单价。"))])


class GenerateForm(ShopForm):
    month = StringField(_l("月份"), validators=[DataRequired()], render_kw={"placeholder": "2023-11"})


class BulkOrderForm(ShopForm):
    once = OnceField()
    """The quantities come as qty-<product id>, one per product offered (blank or 0: not ordered)."""


class AcceptanceForm(ShopForm):
    note = TextAreaField(_l("验收说明（短少、破损请写明）"), validators=[Optional(), Length(max=500)])


class CompanyPaymentForm(ShopForm):
    once = OnceField()
    amount = YuanField(_l("金额（元）"), validators=[InputRequired(message=_l("请填写金额。"))])
    reference = StringField(_l("转账流水号"), validators=[DataRequired(), Length(max=80)])
    paid_on = DateField(_l("到账日期"), validators=[DataRequired()])

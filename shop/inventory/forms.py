from flask_babel import lazy_gettext as _l
from wtforms import DateField, FieldList, FormField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..forms import OnceField, optional_int, options, ShopForm, ShopSubForm, WholeNumberField
from ..glossary import choices


class IntakeRowForm(ShopSubForm):
    """One product of a visit; empty rows are ignored."""

    product_id = SelectField(_l("商品"), coerce=optional_int, choices=[], validate_choice=False)
    quantity = WholeNumberField(_l("数量"), validators=[Optional(), NumberRange(min=1, max=1_000_000)])
    best_before = DateField(_l("保质期至"), validators=[Optional()])


class IntakeForm(ShopForm):
    once = OnceField()
    rows = FieldList(FormField(IntakeRowForm), min_entries=5, max_entries=20)
    note = TextAreaField(_l("备注"), validators=[Optional(), Length(max=500)])

    def __init__(self, *args, products=(), **kwargs):
        super().__init__(*args, **kwargs)
        product_choices = options([("", "—")] + [(p.id, f"{p.name}（{p.unit}）") for p in products])
        for row in self.rows:
            row.product_id.choices = product_choices


class AdjustForm(ShopForm):
    once = OnceField()
    reason = SelectField(_l("原因"), choices=[])
    quantity = StringField(_l("数量"), validators=[DataRequired(message=_l("请填写数量。")), Length(max=14)])
    note = StringField(_l("说明"), validators=[Optional(), Length(max=200)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reason.choices = choices("adjustment_reason")


class ThresholdForm(ShopForm):
    low_stock_threshold = WholeNumberField(_l("低库存提醒"), validators=[Optional(), NumberRange(min=0, max=1_000_000)])

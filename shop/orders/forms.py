from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..edge import MAX_ID
from ..forms import OnceField, optional_int, options, ShopForm, WholeNumberField, YuanField


class AddToCartForm(ShopForm):
    product_id = WholeNumberField(validators=[DataRequired()], minimum=1, maximum=MAX_ID)
    quantity = WholeNumberField(_l("数量"), default=1, validators=[DataRequired(message=_l("请填写数量。")),
                                                              NumberRange(min=1, max=1_000_000)])


class CheckoutForm(ShopForm):
    once = OnceField()
    handover = RadioField(_l("交付方式"), choices=[], default="pickup")
    pickup_point_id = SelectField(_l("自提点"), coerce=optional_int, choices=[], validate_choice=False)
    payment_method = RadioField(_l("支付方式"), choices=[])
    welfare = YuanField(_l("用福利支付（元）"), allow_zero=True, validators=[Optional()])

    def __init__(self, *args, parts=(), stripe_enabled=False, organization=None, **kwargs):
        """`parts`: (village id, village name, its open pickup points) for each service point whose goods the
        cart holds — the first chooses in `pickup_point_id`, each further one in `pickup_point_<village id>`
        (`checkout_form` adds those fields)."""
        super().__init__(*args, **kwargs)
        self.parts = list(parts)
        self.handover.choices = options([("pickup", _l("到自提点领取"))] +
                                        ([("workplace", _l("送到单位：%(o)s", o=organization))] if organization else []))
        for field, (_village_id, _name, points) in zip(self.point_fields(), self.parts):
            field.choices = options([("", "—")] + [(p.id, p.name) for p in points])
            if field.data is None and points:
                field.data = points[0].id  # the first open point (usually the service point itself)
        methods = [("offline", _l("到服务点付款（现金或转账）"))]
        if stripe_enabled:
            methods.insert(0, ("stripe", _l("在线支付（银行卡、支付宝、微信）")))
        self.payment_method.choices = options(methods)
        if not self.payment_method.data:
            self.payment_method.data = methods[0][0]

    def point_fields(self) -> list:
        """The pickup point chosen for each service point of the cart, in the order of `parts`."""
        return [self.pickup_point_id] + [self[f"pickup_point_{village_id}"] for village_id, _n, _p in self.parts[1:]]

    def chosen_points(self) -> dict[int, int | None]:
        """{village id: the pickup point chosen for its goods}."""
        return {village_id: field.data for (village_id, _n, _p), field in zip(self.parts, self.point_fields())}


def checkout_form(parts, **kwargs) -> CheckoutForm:
    """The checkout form for a cart of these service points: one pickup point to choose for each."""
    if len(parts) <= 1:
        return CheckoutForm(parts=parts, **kwargs)
    fields = {f"pickup_point_{village_id}": SelectField(_l("自提点"), coerce=optional_int, choices=[],
                                                         validate_choice=False)
              for village_id, _name, _points in parts[1:]}
    return type("SplitCheckoutForm", (CheckoutForm,), fields)(parts=parts, **kwargs)


class OfflinePaymentForm(ShopForm):
    reference = StringField(_l("收据号"), validators=[DataRequired(message=_l("请填写收据号。")), Length(max=80)])


class HandOverForm(ShopForm):
    handed_over_to = StringField(_l("领取人"), validators=[DataRequired(message=_l("请填写领取人。")), Length(max=80)])


class RefundForm(ShopForm):
    once = OnceField()
    restock = BooleanField(_l("退回的商品可以再卖（重新入库）"))
    reason = TextAreaField(_l("原因"), validators=[Optional(), Length(max=500)])

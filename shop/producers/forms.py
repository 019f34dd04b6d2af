from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from ..forms import id_value, options, ShopForm, WholeNumberField
from ..glossary import choices


class HouseholdForm(ShopForm):
    code = StringField(_l("户编号"), validators=[DataRequired(), Length(max=40)])
    head_name = StringField(_l("户主姓名"), validators=[DataRequired(), Length(max=40)])
    members = WholeNumberField(_l("家庭人口"), validators=[DataRequired(), NumberRange(min=1, max=50)])
    status = SelectField(_l("属性"), choices=[])
    risk = SelectField(_l("风险状态（监测户）"), choices=[])
    phone = StringField(_l("电话"), validators=[Optional(), Length(max=32)])
    village_id = SelectField(_l("村"), coerce=id_value, choices=[])
    note = TextAreaField(_l("备注"), validators=[Optional(), Length(max=2000)])

    def __init__(self, *args, villages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.status.choices = choices("household_status")
        self.risk.choices = options([("", _l("不适用")), ("open", _l("风险未消除")), ("eliminated", _l("风险已消除"))])
        self.village_id.choices = options([(v.id, v.name) for v in villages])


class EnterpriseForm(ShopForm):
    name = StringField(_l("企业名称"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("类型"), choices=[])
    village_id = SelectField(_l("村"), coerce=id_value, choices=[])
    contact_name = StringField(_l("联系人"), validators=[Optional(), Length(max=40)])
    phone = StringField(_l("电话"), validators=[Optional(), Length(max=32)])

    def __init__(self, *args, villages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("enterprise_kind")
        self.village_id.choices = options([(v.id, v.name) for v in villages])


class VillageForm(ShopForm):
    name = StringField(_l("村名"), validators=[DataRequired(), Length(max=80)])
    town = StringField(_l("乡镇"), validators=[Optional(), Length(max=80)])


class ImportUploadForm(ShopForm):
    file = FileField(_l("CSV 或 XLSX 文件"), validators=[FileRequired(message=_l("请选择要上传的文件。"))])
    village_id = SelectField(_l("村"), coerce=id_value, choices=[], validate_choice=False)

    def __init__(self, *args, villages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.village_id.choices = options([(v.id, v.name) for v in villages])


class ImportConfirmForm(ShopForm):
    token = HiddenField(validators=[DataRequired()])
    village_id = HiddenField()


class PairingForm(ShopForm):
    user_id = SelectField(_l("帮扶责任人"), coerce=id_value, choices=[])
    household_code = StringField(_l("户编号"), validators=[DataRequired(), Length(max=40)])

    def __init__(self, *args, staff=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.user_id.choices = options([(u.id, f"{u.display_name}（{u.username}）") for u in staff])


class PinForm(ShopForm):
    pin = StringField(_l("6 位密码"), validators=[DataRequired(message=_l("请输入卡上的 6 位密码。")),
                                                 Regexp(r"^[0-9]{6}$", message=_l("密码是 6 位数字。"))])

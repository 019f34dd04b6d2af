from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from ..forms import optional_int, options, ShopForm
from ..glossary import choices


class LoginForm(ShopForm):
    username = StringField(_l("用户名"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(max=200)])


class PasswordChangeForm(ShopForm):
    current_password = PasswordField(_l("当前密码"), validators=[DataRequired()])
    new_password = PasswordField(_l("新密码"), validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(_l("再次输入新密码"), validators=[DataRequired(), EqualTo("new_password", message=_l("两次输入的密码不一致。"))])


class ApiTokenForm(ShopForm):
    name = StringField(_l("令牌名称"), validators=[DataRequired(), Length(max=80)])


class EmailForm(ShopForm):
    email = StringField(_l("接收通知的邮箱（可不填）"), validators=[
        Optional(), Length(max=120), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("请填写正确的邮箱地址。"))])


class UserForm(ShopForm):
    username = StringField(_l("用户名"), validators=[DataRequired(), Length(max=64),
                                                   Regexp(r"^[A-Za-z0-9_.\-]+$", message=_l("用户名只能包含字母、数字、点、下划线和连字符。"))])
    display_name = StringField(_l("姓名"), validators=[DataRequired(), Length(max=80)])
    role = SelectField(_l("角色"), choices=[])
    organization_id = SelectField(_l("所属单位"), coerce=optional_int, choices=[])
    villages = SelectMultipleField(_l("负责的村服务点（服务点管理员）"), coerce=int, choices=[],
                                   widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    phone = StringField(_l("电话"), validators=[Optional(), Length(max=32)])
    active = BooleanField(_l("启用"), default=True)
    password = PasswordField(_l("密码"), validators=[Optional(), Length(min=10, max=200)])

    def __init__(self, *args, organizations=(), villages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = choices("role")
        self.organization_id.choices = options([("", "—")] + [(o.id, o.name) for o in organizations])
        self.villages.choices = list(villages)


class OrganizationForm(ShopForm):
    name = StringField(_l("单位名称"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(_l("类型"), choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("organization_kind")


class UnitForm(ShopForm):
    """A unit's name and the villages it supports (结对帮扶村)."""

    name = StringField(_l("单位名称"), validators=[DataRequired(), Length(max=120)])
    villages = SelectMultipleField(_l("帮扶的村"), coerce=int, choices=[],
                                   widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())

    def __init__(self, *args, villages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.villages.choices = list(villages)

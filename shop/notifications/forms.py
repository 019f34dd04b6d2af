from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional

from ..forms import ShopForm, options


class EmailChannelForm(ShopForm):
    enabled = BooleanField(_l("启用邮件通知"))
    host = StringField(_l("SMTP 服务器"), validators=[Optional(), Length(max=200)])
    port = IntegerField(_l("端口"), default=25, validators=[Optional(), NumberRange(min=1, max=65535)])
    security = SelectField(_l("加密"), choices=options([("none", _l("不加密")), ("starttls", "STARTTLS"),
                                                        ("ssl", "SSL/TLS")]))
    username = StringField(_l("用户名（可不填）"), validators=[Optional(), Length(max=200)])
    password = PasswordField(_l("密码（不改请留空）"), validators=[Optional(), Length(max=200)])
    sender = StringField(_l("发件人地址"), validators=[Optional(), Length(max=200)])

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and self.enabled.data and not (self.host.data and self.sender.data):
            self.host.errors = [_l("启用邮件通知时请填写 SMTP 服务器和发件人地址。")]
            return False
        return ok


class RobotChannelForm(ShopForm):
    enabled = BooleanField(_l("启用"))
    webhook_url = StringField(_l("机器人 Webhook 地址"), validators=[
        Optional(), Length(max=500), URL(require_tld=False, message=_l("请填写完整的网址（https://…）。"))])
    secret = PasswordField(_l("加签密钥（钉钉，可不填；不改请留空）"), validators=[Optional(), Length(max=200)])

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and self.enabled.data and not self.webhook_url.data:
            self.webhook_url.errors = [_l("启用时请填写 Webhook 地址。")]
            return False
        return ok


class TestMessageForm(ShopForm):
    recipient = StringField(_l("测试邮件发到"), validators=[Optional(), Length(max=200)])


__all__ = ["EmailChannelForm", "RobotChannelForm", "TestMessageForm", "DataRequired"]

"""The glossary in code: the UI name of every code stored in the database (statuses, kinds, categories…),
in the current language (DESIGN.md, "Glossary")."""
from flask import g, has_app_context
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice

LABELS = {
    "role": {"staff": _l("帮扶责任人"), "company": _l("企业采购员"), "manager": _l("服务点管理员"), "admin": _l("系统管理员"),
             "operator": _l("销售点负责人"), "coordinator": _l("单位协调员")},
    "organization_kind": {"government": _l("机关单位"), "company": _l("企业")},
    "welfare_source": {"union": _l("工会经费"), "unit": _l("单位预算")},
    "household_status": {"alleviated": _l("脱贫户"), "monitored": _l("监测户"), "ordinary": _l("一般户")},
    "enterprise_kind": {"cooperative": _l("合作社"), "company": _l("公司"), "collective": _l("村集体")},
    "adjustment_reason": {
        "spoiled": _l("变质"), "damaged": _l("破损"), "count_correction": _l("盘点更正"), "returned": _l("退还农户"),
    },
    "movement_kind": {"intake": _l("入库"), "allocate": _l("配货"), "release": _l("释放"), "dispatch": _l("出库"),
                      "return": _l("退回入库"), "adjust": _l("调整")},
    "order_status": {
        "pending_payment": _l("待付款"), "paid": _l("待打包"), "packed": _l("已打包"), "handed_over": _l("已交付"),
        "cancelled": _l("已取消"), "requested": _l("待确认"), "confirmed": _l("已确认"), "refused": _l("已拒绝"),
        "delivered": _l("已送达"), "accepted": _l("已验收"),
    },
    # what happened, for the order's timeline
    "order_event": {
        "pending_payment": _l("已下单"), "paid": _l("已付款"), "packed": _l("已打包"), "handed_over": _l("已交付"),
        "cancelled": _l("已取消"), "requested": _l("已提交"), "confirmed": _l("已确认"), "refused": _l("已拒绝"),
        "delivered": _l("已送达"), "accepted": _l("已验收"),
    },
    "payment_status": {"unpaid": _l("未付款"), "paid": _l("已付款"), "partially_refunded": _l("部分退款"),
                       "refunded": _l("已退款")},
    "account_payment_status": {"unpaid": _l("未记账"), "paid": _l("已记账"), "partially_refunded": _l("部分退款"),
                               "refunded": _l("已退款")},
    "order_note": {"restocked": _l("拒收商品已重新入库"), "written_off": _l("拒收商品已核销")},
    "payment_method": {"stripe": _l("在线支付"), "offline": _l("到服务点付款"), "account": _l("月结挂账"),
                       "point": _l("销售点现场付款")},
    "refund_method": {"stripe": _l("原路退回（在线支付）"), "offline": _l("服务点退还现金或转账"),
                      "account": _l("冲减企业应收"), "welfare": _l("退回福利")},
    "refund_stripe_status": {"to_send": _l("待提交支付服务"), "sent": _l("已提交，等待到账"), "succeeded": _l("已退回"),
                             "failed": _l("退回失败，请另行退还")},
    "payout_method": {"cash": _l("现金"), "bank_transfer": _l("银行转账"), "grower_qr": _l("顾客扫农户收款码直付")},
    "transaction_kind": {"sale": _l("销售"), "refund": _l("退款"), "payout": _l("结算"), "receipt": _l("收款"),
                         "adjustment": _l("调整"), "welfare": _l("工会福利")},
    "contract_status": {"draft": _l("草稿"), "active": _l("执行中"), "suspended": _l("暂停"), "ended": _l("已结束")},
    "channel": {"retail": _l("职工零售"), "standing": _l("合同月度订单"), "bulk": _l("企业批量订单"),
                "point": _l("临时销售点")},
    "point_payment": {"cash": _l("现金"), "grower_qr": _l("农户收款码")},
    "point_sale_status": {"recorded": _l("已记录"), "flagged": _l("待核对"), "voided": _l("已作废")},
    # why a message did not go out: fixed reasons, never what the other side said (shop.outbound)
    "send_failure": {
        "bad_url": _l("地址格式不对"), "host_not_allowed": _l("主机不在允许外发的名单中"),
        "private_address": _l("地址指向内网或本机，已拒绝"), "dns": _l("无法解析主机名"), "timeout": _l("超时未完成"),
        "connection": _l("无法连接"), "tls": _l("证书验证失败"), "redirect": _l("对方要求跳转，已拒绝"),
        "http_status": _l("对方返回 HTTP 错误"), "bad_answer": _l("对方的回答无法识别"),
        "robot_error": _l("机器人返回错误码"), "too_large": _l("对方的回答过大"), "smtp_auth": _l("邮箱登录失败"),
        "smtp_refused": _l("邮件服务器拒收"), "smtp_error": _l("邮件服务器出错"),
        "secret": _l("无法解开已保存的密码（SHOP_SECRETS_KEY 是否已更换？）"), "bad_settings": _l("通道设置不完整"),
        "channel_disabled": _l("通道已停用"),
    },
    "category": {
        "eggs": _l("鸡蛋"),
        "peanuts": _l("花生"),
        "mung_beans": _l("绿豆"),
        "poultry": _l("家禽"),
        "brooms": _l("扫帚"),
        "watermelons": _l("西瓜"),
        "other": _l("其他"),
    },
}


_RESOLVED: dict[str, dict[str, dict[str, str]]] = {}  # per language: the labels, translated once


def label(kind: str, code: str | None) -> str:
    """The UI name of a stored code, in the current language. Long pages call this per row, so each
    language's labels are translated once, and looked up once per request."""
    if code is None:
        return ""
    in_app = has_app_context()
    resolved = g.get("_shop_labels") if in_app else None
    if resolved is None:
        language = str(get_locale())
        if language not in _RESOLVED:
            _RESOLVED[language] = {k: {c: str(name) for c, name in names.items()} for k, names in LABELS.items()}
        resolved = _RESOLVED[language]
        if in_app:
            g._shop_labels = resolved
    return resolved.get(kind, {}).get(code, code)


def send_failure(stored: str | None) -> str:
    """A stored send failure ("http_status 503", "timeout") in words: the fixed reason and its number, if any."""
    if not stored:
        return ""
    reason, _sep, number = stored.partition(" ")
    text = label("send_failure", reason)
    return f"{text} {number}" if number.lstrip("-").isascii() and number.lstrip("-").isdigit() else text


def names(kind: str) -> dict[str, str]:
    """Every code of a kind with its name in the current language, as plain strings."""
    return {code: label(kind, code) for code in LABELS[kind]}


def choices(kind: str) -> list:
    """A select's options for a kind of code: (code, its name), in the glossary's order."""
    return [SelectChoice(code, str(name)) for code, name in LABELS[kind].items()]

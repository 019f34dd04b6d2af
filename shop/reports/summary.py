"""The year's summary (帮扶工作总结): the report's figures as ready sentences, in the words of the bureau's own
work summary."""
from __future__ import annotations


from flask_babel import get_locale
from flask_babel import gettext as _

from ..formatting import format_fen
from .figures import Report


def wan(fen: int) -> str:
    """4,470,000 fen (¥44,700) → '4.47' 万元: two decimals, rounded half up, integer arithmetic only."""
    hundredths = (abs(fen) + 5_000) // 10_000  # one hundredth of 万元 is 10,000 fen
    return f"{'-' if fen < 0 else ''}{hundredths // 100}.{hundredths % 100:02d}"


def amount_words(fen: int) -> str:
    """How a work summary writes money: 4.47万元 from ¥10,000 on, 1,654.00元 below. In English, where 万 is no
    unit, the same rounding in yuan: ¥44,700 (and ¥1,654.00 below ¥10,000)."""
    if abs(fen) >= 1_000_000:
        if str(get_locale()) != "zh":
            hundreds = (abs(fen) + 5_000) // 10_000  # the 万元 figure's last digit: hundreds of yuan
            return f"{'-' if fen < 0 else ''}¥{hundreds * 100:,}"
        return _("%(w)s万元", w=wan(fen))
    if str(get_locale()) != "zh":
        return format_fen(fen)
    return _("%(y)s元", y=format_fen(fen).replace("¥", ""))


def _channel_clause(report: Report) -> str:
    """其中职工消费…、环卫公司合同采购… — the channels that sold anything; none, no clause."""
    names = {"retail": _("职工消费"), "standing": _("环卫公司合同采购"), "bulk": _("企业批量采购"),
             "point": _("临时销售点销售")}
    parts = [_("%(what)s%(amount)s", what=names[code], amount=amount_words(report.by_channel[code]))
             for code in ("retail", "standing", "bulk", "point") if report.by_channel.get(code)]
    return _("，其中%(parts)s", parts=_("、").join(parts)) if parts else ""


def summary_sentences(report: Report) -> list[str]:
    """The figures a 帮扶工作总结 needs, as ready sentences. Household income is what the ledger credited,
    net of the platform's service fee."""
    alleviated = [h for h in report.households if h[3] == "alleviated" and h[5] > 0]
    monitored = [h for h in report.households if h[3] == "monitored" and h[5] > 0]
    alleviated_total = sum(h[5] for h in alleviated)
    people = sum(h[4] for h in alleviated)
    money = amount_words
    sentences = [_("全年直接消费帮扶采购共计%(w)s%(parts)s。", w=money(report.total_fen), parts=_channel_clause(report))]
    if report.fee_fen:
        sentences.append(_("扣除平台服务费%(f)s后，农户和村企实得%(c)s。", f=money(report.fee_fen),
                           c=money(report.credited_fen)))
    if alleviated:
        sentences.append(_("带动脱贫户%(n)d户增收%(w)s，户均增收%(a)s，人均增收%(p)s。", n=len(alleviated),
                           w=money(alleviated_total), a=money(alleviated_total // len(alleviated)),
                           p=money(alleviated_total // people) if people else "—"))
    if monitored:
        sentences.append(_("监测户%(n)d户通过消费帮扶增收%(w)s。", n=len(monitored), w=money(report.monitored_earned_fen)))
    sentences.append(_("共有%(n)d户农户有销售收入，占全部%(t)d户的%(s)s。", n=report.households_benefited,
                       t=report.households_total,
                       s=f"{report.households_benefited * 100 // report.households_total}%"
                       if report.households_total else "—"))
    if report.by_channel.get("point"):
        sentences.append(_("设置西瓜临时销售点%(n)d处，销售%(w)s，带动%(h)d户增收。", n=report.points_used,
                           w=money(report.by_channel["point"]), h=report.point_households))
    brooms = next(((q, v) for c, _unit, _decimals, q, v in report.by_category if c == "brooms"), None)
    if brooms and brooms[1]:
        sentences.append(_("环卫公司定点采购扫帚%(q)d把，月均%(m)d把，订单额%(w)s。", q=brooms[0],
                           m=brooms[0] // max(1, report.contract_months), w=money(brooms[1])))
    if len(report.villages) > 1:  # a county: where the buying went, village by village
        sentences.append(_("全县%(u)d个单位和企业采购%(w)s，带动%(v)d个村%(h)d户增收。", u=report.units_buying,
                           w=money(report.total_fen), v=len([v for v in report.villages if v[3] > 0]),
                           h=sum(v[2] for v in report.villages)))
        for name, households, benefited, sold, credited in report.villages:
            if sold:
                sentences.append(_("%(v)s服务点销售%(w)s，%(t)d户农户中%(h)d户增收，农户和村企实得%(c)s。", v=name,
                                   w=money(sold), t=households, h=benefited, c=money(credited)))
    for _id, name, staff, buyers, spent in report.staff:
        if staff and buyers:
            sentences.append(_("%(o)s%(s)d名干部职工中有%(b)d人参与消费帮扶，采购%(w)s。", o=name, s=staff, b=buyers,
                               w=money(spent)))
    return sentences

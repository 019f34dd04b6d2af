"""GET /reports/summary — the year's consumption-assistance figures."""
from __future__ import annotations

from datetime import date

import marshmallow as ma

from .. import clock
from ..access import allow
from ..catalog.models import CATEGORIES

from ..reports import services as reports
from .core import make_blueprint
from .ledger import PeriodArgs, period

blp = make_blueprint("api_reports", "报表 · reports")


class CategorySchema(ma.Schema):
    """One category's sales in one unit of measure (a category sold in two units has two rows)."""

    category = ma.fields.String(required=True, metadata={"enum": list(CATEGORIES)})
    unit = ma.fields.String(required=True, metadata={"description": "the unit of measure (斤, 把, 枚)"})
    scale = ma.fields.Integer(required=True, metadata={
        "description": "stored units per unit of measure: 10 for a product sold by weight to 0.1 斤"})
    quantity = ma.fields.Integer(required=True, metadata={"description": "in stored units (tenths when scale is 10)"})
    amount_fen = ma.fields.Integer(required=True)


class MonthSchema(ma.Schema):
    month = ma.fields.String(required=True)
    amount_fen = ma.fields.Integer(required=True)


class ChannelSchema(ma.Schema):
    retail_fen = ma.fields.Integer(required=True, metadata={"description": "staff buying in the shop"})
    contract_fen = ma.fields.Integer(required=True, metadata={"description": "companies' standing contract orders"})
    bulk_fen = ma.fields.Integer(required=True, metadata={"description": "companies' one-off bulk orders"})
    point_fen = ma.fields.Integer(required=True, metadata={"description": "sold at the seasonal sales points"})


class SummarySchema(ma.Schema):
    start = ma.fields.Date(required=True, data_key="from")
    end = ma.fields.Date(required=True, data_key="to")
    total_fen = ma.fields.Integer(required=True, metadata={"description": "gross sales: what buyers paid, less refunds"})
    fee_fen = ma.fields.Integer(required=True, metadata={"description": "the platform's service fee on those sales"})
    credited_fen = ma.fields.Integer(required=True, metadata={
        "description": "what households and enterprises were credited, net of the fee (their income)"})
    by_channel = ma.fields.Nested(ChannelSchema, required=True)
    households_benefited = ma.fields.Integer(required=True)
    households_total = ma.fields.Integer(required=True)
    monitored_earned_fen = ma.fields.Integer(required=True)
    staff_buyers = ma.fields.Integer(required=True)
    staff_total = ma.fields.Integer(required=True)
    by_category = ma.fields.List(ma.fields.Nested(CategorySchema), required=True)
    by_month = ma.fields.List(ma.fields.Nested(MonthSchema), required=True)


@blp.route("/reports/summary", methods=["GET"])
@allow("admin")
@blp.arguments(PeriodArgs, location="query", unknown=ma.RAISE)
@blp.response(200, SummarySchema)
def summary(args):
    """What the buying did in a period (default: this year): every figure one SQL aggregate."""
    today = clock.today()
    start, end = period(args, date(today.year, 1, 1), date(today.year, 12, 31))
    report = reports.build(reports.Period(start, end), today)
    return {
        "start": start, "end": end, "total_fen": report.total_fen, "fee_fen": report.fee_fen,
        "credited_fen": report.credited_fen,
        "by_channel": {"retail_fen": report.by_channel.get("retail", 0),
                       "contract_fen": report.by_channel.get("standing", 0),
                       "bulk_fen": report.by_channel.get("bulk", 0),
                       "point_fen": report.by_channel.get("point", 0)},
        "households_benefited": report.households_benefited, "households_total": report.households_total,
        "monitored_earned_fen": report.monitored_earned_fen,
        "staff_buyers": sum(row[3] for row in report.staff), "staff_total": sum(row[2] for row in report.staff),
        "by_category": [{"category": c, "unit": unit, "scale": 10 ** (decimals or 0), "quantity": q, "amount_fen": v}
                        for c, unit, decimals, q, v in report.by_category],
        "by_month": [{"month": m, "amount_fen": v} for m, v in report.by_month],
    }

"""A household's ledger and payouts."""
from __future__ import annotations

from datetime import date

import marshmallow as ma
from flask_login import current_user

from .. import clock
from ..access import allow
from ..ledger import services as ledger
from ..ledger.models import MANUAL_PAYOUT_METHODS, TRANSACTION_KINDS
from ..producers.models import Household
from .core import MAX_FEN, Text, UtcDateTime, fetch, idempotent, make_blueprint, respond

blp = make_blueprint("api_ledger", "农户账户 · a household's ledger")

class PeriodArgs(ma.Schema):
    start = ma.fields.Date(data_key="from", metadata={"description": "first day (default: 1 January this year)"})
    end = ma.fields.Date(data_key="to", metadata={"description": "last day (default: today)"})


def period(args: dict, default_start: date, default_end: date) -> tuple[date, date]:
    start, end = args.get("start") or default_start, args.get("end") or default_end
    clock.check_period(start, end)
    return start, end


class EntrySchema(ma.Schema):
    date = ma.fields.Date(required=True, metadata={"description": "the day in the shop's time zone (SHOP_TIMEZONE)"})
    at = UtcDateTime(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(TRANSACTION_KINDS)})
    amount_fen = ma.fields.Integer(required=True, metadata={"description": "+ earned, − refunded or paid out"})
    order_id = ma.fields.Integer(allow_none=True, required=True)
    product = ma.fields.String(allow_none=True, required=True)
    quantity = ma.fields.Integer(allow_none=True, required=True)
    reference = ma.fields.String(allow_none=True, required=True)


class LedgerSchema(ma.Schema):
    household_id = ma.fields.Integer(required=True)
    start = ma.fields.Date(required=True, data_key="from")
    end = ma.fields.Date(required=True, data_key="to")
    balance_fen = ma.fields.Integer(required=True, metadata={"description": "owed to the household now"})
    opening_fen = ma.fields.Integer(required=True, metadata={"description": "owed at the start of the period"})
    closing_fen = ma.fields.Integer(required=True, metadata={"description": "owed at the end of the period"})
    earned_fen = ma.fields.Integer(required=True)
    refunded_fen = ma.fields.Integer(required=True)
    paid_out_fen = ma.fields.Integer(required=True)
    entries = ma.fields.List(ma.fields.Nested(EntrySchema), required=True)


@blp.route("/households/<int:household_id>/ledger", methods=["GET"])
@allow("manager", "admin")
@blp.arguments(PeriodArgs, location="query", unknown=ma.RAISE)
@blp.response(200, LedgerSchema)
def household_ledger(args, household_id: int):
    """What the household earned, had refunded and was paid in the period, entry by entry."""
    household = fetch(Household, household_id)
    today = clock.today()
    start, end = period(args, date(today.year, 1, 1), today)
    account = ledger.find_account(household_id=household.id)  # none yet: nothing earned
    figures = ledger.summary(account, start, end)
    statement = ledger.statement(account, start, end)
    return {
        "household_id": household.id, "start": start, "end": end, "balance_fen": figures.owed_fen,
        "opening_fen": statement.opening_fen, "closing_fen": statement.closing_fen,
        "earned_fen": figures.earned_fen, "refunded_fen": figures.refunded_fen, "paid_out_fen": figures.paid_out_fen,
        "entries": [{"date": clock.local_day(row.at), "at": row.at, "kind": row.kind, "amount_fen": row.amount_fen,
                     "order_id": row.order_id, "product": row.product, "quantity": row.quantity,
                     "reference": row.reference} for row in statement.rows],
    }


class PayoutIn(ma.Schema):
    amount_fen = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(1, MAX_FEN))
    method = ma.fields.String(required=True, validate=ma.validate.OneOf(MANUAL_PAYOUT_METHODS))
    reference = Text(80, min_length=1, required=True, metadata={"description": "receipt or transfer number"})


class PayoutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    household_id = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    method = ma.fields.String(required=True)
    reference = ma.fields.String(required=True)
    balance_fen = ma.fields.Integer(required=True, metadata={"description": "still owed after this payout"})


@blp.route("/households/<int:household_id>/payouts", methods=["POST"])
@allow("manager")
@blp.arguments(PayoutIn)
@blp.response(201, PayoutSchema)
@blp.doc(**idempotent)
def payout(data, household_id: int):
    """Pay a household what it is owed; never more (409 exceeds_balance)."""
    household = fetch(Household, household_id)

    def work() -> dict:
        account = ledger.household_account(household.id)
        paid = ledger.pay_out(account, data["amount_fen"], method=data["method"], reference=data["reference"],
                              user_id=current_user.id)
        return {"id": paid.id, "household_id": household.id, "amount_fen": paid.amount_fen, "method": paid.method,
                "reference": paid.reference, "balance_fen": -ledger.kept_balance(account)}

    return respond(work, status=201, schema=PayoutSchema())

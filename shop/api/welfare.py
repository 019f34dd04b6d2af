"""Union welfare funds (工会福利): a member's grants and balance; a unit coordinator's fund, top-ups and grants."""
from __future__ import annotations

import marshmallow as ma
from flask_login import current_user
from sqlalchemy import select

from .. import clock
from ..access import allow
from ..accounts.models import User
from ..extensions import db
from ..welfare import services as welfare
from ..welfare.models import FUND_SOURCES
from .core import MAX_FEN, Id, Text, UtcDateTime, idempotent, make_blueprint, respond

blp = make_blueprint("api_welfare", "工会福利 · union welfare funds and grants")


class GrantSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True, metadata={"description": "granted"})
    remaining_fen = ma.fields.Integer(required=True, metadata={"description": "left to spend (0 once expired)"})
    starts_on = ma.fields.Date(required=True)
    expires_on = ma.fields.Date(required=True, metadata={"description": "the last day it may be spent"})
    purpose = ma.fields.String(required=True)
    expired_at = UtcDateTime(required=True, allow_none=True, metadata={
        "description": "when what was left went back to the fund"})


class BalanceSchema(ma.Schema):
    balance_fen = ma.fields.Integer(required=True, metadata={"description": "left on grants usable today"})
    grants = ma.fields.List(ma.fields.Nested(GrantSchema), required=True, metadata={
        "description": "grants not yet expired, earliest expiry first (the order they are spent in)"})


def grant_body(grant) -> dict:
    return {name: getattr(grant, name) for name in ("id", "user_id", "amount_fen", "remaining_fen", "starts_on",
                                                    "expires_on", "purpose", "expired_at")}


@blp.route("/welfare/balance", methods=["GET"])
@allow("staff", "coordinator")
@blp.response(200, BalanceSchema)
def balance():
    """Your welfare grants and what is left on them: only for the village's produce, never cashed or transferred;
    what is unspent at expiry goes back to your unit's fund."""
    today = clock.today()
    grants = welfare.member_grants(current_user.id)
    return {"balance_fen": sum(g.remaining_fen for g in grants if g.usable_on(today)),
            "grants": [grant_body(g) for g in grants]}


class FundSchema(ma.Schema):
    organization_id = ma.fields.Integer(required=True)
    source = ma.fields.String(required=True, metadata={"enum": list(FUND_SOURCES)})
    topped_up_fen = ma.fields.Integer(required=True)
    available_fen = ma.fields.Integer(required=True, metadata={"description": "not yet granted"})
    granted_fen = ma.fields.Integer(required=True)
    unspent_fen = ma.fields.Integer(required=True, metadata={"description": "granted, not yet spent or expired"})
    spent_fen = ma.fields.Integer(required=True)
    returned_fen = ma.fields.Integer(required=True)
    expired_fen = ma.fields.Integer(required=True)
    grants = ma.fields.List(ma.fields.Nested(GrantSchema), required=True, metadata={"description": "newest first"})


def fund_body(fund) -> dict:
    f = welfare.figures(fund)
    return {"organization_id": fund.organization_id, "source": fund.source, "topped_up_fen": f.topped_up_fen,
            "available_fen": f.available_fen, "granted_fen": f.granted_fen, "unspent_fen": f.unspent_fen,
            "spent_fen": f.spent_fen, "returned_fen": f.returned_fen, "expired_fen": f.expired_fen,
            "grants": [grant_body(g) for g in welfare.fund_grants(fund)]}


@blp.route("/welfare/fund", methods=["GET"])
@allow("coordinator")
@blp.response(200, FundSchema)
def fund():
    """Your unit's welfare fund: what came in, what is granted, spent, returned and expired, and every grant."""
    return fund_body(welfare.fund_of(current_user.organization_id))


class TopUpIn(ma.Schema):
    amount_fen = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(1, MAX_FEN))
    reference = Text(80, min_length=1, required=True, metadata={"description": "the transfer's reference"})


@blp.route("/welfare/topups", methods=["POST"])
@allow("coordinator")
@blp.arguments(TopUpIn)
@blp.response(201, FundSchema)
@blp.doc(**idempotent)
def topup(data):
    """Record money transferred into your unit's fund (from its trade union or its budget)."""

    def work() -> dict:
        made = welfare.fund_of(current_user.organization_id)
        welfare.top_up(made, data["amount_fen"], reference=data["reference"], user_id=current_user.id)
        return fund_body(made)

    return respond(work, status=201, schema=FundSchema())


class GrantIn(ma.Schema):
    user_id = Id(required=True, metadata={"description": "a member of your unit"})
    amount_fen = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(1, MAX_FEN))
    starts_on = ma.fields.Date(metadata={"description": "first day it may be spent (default: today)"})
    expires_on = ma.fields.Date(required=True, metadata={"description": "last day it may be spent"})
    purpose = Text(60, min_length=1, required=True, metadata={"description": "e.g. 春节慰问"})


@blp.route("/welfare/grants", methods=["POST"])
@allow("coordinator")
@blp.arguments(GrantIn)
@blp.response(201, GrantSchema)
@blp.doc(**idempotent)
def grant(data):
    """Grant a member of your unit an amount to spend on the village's produce until it expires — within what
    the fund holds and the yearly caps (422 with the reason otherwise; nothing is written)."""

    def work() -> dict:
        member = db.session.scalar(select(User).where(User.id == data["user_id"]))  # another unit's: not found
        ask = welfare.GrantAsk(member, data["amount_fen"], data.get("starts_on") or clock.today(),
                               data["expires_on"], data["purpose"])
        return grant_body(welfare.grant(welfare.fund_of(current_user.organization_id), ask,
                                        granted_by=current_user.id))

    return respond(work, status=201, schema=GrantSchema())

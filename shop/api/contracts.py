"""Supply contracts and their monthly orders."""
from __future__ import annotations

import marshmallow as ma
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import allow
from ..contracts import services as contracts
from ..contracts.models import CONTRACT_STATUSES, Contract
from ..errors import Conflict, ValidationFailed
from .. import clock
from .core import Month, PageArgs, PageSchema, fetch, idempotent, make_blueprint, not_found, page_of, respond

blp = make_blueprint("api_contracts", "供货合同 · supply contracts")


class ContractSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    number = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": list(CONTRACT_STATUSES)})
    company = ma.fields.String(required=True)
    organization_id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    unit_price_fen = ma.fields.Integer(required=True, allow_none=True, metadata={"description": "this month's price"})
    monthly_quantity = ma.fields.Integer(required=True)
    first_month = ma.fields.String(required=True)
    last_month = ma.fields.String(required=True)
    cap_fen = ma.fields.Integer(required=True)
    accepted_quantity = ma.fields.Integer(required=True)
    accepted_fen = ma.fields.Integer(required=True)
    committed_fen = ma.fields.Integer(required=True, metadata={"description": "ordered or owed as backorders"})
    remaining_fen = ma.fields.Integer(required=True, metadata={"description": "cap_fen − committed_fen: what the "
                                                                              "cap still leaves room for"})


class ContractPage(PageSchema):
    items = ma.fields.List(ma.fields.Nested(ContractSchema), required=True)


def contract_body(contract: Contract) -> dict:
    progress = contracts.progress(contract, clock.today())
    return {"id": contract.id, "number": contract.number, "status": contract.status,
            "company": contract.organization.name, "organization_id": contract.organization_id,
            "product_id": contract.product_id, "unit_price_fen": contracts.current_price(contract),
            "monthly_quantity": contract.monthly_quantity, "first_month": contract.first_month,
            "last_month": contract.last_month, "cap_fen": contract.cap_fen,
            "accepted_quantity": progress.accepted_quantity, "accepted_fen": progress.accepted_fen,
            "committed_fen": progress.committed_fen, "remaining_fen": contract.cap_fen - progress.committed_fen}


def visible(query):
    if current_user.role == "company":
        return query.where(Contract.organization_id == current_user.organization_id)
    return query


@blp.route("/contracts", methods=["GET"])
@allow("company", "admin")
@blp.arguments(PageArgs, location="query", unknown=ma.RAISE)
@blp.response(200, ContractPage)
def contract_list(args):
    """Contracts with their fulfilment: a company sees its own, the admin every one."""
    query = visible(select(Contract).options(selectinload(Contract.organization), selectinload(Contract.prices))
                    .order_by(Contract.number))
    return page_of(query, args, lambda rows: [contract_body(c) for c in rows])


@blp.route("/contracts/<int:contract_id>", methods=["GET"])
@allow("company", "admin")
@blp.response(200, ContractSchema)
def contract(contract_id: int):
    """One contract and how far it is fulfilled."""
    found = fetch(Contract, contract_id)
    if current_user.role == "company" and found.organization_id != current_user.organization_id:
        not_found()
    return contract_body(found)


class MonthIn(ma.Schema):
    month = Month(required=True, metadata={"description": "YYYY-MM"})


class GeneratedSchema(ma.Schema):
    order_id = ma.fields.Integer(required=True, allow_none=True,
                                 metadata={"description": "null when nothing was in stock (all backordered)"})
    created = ma.fields.Boolean(required=True)
    backordered = ma.fields.Integer(required=True, metadata={"description": "units owed, to follow from later lots"})
    trimmed = ma.fields.Boolean(required=True, metadata={"description": "cut down to stay within the cap"})


@blp.route("/contracts/<int:contract_id>/orders", methods=["POST"])
@allow("admin")
@blp.arguments(MonthIn)
@blp.response(201, GeneratedSchema, description="the month's order was created now")
@blp.alt_response(200, schema=GeneratedSchema, description="the month's order already existed: nothing changed")
@blp.doc(**idempotent)
def generate(data, contract_id: int):
    """The contract's standing order for a month — at most one, however often (or from however many
    hosts) this is called; never past the contract's cap (409 contract_cap_reached)."""
    fetch(Contract, contract_id)

    def work():
        result = contracts.generate_one(contract_id, data["month"], unit=lambda make: make())  # in this unit
        if result.outcome == "at_cap":
            raise contracts.ContractCapReached(result.message)
        if result.outcome == "not_running":
            raise Conflict(result.message)
        if result.outcome == "no_buyer":
            raise ValidationFailed.on("contract", _("该企业没有采购员账号，无法生成订单。"))
        created = result.outcome in ("created", "no_stock")
        body = {"order_id": result.order.id if result.order else None, "created": created,
                "backordered": result.backordered, "trimmed": result.trimmed}
        return body, 201 if created else 200

    return respond(work, schema=GeneratedSchema())

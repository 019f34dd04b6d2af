"""POST /lots, GET /lots/{id} — the intake desk."""
from __future__ import annotations

import marshmallow as ma
from flask_login import current_user

from ..access import allow
from ..inventory import services as inventory
from ..inventory.models import Lot
from .core import Id, Quantity, Text, UtcDateTime, fetch, idempotent, make_blueprint, respond

blp = make_blueprint("api_inventory", "入库与批次 · stock intake and lots")


class LotIn(ma.Schema):
    product_id = Id(required=True)
    household_id = Id(metadata={"description": "the supplying household; or give enterprise_id"})
    enterprise_id = Id(metadata={"description": "the supplying village enterprise; or give household_id"})
    quantity = Quantity(required=True)
    best_before = ma.fields.Date(allow_none=True)
    note = Text(200, allow_none=True)

    @ma.validates_schema
    def one_supplier(self, data, **kwargs):
        if ("household_id" in data) == ("enterprise_id" in data):
            raise ma.ValidationError("Give exactly one of household_id and enterprise_id.", "household_id")


class LotSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    quantity = ma.fields.Integer(required=True, attribute="quantity_received")
    remaining = ma.fields.Integer(required=True, metadata={
        "description": "on the shelf and free to sell: not counting the units reserved for orders"})
    reserved = ma.fields.Integer(required=True, metadata={
        "description": "held for orders and not yet handed over (on hand = remaining + reserved)"})
    household_id = ma.fields.Integer(allow_none=True, required=True)
    enterprise_id = ma.fields.Integer(allow_none=True, required=True)
    best_before = ma.fields.Date(allow_none=True, required=True)
    received_at = UtcDateTime(required=True)


@blp.route("/lots", methods=["POST"])
@allow("manager")
@blp.arguments(LotIn)
@blp.response(201, LotSchema)
@blp.doc(**idempotent)
def receive(data):
    """Receive goods from one supplier: the lot they become."""
    item = inventory.IntakeItem(data["product_id"], data["quantity"], data.get("best_before"))
    return respond(lambda: inventory.receive(
        household_id=data.get("household_id"), enterprise_id=data.get("enterprise_id"), items=[item],
        user_id=current_user.id, note=data.get("note")).lots[0], status=201, schema=LotSchema())


@blp.route("/lots/<int:lot_id>", methods=["GET"])
@allow("manager", "admin")
@blp.response(200, LotSchema)
def lot(lot_id: int):
    """One lot: what was received, what remains."""
    return fetch(Lot, lot_id)

"""GET /points/{id}/state, POST /points/{id}/sales/sync — a sales point's phone, or any other client of it."""
from __future__ import annotations

import marshmallow as ma
from flask import abort
from flask_login import current_user

from ..access import allow, is_back_office
from ..extensions import db
from ..points import services as points
from ..points.models import SalesPoint
from .core import idempotent, make_blueprint, respond

blp = make_blueprint("api_points", "临时销售点 · seasonal sales points")

SELLERS = ("operator", "manager", "admin")


def _point(point_id: int) -> SalesPoint:
    point = db.session.get(SalesPoint, point_id)
    if point is None:
        abort(404)
    if not points.may_operate(current_user, point):
        abort(403)
    return point


class SaleIn(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "a UUID made on the phone: the sale's identity"})
    receipt = ma.fields.String(required=True, metadata={"description": "point code – phone code – sequence"})
    point_id = ma.fields.Integer(required=True)
    household_id = ma.fields.Integer(allow_none=True, metadata={"description": "the grower; or give enterprise_id"})
    enterprise_id = ma.fields.Integer(allow_none=True)
    product_id = ma.fields.Integer(required=True)
    quantity = ma.fields.Integer(required=True, metadata={
        "description": "in the product's smallest unit: tenths of a 斤 for a product sold by weight (12.3 斤 = 123)"})
    unit_price_fen = ma.fields.Integer(required=True, metadata={"description": "per 斤 (or per piece)"})
    amount_fen = ma.fields.Integer(required=True, metadata={
        "description": "quantity × unit price, rounded half-up to the fen; the server checks it"})
    payment = ma.fields.String(required=True, metadata={"enum": ["cash", "grower_qr"]})
    sold_at = ma.fields.String(required=True, metadata={"description": "RFC 3339, when the phone recorded it"})


class SyncIn(ma.Schema):
    sales = ma.fields.List(ma.fields.Raw(), required=True, metadata={"description": "up to 200 sales (SaleIn)"})


class SaleResult(ma.Schema):
    id = ma.fields.String(required=True, allow_none=True, metadata={"description": "the sale's id as sent"})
    status = ma.fields.String(required=True, metadata={
        "enum": ["recorded", "flagged", "voided", "refused"],
        "description": "recorded: filled and credited to the grower; flagged: kept for the manager (the lot ran "
                       "out meanwhile); refused: not recorded, see message — send it again once corrected"})
    duplicate = ma.fields.Boolean(metadata={"description": "already recorded by an earlier send: nothing changed"})
    receipt = ma.fields.String(allow_none=True)
    amount_fen = ma.fields.Integer()
    order_number = ma.fields.String(allow_none=True)
    code = ma.fields.String()
    message = ma.fields.String(allow_none=True)
    fields = ma.fields.Dict()


class SyncOut(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(SaleResult), required=True)


@blp.route("/points/<int:point_id>/state", methods=["GET"])
@allow(*SELLERS)
def state(point_id: int):
    """What a phone needs to sell offline: the point, its growers with their permits and stock, the products."""
    return points.state(_point(point_id), masked=not is_back_office())


@blp.route("/points/<int:point_id>/sales/sync", methods=["POST"])
@allow(*SELLERS)
@blp.arguments(SyncIn)
@blp.response(200, SyncOut)
@blp.doc(**idempotent)
def sync(data, point_id: int):
    """Send the sales a phone recorded. Each sale id is recorded exactly once, whatever the retries, the order
    or the number of phones; a sale whose lot ran out meanwhile is recorded and flagged, never dropped."""
    _point(point_id)
    return respond(lambda: {"results": points.sync(current_user, data)})

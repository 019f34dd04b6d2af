"""Orders: placing, paying offline, moving on, acceptance, refunds."""
from __future__ import annotations

import marshmallow as ma
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import allow
from ..contracts import services as contracts
from ..errors import ValidationFailed
from ..extensions import db
from ..orders import services as orders
from ..orders.models import CHANNELS, PAYMENT_METHODS, PAYMENT_STATUSES, STATUSES, Order, OrderLine
from ..payments import services as payments
from ..payments import stripe_gateway
from ..unit_of_work import run
from .core import (Id, PageArgs, PageSchema, Quantity, Text, UtcDateTime, fetch, idempotent, make_blueprint, not_found,
                   page_of, respond)

blp = make_blueprint("api_orders", "订单 · orders")

BUYERS = ("staff", "company", "coordinator")  # a coordinator: the unit's orders on account


class AllocationSchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    quantity = ma.fields.Integer(required=True, metadata={"description": "units sold from this lot (released and "
                                                                         "refunded units excluded)"})
    household_id = ma.fields.Integer(required=True, allow_none=True)
    enterprise_id = ma.fields.Integer(required=True, allow_none=True)


class LineSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    product = ma.fields.String(required=True)
    quantity = ma.fields.Integer(required=True)
    refunded_quantity = ma.fields.Integer(required=True)
    unit_price_fen = ma.fields.Integer(required=True)
    allocations = ma.fields.List(ma.fields.Nested(AllocationSchema), required=True)


class OrderSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    number = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": list(STATUSES), "description": "where the goods are"})
    payment_status = ma.fields.String(required=True, metadata={"enum": list(PAYMENT_STATUSES),
                                                               "description": "what was charged and refunded"})
    channel = ma.fields.String(required=True, metadata={"enum": list(CHANNELS)})
    payment_method = ma.fields.String(required=True, metadata={"enum": list(PAYMENT_METHODS)})
    total_fen = ma.fields.Integer(required=True)
    refunded_fen = ma.fields.Integer(required=True)
    welfare_fen = ma.fields.Integer(required=True, metadata={
        "description": "of the total, paid from the buyer's welfare grants; the rest (due_fen) is paid the chosen way"})
    due_fen = ma.fields.Integer(required=True, metadata={"description": "total_fen − welfare_fen"})
    buyer_id = ma.fields.Integer(required=True)
    organization_id = ma.fields.Integer(required=True, allow_none=True)
    pickup_point_id = ma.fields.Integer(required=True, allow_none=True)
    contract_id = ma.fields.Integer(required=True, allow_none=True)
    contract_month = ma.fields.String(required=True, allow_none=True)
    placed_at = UtcDateTime(required=True)
    paid_at = UtcDateTime(required=True, allow_none=True)
    reserved_until = UtcDateTime(required=True, allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(LineSchema), required=True)
    checkout_id = ma.fields.Integer(required=True, allow_none=True, metadata={
        "description": "a checkout split across village service points: the id of its first order, on every part"})
    other_parts = ma.fields.List(ma.fields.Nested(lambda: OrderSchema(exclude=("other_parts",))), metadata={
        "description": "for a checkout just placed whose goods come from several service points: the other orders "
                       "it was split into (one per service point; an online payment pays them all at once)"})
    checkout_url = ma.fields.String(metadata={"description": "where to pay, for an order just placed with stripe"})
    payment_hint = ma.fields.String(metadata={"description": "how to pay, when Stripe could not be reached just now"})


class OrderPage(PageSchema):
    items = ma.fields.List(ma.fields.Nested(OrderSchema), required=True)


def order_body(order: Order) -> dict:
    lines = [{
        "id": line.id, "product_id": line.product_id, "product": line.product.name, "quantity": line.quantity,
        "refunded_quantity": line.refunded_quantity, "unit_price_fen": line.unit_price_fen,
        "allocations": [{"lot_id": a.lot_id, "quantity": a.held, "household_id": a.household_id,
                         "enterprise_id": a.enterprise_id} for a in line.allocations if a.held > 0],
    } for line in order.lines]
    body = {name: getattr(order, name) for name in (
        "id", "number", "status", "payment_status", "channel", "payment_method", "total_fen", "refunded_fen", "buyer_id",
        "organization_id", "pickup_point_id", "contract_id", "contract_month", "placed_at", "paid_at",
        "reserved_until", "checkout_id", "welfare_fen", "due_fen")}
    body["lines"] = lines
    return body


def answer_options():
    """What an order's answer shows — its lines, their products and allocations — in three queries."""
    lines = selectinload(Order.lines)
    return [lines.selectinload(OrderLine.product), lines.selectinload(OrderLine.allocations)]


def load(order_id: int) -> Order:
    """The order with everything its answer shows; someone else's order is a 404, not a 403."""
    order = fetch(Order, order_id, *answer_options())
    if not orders.visible_to(order, current_user):
        not_found()
    return order


def answer(order_id: int) -> dict:
    """The order as the transaction that just changed it wrote it (read again inside that transaction, since
    the services change counters in SQL), before its commit: the answer is committed with the change."""
    query = (select(Order).where(Order.id == order_id).options(*answer_options())
             .execution_options(populate_existing=True))
    return order_body(db.session.scalar(query))


ORDER = OrderSchema()


def changed(order_id: int, work) -> dict:
    """Make a change to an order, then answer with the order as the change left it (in the same unit)."""
    work()
    return answer(order_id)


# --- placing ----------------------------------------------------------------------------------------

class LineIn(ma.Schema):
    product_id = Id(required=True)
    quantity = Quantity(required=True)


class OrderIn(ma.Schema):
    lines = ma.fields.List(ma.fields.Nested(LineIn), required=True,
                           validate=ma.validate.Length(1, orders.MAX_CART_LINES))
    pickup_point_id = Id(allow_none=True, metadata={
        "description": "staff: where to collect; leave out to have it delivered to your workplace"})
    pickup_point_ids = ma.fields.List(Id(), validate=ma.validate.Length(1, 20), metadata={
        "description": "staff, goods of several village service points: one pickup point of each (instead of "
                       "pickup_point_id); the order is split into one order per service point"})
    payment_method = ma.fields.String(required=True, validate=ma.validate.OneOf(("offline", "stripe", "account")),
                                      metadata={"description": "staff: offline or stripe; companies: account"})
    welfare_fen = ma.fields.Integer(strict=True, validate=ma.validate.Range(0, 10**11), load_default=0, metadata={
        "description": "staff: how much of the order to pay from your own welfare grants (earliest expiry first; "
                       "at most the order's total). An order the grants pay whole is paid at once."})
    grant_ids = ma.fields.List(Id(), validate=ma.validate.Length(1, 50), metadata={
        "description": "staff: spend only these grants of yours (see GET /welfare/balance)"})


class OrderListArgs(PageArgs):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))


@blp.route("/orders", methods=["GET"])
@allow(*BUYERS, "manager", "admin")
@blp.arguments(OrderListArgs, location="query", unknown=ma.RAISE, as_kwargs=True)
@blp.response(200, OrderPage)
def order_list(page, per_page, status=None):
    """Your orders (a company's buyers: the company's; a unit's coordinator: the unit's orders on account); the
    back office sees every order. Newest first."""
    query = select(Order).options(*answer_options()).order_by(Order.id.desc())
    if current_user.role in BUYERS:
        query = query.where(orders.bought_by(current_user))
    if status:
        query = query.where(Order.status == status)
    return page_of(query, {"page": page, "per_page": per_page}, lambda rows: [order_body(o) for o in rows])


@blp.route("/orders", methods=["POST"])
@allow(*BUYERS)
@blp.arguments(OrderIn)
@blp.response(201, OrderSchema)
@blp.doc(**idempotent)
def place(data):
    """Place an order. Staff pay offline at the service point or online (the answer then carries the
    checkout_url); stock is allocated at once and held while payment is pending. A company's order — and a unit
    coordinator's, for the unit — is a bulk order on account at tier prices, for the service point to confirm. Goods of several village service
    points are split into one order per point (`other_parts`), each collected at a pickup point of its own
    point (`pickup_point_ids`) or delivered to the workplace; one online payment pays them all."""
    lines = [(line["product_id"], line["quantity"]) for line in data["lines"]]
    if len({product_id for product_id, _q in lines}) != len(lines):
        raise ValidationFailed.on("lines", _("每种商品只能出现一次。"))
    method = data["payment_method"]
    if current_user.role in orders.UNIT_BUYERS:
        if data["welfare_fen"] or data.get("grant_ids"):
            raise ValidationFailed.on("welfare_fen", _("福利只能用于职工本人的订单。"))
        if method != "account":
            raise ValidationFailed.on("payment_method", _("企业订单记账结算，请选择 account。"))
        return respond(lambda: answer(contracts.request_bulk_order(current_user, lines).id), status=201,
                       schema=ORDER)
    if method == "account":
        raise ValidationFailed.on("payment_method", _("记账结算只适用于企业订单。"))
    point, points = data.get("pickup_point_id"), data.get("pickup_point_ids")
    if point is not None and points:
        raise ValidationFailed.on("pickup_point_ids", _("请只给 pickup_point_id 或 pickup_point_ids 之一。"))

    def work() -> dict:
        # answered from what the transaction wrote: a new order's lines, products and allocations are in hand
        first, *others = payments.checkout(current_user, payment_method=method, pickup_point_id=point,
                                           pickup_point_ids=points, deliver_to_workplace=point is None and not points,
                                           lines=lines, welfare_fen=data["welfare_fen"],
                                           grant_ids=data.get("grant_ids"))
        body = order_body(first)
        if others:
            body["other_parts"] = [order_body(part) for part in others]
        return body

    return respond(work, status=201, schema=ORDER, then=_checkout if method == "stripe" else None)


def _checkout(placed: dict) -> dict:
    """After the order is committed: Stripe's payment page for it (for what is left to pay once welfare grants
    paid their part; nothing when they paid it all). If Stripe cannot be reached, the order stands (its stock is
    held) and the answer says how to pay it instead."""
    due = [part for part in [placed, *placed.get("other_parts", [])] if part["due_fen"] > 0]
    if not due:
        return placed
    try:
        url = payments.start_checkout(due[0]["id"], unit=run)
    except stripe_gateway.GatewayError:
        return {**placed, "payment_hint": _("暂时无法连接支付服务：订单已保留，请稍后在商城的订单页面付款，或到服务点付款。")}
    return {**placed, "checkout_url": url}


@blp.route("/orders/<int:order_id>", methods=["GET"])
@allow(*BUYERS, "manager", "admin")
@blp.response(200, OrderSchema)
def order(order_id: int):
    """One order with its lines and the lots — the households — that filled them."""
    return order_body(load(order_id))


@blp.route("/orders/<int:order_id>/cancel", methods=["POST"])
@allow(*BUYERS, "manager")
@blp.response(200, OrderSchema)
@blp.doc(**idempotent)
def cancel(order_id: int):
    """Cancel an order: its buyer while it awaits payment (a company's bulk order: while it awaits the service
    point's confirmation), the manager also a confirmed company order. Its stock goes back on the shelf. An
    unpaid online order split across service points is one payment: its other unpaid parts are cancelled too."""
    order = load(order_id)
    session_id = order.stripe_session_id

    def expire_session(cancelled: dict) -> dict:
        if session_id and stripe_gateway.configured():
            stripe_gateway.expire_checkout_session(session_id)  # best effort
        return cancelled

    return respond(lambda: changed(order_id, lambda: orders.cancel_checkout(order, user_id=current_user.id)),
                   schema=ORDER,
                   then=expire_session)


# --- the service point ----------------------------------------------------------------------------

class OfflinePaymentIn(ma.Schema):
    reference = Text(80, min_length=1, required=True, metadata={"description": "the receipt number"})


@blp.route("/orders/<int:order_id>/offline-payment", methods=["POST"])
@allow("manager")
@blp.arguments(OfflinePaymentIn)
@blp.response(200, OrderSchema)
@blp.doc(**idempotent)
def offline_payment(data, order_id: int):
    """The buyer paid at the service point: the order is paid and its sale credited to the households."""
    order = load(order_id)
    return respond(lambda: changed(order_id, lambda: payments.confirm_offline_payment(
        order, reference=data["reference"], user_id=current_user.id)), schema=ORDER)


class StatusIn(ma.Schema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(("confirmed", "refused", "packed",
                                                                          "handed_over", "delivered")))
    handed_over_to = Text(80, metadata={"description": "who collected it (handed_over); the buyer by default"})
    reason = Text(500, metadata={"description": "why a company's bulk order is refused (refused)"})


@blp.route("/orders/<int:order_id>/status", methods=["POST"])
@allow("manager")
@blp.arguments(StatusIn)
@blp.response(200, OrderSchema)
@blp.doc(**idempotent)
def move_on(data, order_id: int):
    """Move an order on: confirm a company's bulk order (its stock is allocated now) or refuse it with a
    reason, pack, hand over, or deliver a company's order. Only the moves of the order's state machine are
    allowed; anything else is 409 invalid_transition and changes nothing."""
    order = load(order_id)
    status, me = data["status"], current_user.id
    work = {
        "confirmed": lambda: contracts.confirm_bulk_order(order, user_id=me),
        "refused": lambda: contracts.refuse_bulk_order(order, reason=data.get("reason") or "", user_id=me),
        "packed": lambda: orders.pack(order, user_id=me),
        "handed_over": lambda: orders.hand_over(order, user_id=me,
                                                to=data.get("handed_over_to") or order.buyer.display_name),
        "delivered": lambda: contracts.deliver(order, user_id=me),
    }[status]
    return respond(lambda: changed(order_id, work), schema=ORDER)


class AcceptedLineIn(ma.Schema):
    line_id = Id(required=True)
    accepted_quantity = Quantity(0, required=True)


class AcceptanceIn(ma.Schema):
    lines = ma.fields.List(ma.fields.Nested(AcceptedLineIn), load_default=list,
                           metadata={"description": "lines not named are accepted in full"})
    note = Text(500, allow_none=True, metadata={"description": "why units were refused (needed if any were)"})


@blp.route("/orders/<int:order_id>/acceptance", methods=["POST"])
@allow(*orders.UNIT_BUYERS)
@blp.arguments(AcceptanceIn)
@blp.response(200, OrderSchema)
@blp.doc(**idempotent)
def acceptance(data, order_id: int):
    """验收: accept a delivery, in full or with a shortfall. Only accepted units are sold."""
    order = load(order_id)
    accepted = {}
    for line in data["lines"]:
        if line["line_id"] in accepted:
            raise ValidationFailed.on("lines", _("每一行只能出现一次。"))
        accepted[line["line_id"]] = line["accepted_quantity"]
    return respond(lambda: changed(order_id, lambda: contracts.accept(order, accepted, user_id=current_user.id,
                                                                      note=data.get("note"))), schema=ORDER)


class RefundLineIn(ma.Schema):
    line_id = Id(required=True)
    quantity = Quantity(required=True)


class RefundIn(ma.Schema):
    lines = ma.fields.List(ma.fields.Nested(RefundLineIn), required=True, validate=ma.validate.Length(min=1))
    restock = ma.fields.Boolean(required=True, metadata={"description": "put the units back on their lots"})
    reason = Text(200, allow_none=True)


class RefundSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    order_id = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    method = ma.fields.String(required=True)
    restock = ma.fields.Boolean(required=True)
    stripe_status = ma.fields.String(allow_none=True, metadata={
        "description": "a card refund: to_send (Stripe could not be reached yet; it is sent again), sent, "
                       "succeeded or failed"})


@blp.route("/orders/<int:order_id>/refunds", methods=["POST"])
@allow("manager", "admin")
@blp.arguments(RefundIn)
@blp.response(201, RefundSchema)
@blp.doc(**idempotent)
def refund(data, order_id: int):
    """Refund units of a paid order, line by line; the households' credit is reversed for exactly these
    units. An online payment is refunded through Stripe."""
    order = load(order_id)
    wanted: dict[int, int] = {}
    for line in data["lines"]:
        wanted[line["line_id"]] = wanted.get(line["line_id"], 0) + line["quantity"]
    return respond(lambda: payments.refund_order(order, wanted, restock=data["restock"],
                                                 reason=data.get("reason"), user_id=current_user.id),
                   status=201, schema=RefundSchema(), then=_send_refund)


def _send_refund(made: dict) -> dict:
    """After the refund is committed: a card refund goes to Stripe (once, whatever retries follow)."""
    if made["method"] != "stripe":
        return made
    payments.send_refund(made["id"], unit=run)
    return {**made, "stripe_status": run(lambda: payments.refund_stripe_status(made["id"]))}

"""The order state machine: the one table that says which move is allowed, from where, to where, by whom.

An order has two states, kept apart as Saleor keeps `status` and `charge_status`:

* its **status** — where the goods are — follows one of two flows: a staff member's retail order
  (`pending_payment → paid → packed → handed_over`, or `cancelled`) or a company's order on account
  (`requested → confirmed → delivered → accepted`, or `refused` / `cancelled`);
* its **payment status** — what was charged and refunded — `unpaid → paid → partially_refunded → refunded`.
  An order on account is charged when the company accepts the delivery (its sale posts to the receivable).

So a refund moves only the payment status and can never reopen packing or hand-over; a retail order whose
every unit is refunded before it was handed over is closed (`cancelled`), since nothing is left to pack.

Services move an order only by naming a move of this table (`orders.services.transition`); templates ask
`allowed(order, user)` which moves to offer. Nothing here touches the database.
"""
from __future__ import annotations

from dataclasses import dataclass

RETAIL, ACCOUNT = "retail", "account"

FLOWS: dict[str, tuple[str, ...]] = {
    RETAIL: ("pending_payment", "paid", "packed", "handed_over", "cancelled"),
    ACCOUNT: ("requested", "confirmed", "delivered", "accepted", "refused", "cancelled"),
}
STATUSES: tuple[str, ...] = tuple(dict.fromkeys(s for flow in FLOWS.values() for s in flow))
PAYMENT_STATUSES = ("unpaid", "paid", "partially_refunded", "refunded")
CHARGED = ("paid", "partially_refunded", "refunded")  # its sale is in the ledger
REFUNDABLE = ("paid", "partially_refunded")
DISPATCHED = ("handed_over", "delivered", "accepted")  # the goods have left the service point

# who may ask for a move: the order's own buyer (a company's order: any buyer of that company), the back
# office by role, or the shop itself (payment notices, expired holds, generated contract orders)
BUYER, MANAGER, ADMIN, SYSTEM = "buyer", "manager", "admin", "system"


@dataclass(frozen=True)
class Move:
    name: str
    flow: str
    sources: frozenset[str]
    target: str
    actors: frozenset[str]


def _move(name: str, flow: str, sources: set[str], target: str, actors: set[str]) -> Move:
    return Move(name, flow, frozenset(sources), target, frozenset(actors))


MOVES: tuple[Move, ...] = (
    _move("pay", RETAIL, {"pending_payment"}, "paid", {MANAGER, SYSTEM}),
    _move("cancel", RETAIL, {"pending_payment"}, "cancelled", {BUYER, MANAGER, SYSTEM}),
    _move("pack", RETAIL, {"paid"}, "packed", {MANAGER}),
    _move("hand_over", RETAIL, {"packed"}, "handed_over", {MANAGER}),
    # a sales point's sale: paid and taken away at once
    _move("hand_over_on_the_spot", RETAIL, {"paid"}, "handed_over", {SYSTEM}),
    # every unit was refunded before it left: nothing is left to pack or hand over
    _move("close", RETAIL, {"paid", "packed"}, "cancelled", {MANAGER, ADMIN, SYSTEM}),
    _move("confirm", ACCOUNT, {"requested"}, "confirmed", {MANAGER, SYSTEM}),  # the shop: a contract's month
    _move("refuse", ACCOUNT, {"requested"}, "refused", {MANAGER}),
    _move("cancel", ACCOUNT, {"requested"}, "cancelled", {BUYER, MANAGER}),
    _move("cancel", ACCOUNT, {"confirmed"}, "cancelled", {MANAGER}),
    _move("deliver", ACCOUNT, {"confirmed"}, "delivered", {MANAGER}),
    _move("accept", ACCOUNT, {"delivered"}, "accepted", {BUYER}),
)

# what was paid and refunded; refunds are made by the back office (or mirrored from Stripe)
PAYMENT_MOVES: dict[str, frozenset[str]] = {
    "unpaid": frozenset({"paid"}),
    "paid": frozenset({"partially_refunded", "refunded"}),
    "partially_refunded": frozenset({"partially_refunded", "refunded"}),
    "refunded": frozenset(),
}
REFUNDERS = frozenset({MANAGER, ADMIN, SYSTEM})


def flow_of(payment_method: str) -> str:
    return ACCOUNT if payment_method == "account" else RETAIL


def find(flow: str, status: str, name: str) -> Move | None:
    """The move called `name` that an order of `flow` in `status` may make, if any."""
    return next((m for m in MOVES if m.flow == flow and m.name == name and status in m.sources), None)


def targets(flow: str, name: str) -> str | None:
    """Where a move leads (for messages that name it)."""
    return next((m.target for m in MOVES if m.flow == flow and m.name == name), None)


# who buys for a whole unit, on account (bulk orders at tier prices): a company's buyer, a unit's coordinator
UNIT_BUYERS = ("company", "coordinator")


def roles_of(order, user) -> frozenset[str]:
    """What `user` is with respect to `order`: its buyer, and/or the back office by role; None is the shop."""
    if user is None:
        return frozenset({SYSTEM})
    roles = {user.role} & {MANAGER, ADMIN}
    # a company's buyer buys for the company; a unit's coordinator for the unit, on account (never as its staff)
    for_unit = (user.role in UNIT_BUYERS and order.organization_id is not None
                and order.organization_id == user.organization_id
                and (user.role == "company" or order.payment_method == "account"))
    if for_unit or order.buyer_id == user.id:
        roles.add(BUYER)
    return frozenset(roles)


def back_office_roles(user) -> frozenset[str]:
    """What a user is to any order they did not place: the back office by role, or the shop itself (None)."""
    return frozenset({SYSTEM}) if user is None else frozenset({user.role}) & {MANAGER, ADMIN}


def may(move: Move, roles: frozenset[str]) -> bool:
    return bool(move.actors & roles)


def allowed(order, user) -> frozenset[str]:
    """The moves `user` may make on `order` now — what its pages offer — plus "refund" while anything
    charged is left to refund."""
    roles = roles_of(order, user)
    names = {m.name for m in MOVES if m.flow == order.flow and order.status in m.sources and may(m, roles)}
    names.discard("close")  # closing follows a full refund; it is never offered on its own
    if order.payment_method != "offline":
        names.discard("pay")  # only cash at the service point is recorded by hand; Stripe tells the shop itself
    if order.flow == RETAIL and order.status == "pending_payment" and order.payment_method == "stripe" \
            and BUYER in roles:
        names.add("checkout")  # the buyer goes (back) to Stripe's payment page
    if order.payment_status in REFUNDABLE and roles & REFUNDERS:
        names.add("refund")
    return frozenset(names)

"""Each village's manager sees only what their villages hold: one rule, applied in the query layer.

A manager is granted villages (their service points). For the length of a request by such a manager, every ORM
query — a list, a fetch by id (``Session.get``), a relationship loaded on the way, an export, an API answer —
is narrowed to what belongs to those villages, whatever the view asked for. Views and services still check what
they are told (a product of another village is "not found"), but forgetting to filter is no longer a leak.

What belongs to a village: its households and enterprises (and their cards, visit notes, stock intakes and
payouts), its products (their lots and stock movements, the orders for them, refunds and contracts), its pickup
points and its seasonal sales points (with their growers, operators, permits, phones, sales and closed days).
People, units, the platform's and the units' ledger accounts, the ledger's entries and the notices a user receives are not narrowed: a user's own rows are
theirs, and a page reaches entries only through a supplier or an order that is narrowed.

A unit's coordinator (单位协调员) is narrowed the same way to their unit: its people, their pairings and visit
notes, and the orders placed in the unit's name. Public pages (the catalog, a lot's trace) are not narrowed:
they show everyone the same.

Admins (the county's coordinators) are not narrowed. A query that must see the county whoever asks — a
uniqueness check, say — runs with ``models_base.COUNTY_WIDE`` as its execution options and is told so in its code.
Raw reads through the connection are not narrowed by this rule and filter by ``villages()`` themselves.
"""
from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_login import current_user
from sqlalchemy import and_, event, or_, select
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from .access import PUBLIC, rule_for
from .accounts.models import User
from .catalog.models import PickupPoint, Product
from .contracts.models import Backorder, Contract
from .inventory.models import Intake, Lot, StockMovement
from .ledger.models import Account, Payout
from .orders.models import Order, OrderEvent, OrderLine, Refund
from .points.models import PointDay, PointDevice, PointGrower, PointOperator, PointSale, Permit, SalesPoint
from .producers.models import Enterprise, Household, HouseholdCard, Pairing, PointManager, Village, VisitNote
from .producers.services import managed_villages


def villages() -> frozenset[int] | None:
    """The villages the current request may see; None when it may see the whole county."""
    if not has_request_context():
        return None
    return g.get("village_scope")


def unit() -> int | None:
    """The unit a coordinator's request is narrowed to; None for everyone else."""
    if not has_request_context():
        return None
    return g.get("unit_scope")


def _set_scope() -> None:
    """before_request, after the access rules: a manager's requests are narrowed to their villages, a unit
    coordinator's to their unit. A public page (the catalog, a lot's trace) shows everyone the same."""
    if not current_user.is_authenticated or request.endpoint is None or PUBLIC in (rule_for(request.endpoint) or ()):
        return
    if current_user.role == "manager":
        g.village_scope = managed_villages(current_user.id)
    elif current_user.role == "coordinator":
        g.unit_scope = current_user.organization_id or 0


def _unit_criteria(organization_id: int) -> list:
    """A unit's coordinator sees the unit's people, their pairings and visit notes, and the unit's orders."""
    people = select(User.id).where(User.organization_id == organization_id)
    rules = [
        (User, User.organization_id == organization_id),
        (Pairing, Pairing.user_id.in_(people)),
        (VisitNote, VisitNote.user_id.in_(people)),
        (Order, Order.organization_id == organization_id),
    ]
    return [with_loader_criteria(model, rule, include_aliases=True) for model, rule in rules]


def _criteria(ids: tuple[int, ...]) -> list:
    households = select(Household.id).where(Household.village_id.in_(ids))
    enterprises = select(Enterprise.id).where(Enterprise.village_id.in_(ids))
    products = select(Product.id).where(Product.village_id.in_(ids))
    orders = select(OrderLine.order_id).where(OrderLine.product_id.in_(products))
    lots = select(Lot.id).where(Lot.product_id.in_(products))
    points = select(SalesPoint.id).where(SalesPoint.village_id.in_(ids))
    contracts = select(Contract.id).where(Contract.product_id.in_(products))
    supplier_accounts = select(Account.id).where(or_(Account.household_id.in_(households),
                                                     Account.enterprise_id.in_(enterprises)))
    # the platform's and the units' accounts are not a village's; a supplier's account is its village's
    accounts = or_(and_(Account.household_id.is_(None), Account.enterprise_id.is_(None)),
                   Account.household_id.in_(households), Account.enterprise_id.in_(enterprises))
    rules = [
        (Village, Village.id.in_(ids)),
        (PointManager, PointManager.village_id.in_(ids)),
        (Household, Household.village_id.in_(ids)),
        (Enterprise, Enterprise.village_id.in_(ids)),
        (HouseholdCard, HouseholdCard.household_id.in_(households)),
        (VisitNote, VisitNote.household_id.in_(households)),
        (Pairing, Pairing.household_id.in_(households)),
        (Product, Product.village_id.in_(ids)),
        (PickupPoint, PickupPoint.village_id.in_(ids)),
        (SalesPoint, SalesPoint.village_id.in_(ids)),
        (Intake, or_(Intake.household_id.in_(households), Intake.enterprise_id.in_(enterprises))),
        (Lot, Lot.product_id.in_(products)),
        (StockMovement, StockMovement.lot_id.in_(lots)),
        (Order, Order.id.in_(orders)),
        (OrderEvent, OrderEvent.order_id.in_(orders)),
        (Refund, Refund.order_id.in_(orders)),
        (Contract, Contract.id.in_(contracts)),
        (Backorder, Backorder.contract_id.in_(contracts)),
        (Account, accounts),
        (Payout, Payout.account_id.in_(supplier_accounts)),
    ]
    rules += [(model, model.sales_point_id.in_(points))
              for model in (PointGrower, PointOperator, Permit, PointDevice, PointSale, PointDay)]
    return [with_loader_criteria(model, rule, include_aliases=True) for model, rule in rules]


def _narrow(state: ORMExecuteState) -> None:
    if not state.is_select or state.execution_options.get("county_wide"):
        return
    ids = villages()
    if ids is not None:
        state.statement = state.statement.options(*_criteria(tuple(sorted(ids))))
    organization_id = unit()
    if organization_id is not None:
        state.statement = state.statement.options(*_unit_criteria(organization_id))


def install(app: Flask) -> None:
    app.before_request(_set_scope)
    if not getattr(Session, "_village_scope_installed", False):
        event.listen(Session, "do_orm_execute", _narrow)
        Session._village_scope_installed = True  # type: ignore[attr-defined]

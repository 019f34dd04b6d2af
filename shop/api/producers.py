"""GET /households — the village's households (the back office)."""
from __future__ import annotations

import marshmallow as ma

from ..access import allow
from ..producers import services as producers
from ..producers.models import HOUSEHOLD_STATUSES
from .core import PageArgs, PageSchema, Text, make_blueprint, page_of

blp = make_blueprint("api_producers", "农户 · households")


class HouseholdSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True, attribute="head_name", metadata={"description": "the head of household"})
    status = ma.fields.String(required=True, metadata={"enum": list(HOUSEHOLD_STATUSES)})
    members = ma.fields.Integer(required=True)


class HouseholdPage(PageSchema):
    items = ma.fields.List(ma.fields.Nested(HouseholdSchema), required=True)


class HouseholdArgs(PageArgs):
    status = ma.fields.String(validate=ma.validate.OneOf(HOUSEHOLD_STATUSES))
    q = Text(40, metadata={"description": "start of the household code, or part of the head's name"})


@blp.route("/households", methods=["GET"])
@allow("manager", "admin")
@blp.arguments(HouseholdArgs, location="query", unknown=ma.RAISE, as_kwargs=True)
@blp.response(200, HouseholdPage)
def households(page, per_page, status=None, q=None):
    """Households by code, filtered by status or name."""
    return page_of(producers.search_households(q, status), {"page": page, "per_page": per_page})

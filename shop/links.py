"""Links that leave the page — printed on a household's card, a lot's label or a permit, sent in a message,
handed to Stripe — are made from SHOP_BASE_URL when it is set, never from what a client said the host was."""
from __future__ import annotations

from flask import current_app, has_request_context, request, url_for


def absolute_url(endpoint: str, **values) -> str:
    """The full address of a page: under SHOP_BASE_URL when it is set; otherwise from the request (a development
    machine, where the shop is reached however it is reached)."""
    base = current_app.config.get("SHOP_BASE_URL")
    if not base:
        return url_for(endpoint, _external=True, **values)
    path = url_for(endpoint, **values)
    root = request.script_root if has_request_context() else ""
    if root and path.startswith(root):
        path = path[len(root):]
    return base.rstrip("/") + path


def absolute_link(link: str | None) -> str | None:
    """A link the shop made itself ("/orders/12") as a full address when SHOP_BASE_URL says where it is served."""
    if not link:
        return link
    base = current_app.config.get("SHOP_BASE_URL") or ""
    return f"{base.rstrip('/')}{link}"

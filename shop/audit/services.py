"""record() adds an audit event to the current unit of work: it commits or rolls back with the change."""
from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user

from ..extensions import db
from .models import AuditEvent


def record(action: str, obj=None, detail: str | None = None, *, user_id: int | None = None,
           object_type: str | None = None, object_id: int | None = None) -> AuditEvent:
    if user_id is None and has_request_context() and current_user.is_authenticated:
        user_id = current_user.id
    if obj is not None:
        object_type = object_type or obj.__tablename__
        object_id = object_id or obj.id
    event = AuditEvent(action=action, object_type=object_type, object_id=object_id, user_id=user_id,
                       detail=(detail or None) and detail[:2000],
                       ip=(request.remote_addr if has_request_context() else None))
    db.session.add(event)
    return event

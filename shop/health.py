"""The health check a load balancer or monitor asks: is the database reachable."""
import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from . import unit_of_work
from .access import PUBLIC, allow
from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@allow(PUBLIC)
def healthz():
    if database_ok():
        return jsonify(status="ok", database="ok")
    return jsonify(status="error", database="error"), 503


def database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        logging.getLogger(__name__).exception("database health check failed")
        unit_of_work.discard()
        return False

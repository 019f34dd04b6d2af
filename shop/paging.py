"""A page of rows that are not whole entities, for lists that page through SQL rows."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .extensions import db


@dataclass
class Paged:
    """One page of rows that are not whole entities (what the pager macro needs, as Flask-SQLAlchemy's
    Pagination offers for entities)."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def paged_rows(query, page: int, per_page: int) -> Paged:
    """A page of a row query (newest first is the caller's ORDER BY), with the total count."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = max(1, min(page, max(1, -(-total // per_page))))
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    return Paged(rows, page, per_page, total)

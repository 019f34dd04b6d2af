"""The API is driven the way its clients drive it: JSON over HTTP with a bearer token per user."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shop.accounts.models import User
from shop.accounts.services import create_api_token
from shop.extensions import db


class ApiClient:
    """Calls /api/v1 as a named user; answers (status, JSON body)."""

    def __init__(self, app):
        self.app = app
        self.tokens: dict[str, str] = {}

    def token_for(self, username: str) -> str:
        if username not in self.tokens:
            user = db.session.scalar(select(User).where(User.username == username))
            self.tokens[username] = create_api_token(user, "tests")[1]
            db.session.commit()
        return self.tokens[username]

    def call(self, username: str | None, method: str, path: str, json=None, query=None, headers=None):
        headers = dict(headers or {})
        if username:
            headers["Authorization"] = f"Bearer {self.token_for(username)}"
        response = self.app.test_client().open("/api/v1" + path, method=method, json=json, query_string=query,
                                               headers=headers)
        assert response.content_type.startswith("application/json"), (path, response.status_code, response.data[:200])
        return response.status_code, response.get_json()

    def get(self, username, path, **query):
        return self.call(username, "GET", path, query=query or None)

    def post(self, username, path, json=None):
        return self.call(username, "POST", path, json=json if json is not None else {})


@pytest.fixture
def api(app, world) -> ApiClient:
    return ApiClient(app)

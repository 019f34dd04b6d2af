"""Schemathesis, in the suite: for every operation of the OpenAPI document and every role, generated
requests — valid and invalid — never meet a server error, and every answer matches the document
(status code, content type, body schema).

A request that fits the document may still be refused by a rule the document cannot express (an
unknown product, a period that ends before it starts, more than is in stock): such answers are 409 or
422 with the error body, so Schemathesis's "schema-valid data must be accepted" check is left out.

Each operation is its own test, bounded in examples; each generated request is sent as every role
and as nobody.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from shop import create_app
from tests.factories import order

USERS = [None, "staff01", "buyer-jinlv", "manager", "admin"]
EXAMPLES = 10  # per operation and mode; × 5 callers


def _operations() -> list[tuple[str, str]]:
    app = create_app({"ENVIRON": {"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"}})
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations
            if method in ("get", "post", "put", "patch", "delete")]


OPERATIONS = _operations()


def test_every_api_route_is_in_the_document(app):
    documented = {path for _method, path in OPERATIONS}
    routes = {rule.rule.replace("<int:", "{").replace(">", "}") for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and rule.endpoint.startswith("api_")
              and rule.endpoint != "api_docs_asset"}
    assert routes == documented


@pytest.fixture
def document(app, world, api):
    """The shop's own document, read from the app; each call gets its own app context (and so its own
    `g` and database session), as on a real server."""
    order(world.staff, world.point, (world.eggs, 2))  # something to find, pay, move on and refund

    def wsgi(environ, start_response):
        with app.app_context():
            return list(app.wsgi_app(environ, start_response))

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_document(document, api, method, path, mode):
    operation = document[path][method]
    headers = {username: {"Authorization": f"Bearer {api.token_for(username)}"} if username else {}
               for username in USERS}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def each(case):
        for username in USERS:
            case.call_and_validate(headers=headers[username], excluded_checks=excluded)

    # Schemathesis's rejection checks judge a request by what it generated, but the bearer token is
    # added here: a "missing Authorization" request is then rightly accepted. So invalid requests are
    # checked for what matters — no server error, answers as documented — and the exact rejections of
    # invalid input are tested in test_auth_and_errors.py.
    excluded = [positive_data_acceptance] + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    each()

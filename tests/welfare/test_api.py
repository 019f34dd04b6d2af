"""The welfare API: a member's balance, a coordinator's fund, top-ups and grants — each POST once per
Idempotency-Key, every refusal a clear 422 that writes nothing."""
from datetime import timedelta

from sqlalchemy import func, select

from shop import clock
from shop.extensions import db
from shop.welfare.models import WelfareGrant, WelfareTopUp
from tests import factories
from tests.api.conftest import ApiClient


def post(api, path, body, key):
    return api.call("coordinator", "POST", path, json=body, headers={"Idempotency-Key": key})


def counts():
    return (db.session.scalar(select(func.count(WelfareGrant.id))),
            db.session.scalar(select(func.count(WelfareTopUp.id))))


def test_grants_and_balances_through_the_api(app, world):
    api = ApiClient(app)
    expires = (clock.today() + timedelta(days=30)).isoformat()
    status, fund = post(api, "/welfare/topups", {"amount_fen": 100_000, "reference": "GH-9"}, "t-1")
    assert status == 201 and fund["available_fen"] == 100_000
    assert post(api, "/welfare/topups", {"amount_fen": 100_000, "reference": "GH-9"}, "t-1")[1] == fund  # replayed
    body = {"user_id": world.staff.id, "amount_fen": 30_000, "expires_on": expires, "purpose": "春节慰问"}
    status, grant = post(api, "/welfare/grants", body, "g-1")
    assert status == 201 and (grant["remaining_fen"], grant["user_id"]) == (30_000, world.staff.id)
    assert post(api, "/welfare/grants", body, "g-1")[1] == grant
    assert counts() == (1, 1)
    status, mine = api.get("staff01", "/welfare/balance")
    assert status == 200 and mine["balance_fen"] == 30_000 and mine["grants"][0]["expires_on"] == expires
    assert api.get("staff02", "/welfare/balance")[1]["balance_fen"] == 0
    status, fund = api.get("coordinator", "/welfare/fund")
    assert (fund["available_fen"], fund["unspent_fen"], len(fund["grants"])) == (70_000, 30_000, 1)
    assert api.get("staff01", "/welfare/fund")[0] == 403


def test_bad_grants_through_the_api_are_refused_and_write_nothing(app, world):
    api = ApiClient(app)
    outsider = factories.user("staff-yy", "staff", factories.organization("县YY委", "government"), "欧阳委员")
    db.session.commit()
    post(api, "/welfare/topups", {"amount_fen": 10_000, "reference": "GH-1"}, "t-1")
    before = counts()
    expires = (clock.today() + timedelta(days=30)).isoformat()
    good = {"user_id": world.staff.id, "amount_fen": 5_000, "expires_on": expires, "purpose": "慰问"}
    for n, (change, needle) in enumerate((
            ({"user_id": outsider.id}, "请选择本单位的职工"),
            ({"amount_fen": 10_001}, "不够发放"),
            ({"amount_fen": 0}, "amount_fen"),
            ({"amount_fen": -100}, "amount_fen"),
            ({"amount_fen": 12.5}, "amount_fen"),
            ({"expires_on": (clock.today() - timedelta(days=1)).isoformat()}, "已经过去"))):
        status, answer = post(api, "/welfare/grants", {**good, **change}, f"bad-{n}")
        assert status == 422 and needle in str(answer), (change, answer)
    assert counts() == before


def test_the_api_document_describes_the_welfare_operations(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/welfare/topups", "/api/v1/welfare/grants"):
        names = [p.get("name") for p in spec["paths"][path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names
    assert "get" in spec["paths"]["/api/v1/welfare/balance"]

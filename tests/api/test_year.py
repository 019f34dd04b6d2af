"""A whole year through the API alone: intake, staff orders paid offline, a company's monthly contract
orders accepted (one with a shortfall), a refund and a payout — then the ledger and the summary, to the fen."""
from shop.contracts import services as contracts
from shop.extensions import db

EGG, PEANUT, BROOM = 120, 900, 850  # unit prices in fen


def _contract(world):
    contract = contracts.save_contract(None, contracts.ContractData(
        number="JL-2026-01", organization_id=world.jinlv.id, product_id=world.brooms.id, unit_price_fen=BROOM,
        monthly_quantity=100, first_month="2026-01", last_month="2026-12", cap_fen=900_000,
        delivery_address="劲旅环卫 车队", delivery_day=5, payment_terms_days=30, status="active"),
        user_id=world.admin.id)
    db.session.commit()
    return contract


def _paid_and_handed_over(api, order_id, reference):
    status, body = api.post("manager", f"/orders/{order_id}/offline-payment", {"reference": reference})
    assert status == 200 and body["status"] == "paid", body
    assert api.post("manager", f"/orders/{order_id}/status", {"status": "packed"})[1]["status"] == "packed"
    status, body = api.post("manager", f"/orders/{order_id}/status", {"status": "handed_over"})
    assert status == 200 and body["status"] == "handed_over", body


def test_a_year_through_the_api(api, world):
    contract = _contract(world)

    # --- intake: the service point's desk app ---------------------------------------------------------
    lots = {}
    for key, body in {
        "h1_eggs": {"product_id": world.eggs.id, "household_id": world.h1.id, "quantity": 200},
        "h3_peanuts": {"product_id": world.peanuts.id, "household_id": world.h3.id, "quantity": 100,
                       "best_before": "2099-12-31"},
        "brooms_jan": {"product_id": world.brooms.id, "enterprise_id": world.enterprise.id, "quantity": 600},
        "brooms_jun": {"product_id": world.brooms.id, "enterprise_id": world.enterprise.id, "quantity": 600},
    }.items():
        status, lot = api.post("manager", "/lots", body)
        assert status == 201, lot
        assert lot["remaining"] == body["quantity"] and lot["product_id"] == body["product_id"]
        lots[key] = lot["id"]
    status, lot = api.get("manager", f"/lots/{lots['h3_peanuts']}")
    assert (status, lot["quantity"], lot["household_id"], lot["best_before"]) == (200, 100, world.h3.id, "2099-12-31")

    # --- every month: staff buy, the companies' standing order is delivered and accepted ----------------
    generated = {}
    for month in range(1, 13):
        # staff01 buys 10 eggs (from the household paired with them), staff02 5 jin of peanuts
        status, order = api.post("staff01", "/orders", {"lines": [{"product_id": world.eggs.id, "quantity": 10}],
                                                        "pickup_point_id": world.point.id, "payment_method": "offline"})
        assert status == 201 and order["status"] == "pending_payment" and order["total_fen"] == 10 * EGG, order
        assert order["lines"][0]["allocations"][0]["household_id"] == world.h1.id
        _paid_and_handed_over(api, order["id"], f"R{month:02d}A")
        status, order = api.post("staff02", "/orders", {"lines": [{"product_id": world.peanuts.id, "quantity": 5}],
                                                        "payment_method": "offline"})  # to the workplace
        assert status == 201 and order["total_fen"] == 5 * PEANUT, order
        _paid_and_handed_over(api, order["id"], f"R{month:02d}B")

        status, run = api.post("admin", f"/contracts/{contract.id}/orders", {"month": f"2026-{month:02d}"})
        if month == 12:
            assert status == 409 and run["error"]["code"] == "contract_cap_reached", run
            continue
        assert status == 201 and run["created"] is True, run
        generated[month] = run
        status, order = api.post("manager", f"/orders/{run['order_id']}/status", {"status": "delivered"})
        assert status == 200 and order["status"] == "delivered", order
        line = order["lines"][0]
        accepted = line["quantity"] - 5 if month == 3 else line["quantity"]
        status, order = api.post("buyer-jinlv", f"/orders/{run['order_id']}/acceptance", {
            "lines": [{"line_id": line["id"], "accepted_quantity": accepted}],
            "note": "5 把断柄，拒收" if month == 3 else None})
        assert status == 200 and order["status"] == "accepted", order
        assert order["total_fen"] == accepted * BROOM

    # month 11 was trimmed to what the cap still allowed: 900,000 − (9 × 100 + 95) × 850 = 54,250 → 63 brooms
    assert generated[11]["trimmed"] is True
    status, order = api.get("buyer-jinlv", f"/orders/{generated[11]['order_id']}")
    assert order["lines"][0]["quantity"] == 63
    # asking again for a month already generated changes nothing
    status, again = api.post("admin", f"/contracts/{contract.id}/orders", {"month": "2026-05"})
    assert (status, again["created"], again["order_id"]) == (200, False, generated[5]["order_id"])

    status, body = api.get("buyer-jinlv", f"/contracts/{contract.id}")
    brooms_sold = 9 * 100 + 95 + 63
    assert status == 200
    assert (body["accepted_quantity"], body["accepted_fen"], body["remaining_fen"]) == (
        brooms_sold, brooms_sold * BROOM, 900_000 - brooms_sold * BROOM)

    # --- a refund: 2 eggs of staff01's March order were broken; they go back to no shelf ----------------
    status, mine = api.get("staff01", "/orders", per_page=100)
    assert status == 200 and mine["total"] == 12
    march = sorted(mine["items"], key=lambda o: o["id"])[2]
    status, refund = api.post("manager", f"/orders/{march['id']}/refunds",
                              {"lines": [{"line_id": march["lines"][0]["id"], "quantity": 2}], "restock": False})
    assert status == 201 and refund["amount_fen"] == 2 * EGG, refund
    after = api.get("staff01", f"/orders/{march['id']}")[1]
    assert (after["status"], after["payment_status"]) == ("handed_over", "partially_refunded")

    # --- a payout to household 1, and one that would pay more than it is owed ---------------------------
    earned_h1 = 12 * 10 * EGG
    owed_h1 = earned_h1 - 2 * EGG
    status, payout = api.post("manager", f"/households/{world.h1.id}/payouts",
                              {"amount_fen": 10_000, "method": "cash", "reference": "付款单 2026-001"})
    assert status == 201 and payout["balance_fen"] == owed_h1 - 10_000, payout
    status, refused = api.post("manager", f"/households/{world.h1.id}/payouts",
                               {"amount_fen": owed_h1 - 10_000 + 1, "method": "cash", "reference": "付款单 2026-002"})
    assert status == 409 and refused["error"]["code"] == "exceeds_balance", refused

    # --- the ledger, to the fen -----------------------------------------------------------------------
    status, ledger = api.get("manager", f"/households/{world.h1.id}/ledger", **{"from": "2026-01-01",
                                                                                 "to": "2026-12-31"})
    assert status == 200
    assert (ledger["earned_fen"], ledger["refunded_fen"], ledger["paid_out_fen"], ledger["balance_fen"]) == (
        earned_h1, 2 * EGG, 10_000, owed_h1 - 10_000)
    assert sum(e["amount_fen"] for e in ledger["entries"]) == ledger["closing_fen"] - ledger["opening_fen"]
    assert [e["kind"] for e in ledger["entries"]].count("sale") == 12
    status, ledger_h3 = api.get("admin", f"/households/{world.h3.id}/ledger")
    assert ledger_h3["earned_fen"] == ledger_h3["balance_fen"] == 12 * 5 * PEANUT

    # --- the year's summary, to the fen ---------------------------------------------------------------
    status, summary = api.get("admin", "/reports/summary", **{"from": "2026-01-01", "to": "2026-12-31"})
    assert status == 200, summary
    retail = 12 * 10 * EGG - 2 * EGG + 12 * 5 * PEANUT
    assert summary["by_channel"] == {"retail_fen": retail, "contract_fen": brooms_sold * BROOM, "bulk_fen": 0,
                                     "point_fen": 0}
    assert summary["total_fen"] == retail + brooms_sold * BROOM
    assert summary["households_benefited"] == 2 and summary["households_total"] == 3
    assert (summary["staff_buyers"], summary["staff_total"]) == (2, 2)
    by_category = {row["category"]: (row["quantity"], row["amount_fen"]) for row in summary["by_category"]}
    assert by_category == {"eggs": (118, 118 * EGG), "peanuts": (60, 60 * PEANUT),
                           "brooms": (brooms_sold, brooms_sold * BROOM)}
    assert sum(m["amount_fen"] for m in summary["by_month"]) == summary["total_fen"]

    # the stock agrees: nothing oversold, refused brooms still with the service point to decide on
    status, jan = api.get("manager", f"/lots/{lots['brooms_jan']}")
    status, jun = api.get("manager", f"/lots/{lots['brooms_jun']}")
    assert jan["remaining"] + jun["remaining"] == 1200 - brooms_sold - 5

"""Units support villages: their staff are paired only there; a household moves with its history; a unit with
history is not deleted."""
from sqlalchemy import func, select

from shop.accounts.models import Organization
from shop.extensions import db
from shop.producers import services as producers
from shop.producers.models import Household, HouseholdMove, Pairing, SupportedVillage
from tests import factories
from tests.conftest import text_of


def _snapshot():
    return (db.session.scalar(select(func.count(Pairing.id))), db.session.scalar(select(func.count(HouseholdMove.id))),
            db.session.scalar(select(func.count(SupportedVillage.id))),
            db.session.scalar(select(func.count(Organization.id))),
            tuple(db.session.execute(select(Household.id, Household.village_id).order_by(Household.id)).all()))


def _second_village(world):
    village = producers.create_village("东岭村", "XX镇")
    household = factories.household(village, "DLC001", "赵小满")
    db.session.commit()
    return village, household


def test_a_pairing_outside_the_units_villages_is_refused(client, world):
    village, household = _second_village(world)
    before = _snapshot()
    client.login("admin")
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "DLC001"})
    assert "县XX局不帮扶东岭村" in text_of(response)
    assert _snapshot() == before
    # the county adds 东岭村 to the bureau's villages: now the pairing is made
    response = client.post(f"/admin/organizations/{world.bureau.id}",
                           data={"name": "县XX局", "villages": [str(world.village.id), str(village.id)]})
    assert response.status_code == 302
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "DLC001"})
    assert response.status_code == 302
    assert db.session.scalar(select(Pairing.user_id).where(Pairing.household_id == household.id)) == world.staff2.id
    # and 东岭村 cannot be dropped while the bureau's staff are paired there
    before = _snapshot()
    response = client.post(f"/admin/organizations/{world.bureau.id}",
                           data={"name": "县XX局", "villages": [str(world.village.id)]})
    assert "还包保着东岭村的 1 户" in text_of(response)
    assert _snapshot() == before


def test_a_coordinator_pairs_their_own_staff_only(client, world):
    other = factories.organization("县YY委", "government")
    producers.set_supported_villages(other.id, {world.village.id})
    outsider = factories.user("staff-yy", "staff", other, "欧阳委员")
    producers.pair(outsider, world.h2)
    db.session.commit()
    client.login("coordinator")
    page = text_of(client.get("/admin/pairings"))
    assert "XXC001" in page and "欧阳委员" not in page and "XXC002" not in page
    before = _snapshot()
    # another unit's staff member is not one of the choices; another unit's household is held, unnamed
    response = client.post("/admin/pairings", data={"user_id": str(outsider.id), "household_code": "XXC003"})
    assert response.status_code != 302 and _snapshot() == before
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "XXC002"})
    assert "已由其他单位的责任人包保" in text_of(response) and "欧阳委员" not in text_of(response)
    assert _snapshot() == before
    other_pairing = db.session.scalar(select(Pairing.id).where(Pairing.user_id == outsider.id))
    assert client.post(f"/admin/pairings/{other_pairing}/delete", data={}).status_code == 404
    assert _snapshot() == before
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "XXC003"})
    assert response.status_code == 302
    assert db.session.scalar(select(Pairing.user_id).where(Pairing.household_id == world.h3.id)) == world.staff2.id


def test_a_household_moves_with_its_history_or_not_at_all(client, world):
    village, _household = _second_village(world)
    client.login("admin")

    def move(household, to):
        return client.post(f"/manage/households/{household.id}/edit", data={
            "code": household.code, "head_name": household.head_name, "members": str(household.members),
            "status": household.status, "risk": "", "phone": household.phone or "", "village_id": str(to.id),
            "note": ""})

    # XXC001 still has eggs at XX村's point, and its staff member's unit does not support 东岭村
    before = _snapshot()
    assert "还有 1 批库存未售完" in text_of(move(world.h1, village))
    assert _snapshot() == before
    # XXC003 has no stock; paired with the bureau's staff, the bureau not supporting 东岭村: refused
    producers.pair(world.staff2, world.h3)
    db.session.commit()
    before = _snapshot()
    assert "其单位不帮扶东岭村" in text_of(move(world.h3, village))
    assert _snapshot() == before
    # once the bureau supports 东岭村 the move is made, and the household's page lists it
    producers.set_supported_villages(world.bureau.id, {world.village.id, village.id})
    db.session.commit()
    assert move(world.h3, village).status_code == 302
    assert db.session.get(Household, world.h3.id).village_id == village.id
    page = text_of(client.get(f"/manage/households/{world.h3.id}"))
    assert "迁户记录" in page and "从XX村迁到东岭村" in page


def test_a_unit_with_history_is_not_deleted(client, world):
    client.login("admin")
    before = _snapshot()
    response = client.post(f"/admin/organizations/{world.bureau.id}/delete", data={}, follow_redirects=True)
    assert "不能删除" in text_of(response) and "个用户" in text_of(response)
    assert _snapshot() == before
    assert "删除单位</button>" not in client.get(f"/admin/organizations/{world.bureau.id}").get_data(as_text=True)
    # a unit added by mistake, with nothing behind it, is removed
    mistake = factories.organization("县ZZ办", "government")
    producers.set_supported_villages(mistake.id, {world.village.id})
    mistake_id = mistake.id
    db.session.commit()
    response = client.post(f"/admin/organizations/{mistake_id}/delete", data={}, follow_redirects=True)
    assert "已删除单位 县ZZ办" in text_of(response)
    db.session.expire_all()
    assert db.session.scalar(select(Organization.id).where(Organization.id == mistake_id)) is None
    assert db.session.scalar(select(func.count()).select_from(SupportedVillage)
                             .where(SupportedVillage.organization_id == mistake_id)) == 0

"""Manager pages for households, enterprises and villages; masking outside them."""
from sqlalchemy import func, select

from shop.extensions import db
from shop.producers.models import Enterprise, Household, Village
from tests.conftest import text_of


def household_count() -> int:
    return db.session.scalar(select(func.count(Household.id)))


def form(world, **overrides):
    data = {"code": "XXC010", "head_name": "周春花", "members": "4", "status": "alleviated", "risk": "",
            "phone": "13700001234", "village_id": str(world.village.id), "note": ""}
    data.update(overrides)
    return data


def test_manager_registers_a_household(client, world):
    client.login("manager")
    response = client.post("/manage/households/new", data=form(world))
    assert response.status_code == 302
    household = db.session.scalar(select(Household).where(Household.code == "XXC010"))
    assert household.head_name == "周春花" and household.members == 4 and household.risk_eliminated is None
    page = text_of(client.get(response.headers["Location"]))
    assert "周春花" in page and "13700001234" in page  # the back office sees it unmasked


def test_monitored_household_keeps_its_risk_state(client, world):
    client.login("manager")
    client.post("/manage/households/new", data=form(world, status="monitored", risk="eliminated"))
    household = db.session.scalar(select(Household).where(Household.code == "XXC010"))
    assert household.status == "monitored" and household.risk_eliminated is True


def test_bad_household_input_changes_nothing(client, world):
    client.login("manager")
    before = household_count()
    cases = [
        (form(world, code="XXC001"), "已存在"),
        (form(world, members="0"), None),
        (form(world, members="-3"), None),
        (form(world, members="two"), None),
        (form(world, head_name=""), None),
        (form(world, status="rich"), None),
        (form(world, phone="call me"), "电话号码格式不正确"),
        (form(world, village_id="999"), None),
        (form(world, code="has space"), "户编号"),
    ]
    for data, message in cases:
        response = client.post("/manage/households/new", data=data)
        assert response.status_code == 422, data
        if message:
            assert message in text_of(response), data
    assert household_count() == before


def test_edit_household(client, world):
    client.login("manager")
    response = client.post(f"/manage/households/{world.h2.id}/edit",
                           data=form(world, code="XXC002", head_name="张秀英", members="3", status="monitored", risk="eliminated"))
    assert response.status_code == 302
    db.session.refresh(world.h2)
    assert world.h2.members == 3 and world.h2.risk_eliminated is True
    # taking another household's code is refused
    response = client.post(f"/manage/households/{world.h2.id}/edit", data=form(world, code="XXC001"))
    assert "已存在" in text_of(response)
    db.session.refresh(world.h2)
    assert world.h2.code == "XXC002"


def test_search_by_name_or_code_and_filter_by_status(client, world):
    client.login("manager")
    page = text_of(client.get("/manage/households?q=李建"))
    assert "李建国" in page and "张秀英" not in page
    page = text_of(client.get("/manage/households?q=XXC00"))
    assert "李建国" in page and "张秀英" in page and "刘德明" in page
    page = text_of(client.get("/manage/households?status=monitored"))
    assert "张秀英" in page and "李建国" not in page and "风险未消除" in page


def test_staff_see_their_own_paired_households_in_full_and_nobody_elses(client, world):
    """The responsible staff member visits and calls their own households: full name, code and phone, linked
    from the menu and from /my; another staff member's households are not on it."""
    client.login("staff01")
    response = client.get("/my/households")
    page = text_of(response)
    assert "李建国" in page and "13812341234" in page and "XXC001" in page
    assert 'href="tel:13812341234"' in response.get_data(as_text=True)
    assert "张秀英" not in page  # not their household
    assert "/my/households" in client.get("/my").get_data(as_text=True)


def test_public_and_staff_pages_never_show_household_names(client, world):
    pages = ["/", f"/products/{world.eggs.id}"]
    for role in (None, "staff01", "buyer-jinlv"):
        if role:
            client.login(role)
        for url in pages:
            html = client.get(url).get_data(as_text=True)
            for h in (world.h1, world.h2, world.h3):
                assert h.head_name not in html
                assert not h.phone or h.phone not in html
        if role:
            client.logout()


def test_enterprises(client, world):
    client.login("manager")
    data = {"name": "XX县明侯故里食品有限责任公司", "kind": "company", "village_id": str(world.village.id),
            "contact_name": "", "phone": ""}
    assert client.post("/manage/enterprises/new", data=data).status_code == 302
    response = client.post("/manage/enterprises/new", data=data)
    assert "已存在" in text_of(response)
    assert db.session.scalar(select(func.count(Enterprise.id))) == 2
    assert "明侯故里" in text_of(client.get("/manage/enterprises"))


def test_villages(app, client, world):
    """The county adds villages; a village's manager sees only the villages they run and cannot add one."""
    client.login("admin")
    assert client.post("/manage/villages", data={"name": "YY村", "town": "XX镇"}).status_code == 302
    assert "已存在" in text_of(client.post("/manage/villages", data={"name": "YY村"}))
    assert "YY村" in text_of(client.get("/manage/villages"))
    client = app.test_client()
    client.login("manager")
    page = text_of(client.get("/manage/villages"))
    assert "XX村" in page and "YY村" not in page and "添加村" not in page
    assert client.post("/manage/villages", data={"name": "ZZ村"}).status_code == 403
    assert db.session.scalar(select(func.count(Village.id))) == 2


def test_pairings_page(client, world):
    from shop.producers.models import Pairing

    client.login("admin")
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "XXC002"})
    assert response.status_code == 302
    # a household has one responsible staff member
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "XXC001"})
    assert "已由" in text_of(response)
    response = client.post("/admin/pairings", data={"user_id": str(world.staff2.id), "household_code": "NOPE"})
    assert "未知的户编号" in text_of(response)
    assert db.session.scalar(select(func.count(Pairing.id))) == 2
    pairing = db.session.scalar(select(Pairing).where(Pairing.household_id == world.h2.id))
    assert client.post(f"/admin/pairings/{pairing.id}/delete", data={}).status_code == 302
    assert db.session.scalar(select(func.count(Pairing.id))) == 1


def test_a_refused_edit_stays_on_the_same_enterprise(client, world):
    from shop.producers.models import Enterprise

    other = Enterprise(name="XX村股份经济合作社", kind="collective", village=world.village)
    db.session.add(other)
    db.session.commit()
    client.login("manager")
    response = client.post(f"/manage/enterprises/{other.id}/edit", data={
        "name": world.enterprise.name, "kind": "collective", "village_id": str(world.village.id),
        "contact_name": "", "phone": ""})
    assert response.status_code == 422 and "已存在" in text_of(response)
    assert f'<h1>{other.name}</h1>' in response.get_data(as_text=True)  # still editing this one
    db.session.refresh(other)
    assert other.name == "XX村股份经济合作社"

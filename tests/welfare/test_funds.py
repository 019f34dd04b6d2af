"""A unit's welfare fund: topped up, granted to its members within what it holds and the yearly caps, one by one
or from a list (all or nothing), and what is left of a grant back in the fund when it expires."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop import clock
from shop.errors import ValidationFailed
from shop.extensions import db
from shop.ledger.models import Account
from shop.welfare import services as welfare
from shop.welfare.models import WelfareGrant, WelfareMovement
from tests import factories
from tests.conftest import text_of
from tests.orders.helpers import assert_books_clean, run_cli
from tests.races import race


def ask(user, fen, *, starts=None, expires=None, purpose="春节慰问"):
    today = clock.today()
    return welfare.GrantAsk(user, fen, starts or today, expires or today + timedelta(days=60), purpose)


@pytest.fixture
def fund(world):
    """The bureau's fund with ¥1,000 in it."""
    made = welfare.fund_of(world.bureau.id)
    welfare.top_up(made, 100_000, reference="GH-2027-001", user_id=world.coordinator.id)
    db.session.commit()
    return made


def grants() -> int:
    return db.session.scalar(select(func.count(WelfareGrant.id)))


def balances() -> list[tuple[str, int]]:
    return db.session.execute(select(Account.kind, Account.balance_fen).where(Account.fund_id.is_not(None))
                              .order_by(Account.kind)).all()


def test_a_grant_moves_money_from_the_fund_to_the_member(app, world, fund):
    made = welfare.grant(fund, ask(world.staff, 30_000), granted_by=world.coordinator.id)
    db.session.commit()
    f = welfare.figures(fund)
    assert (f.topped_up_fen, f.available_fen, f.granted_fen, f.unspent_fen) == (100_000, 70_000, 30_000, 30_000)
    assert made.remaining_fen == 30_000 and welfare.member_grants(world.staff.id) == [made]
    assert welfare.verify() == []
    assert_books_clean(app)


def test_bad_grants_are_refused_with_why_and_write_nothing(app, world, fund):
    outsider = factories.user("staff-yy", "staff", factories.organization("县YY委", "government"), "欧阳委员")
    db.session.commit()
    before = (grants(), balances())
    today = clock.today()
    refusals = [
        (ask(outsider, 1000), "不是本单位在职的职工"),
        (ask(world.buyer, 1000), "不是本单位在职的职工"),
        (ask(world.coordinator, 1000), "不是本单位在职的职工"),  # buys for the unit, on account: nothing to spend on
        (ask(world.staff, 100_001), "基金现有 ¥1,000.00，不够发放 ¥1,000.01"),
        (ask(world.staff, 0), "金额必须大于 0"),
        (ask(world.staff, -500), "金额必须大于 0"),
        (ask(world.staff, 1000, starts=today - timedelta(days=30), expires=today - timedelta(days=1)), "已经过去"),
        (ask(world.staff, 1000, starts=today + timedelta(days=9), expires=today + timedelta(days=3)), "不能早于"),
        (ask(world.staff, 1000, purpose=""), "请填写用途"),
    ]
    for wanted, message in refusals:
        with pytest.raises(ValidationFailed, match=message):
            welfare.grant(fund, wanted, granted_by=world.coordinator.id)
        db.session.rollback()
    assert (grants(), balances()) == before


def test_the_yearly_caps_count_every_grant_of_the_year(app, world, fund):
    app.config.update(SHOP_WELFARE_MEMBER_YEAR_CAP_FEN=50_000, SHOP_WELFARE_UNIT_YEAR_CAP_FEN=80_000)
    welfare.grant(fund, ask(world.staff, 30_000), granted_by=world.coordinator.id)
    with pytest.raises(ValidationFailed, match="每人每年 ¥500.00 的上限"):
        welfare.grant(fund, ask(world.staff, 20_001), granted_by=world.coordinator.id)
    welfare.grant(fund, ask(world.staff, 20_000), granted_by=world.coordinator.id)
    welfare.grant(fund, ask(world.staff2, 30_000), granted_by=world.coordinator.id)
    third = factories.user("staff03", "staff", world.bureau, "李三")
    with pytest.raises(ValidationFailed, match="每单位每年 ¥800.00 的上限"):
        welfare.grant(fund, ask(third, 1), granted_by=world.coordinator.id)


def test_the_coordinator_tops_up_and_grants_on_the_page_and_bad_input_is_refused(app, client, world, fund):
    client.login("coordinator")
    page = text_of(client.get("/unit/welfare"))
    assert "¥1,000.00" in page and "工会经费" in page
    client.post("/unit/welfare/topup", data={"amount": "200", "reference": "GH-2027-002"})
    today = clock.today()
    form = {"user_id": str(world.staff.id), "amount": "300", "starts_on": today.isoformat(),
            "expires_on": (today + timedelta(days=30)).isoformat(), "purpose": "春节慰问"}
    assert client.post("/unit/welfare/grants", data=form).status_code == 302
    for bad, message in (({"amount": "12.345"}, "最多两位小数"), ({"amount": "-3"}, "请输入金额"),
                         ({"user_id": str(world.buyer.id)}, "请选择本单位的职工")):  # another unit's: not found
        response = client.post("/unit/welfare/grants", data={**form, **bad})
        assert response.status_code == 422 and message in text_of(response)
    page = text_of(client.get("/unit/welfare"))
    assert "¥900.00" in page and "康本树" in page  # ¥1,200 in, ¥300 granted
    assert grants() == 1
    client.logout()
    client.login("staff01")
    assert client.get("/unit/welfare").status_code == 403


def test_a_list_is_granted_whole_or_not_at_all(app, client, world, fund):
    today = clock.today()
    expires = (today + timedelta(days=40)).isoformat()
    bad = (f"用户名,金额,到期日期,用途\nstaff01,300,{expires},端午\nbuyer-jinlv,300,{expires},端午\n"
           f"staff02,abc,{expires},端午\n")
    client.login("coordinator")
    response = client.post("/unit/welfare/grants/import",
                           data={"file": (__import__("io").BytesIO(bad.encode()), "grants.csv")},
                           content_type="multipart/form-data")
    page = text_of(response)
    assert response.status_code == 422 and "第 2 行" not in page
    assert "第 3 行：未知的用户名“buyer-jinlv”" in page  # another unit's people are unknown to the coordinator
    assert "第 4 行：金额必须大于 0" in page
    assert grants() == 0
    # together more than the fund holds, though each row alone fits
    too_much = f"用户名,金额,到期日期,用途\nstaff01,600,{expires},端午\nstaff02,600,{expires},端午\n"
    response = client.post("/unit/welfare/grants/import",
                           data={"file": (__import__("io").BytesIO(too_much.encode()), "grants.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "不够发放" in text_of(response) and grants() == 0
    good = f"用户名,金额,到期日期,用途\nstaff01,300,{expires},端午\nstaff02,300,{expires},端午\n"
    response = client.post("/unit/welfare/grants/import",
                           data={"file": (__import__("io").BytesIO(good.encode()), "grants.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and grants() == 2
    assert welfare.figures(fund).available_fen == 40_000
    assert_books_clean(app)


def test_expiry_returns_what_is_left_to_the_fund_once(app, world, fund):
    today = clock.today()
    grant = welfare.grant(fund, ask(world.staff, 30_000, starts=today, expires=today), granted_by=world.coordinator.id)
    db.session.commit()
    assert welfare.expire_grants(today) == []  # usable through its last day
    code, output = run_cli(app, "welfare", "expire")
    assert code == 0 and "expired 0 grants" in output
    assert welfare.expire_grants(today + timedelta(days=1)) == [grant.id]
    db.session.commit()
    assert welfare.expire_grants(today + timedelta(days=1)) == []  # once
    db.session.refresh(grant)
    f = welfare.figures(fund)
    assert (grant.remaining_fen, f.available_fen, f.unspent_fen, f.expired_fen) == (0, 100_000, 0, 30_000)
    assert db.session.scalar(select(func.count(WelfareMovement.id)).where(WelfareMovement.kind == "expire")) == 1
    assert welfare.verify() == []
    assert_books_clean(app)


@pytest.mark.postgres_only
def test_twelve_grants_at_once_never_exceed_the_fund_or_the_cap(app, world, fund):
    """¥1,000 in the fund: twelve coordinators grant ¥100 each to twelve members at once — ten are granted; then,
    with a cap of ¥300 a member, twelve grants of ¥100 to one member at once — three are granted."""
    members = [factories.user(f"member{n:02d}", "staff", world.bureau, f"职工{n}") for n in range(12)]
    db.session.commit()
    ids = [m.id for m in members]

    def work(n: int):
        from shop.accounts.models import User

        welfare.grant(welfare.fund_of(world.bureau.id), ask(db.session.get(User, ids[n]), 10_000),
                      granted_by=world.coordinator.id)

    outcomes = race(app, 12, work)
    assert sorted(outcomes) == ["invalid"] * 2 + ["ok"] * 10, outcomes
    db.session.expire_all()
    assert welfare.figures(fund).available_fen == 0 and grants() == 10
    welfare.top_up(fund, 100_000, reference="GH-2027-003", user_id=world.coordinator.id)
    db.session.commit()
    app.config.update(SHOP_WELFARE_MEMBER_YEAR_CAP_FEN=30_000)
    granted = set(db.session.scalars(select(WelfareGrant.user_id)))
    one = next(i for i in ids if i not in granted)  # one of the two the fund could not reach

    def same_member(_n: int):
        from shop.accounts.models import User

        welfare.grant(welfare.fund_of(world.bureau.id), ask(db.session.get(User, one), 10_000),
                      granted_by=world.coordinator.id)

    outcomes = race(app, 12, same_member)
    assert sorted(outcomes) == ["invalid"] * 9 + ["ok"] * 3, outcomes
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(WelfareGrant.amount_fen)).where(WelfareGrant.user_id == one)) == 30_000
    assert welfare.verify() == []
    assert_books_clean(app)


def test_a_member_sees_their_grants_balance_and_expiry_on_my_page(app, client, world, fund):
    today = clock.today()
    welfare.grant(fund, ask(world.staff, 30_000, expires=today + timedelta(days=20)), granted_by=world.coordinator.id)
    welfare.grant(fund, ask(world.staff, 5_000, purpose="端午慰问", starts=today + timedelta(days=5),
                            expires=today + timedelta(days=9)), granted_by=world.coordinator.id)
    welfare.grant(fund, ask(world.staff2, 8_000), granted_by=world.coordinator.id)
    db.session.commit()
    client.login("staff01")
    page = text_of(client.get("/my"))
    assert "我的工会福利 ¥350.00" in page
    assert f"春节慰问 ¥300.00，{(today + timedelta(days=20)).isoformat()} 到期" in page
    assert f"（{(today + timedelta(days=5)).isoformat()} 起可用）" in page
    assert "¥80.00" not in page  # another member's

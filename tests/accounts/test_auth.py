"""Logging in and out, password changes, CSRF, cookies."""
from sqlalchemy import select

from shop.accounts.models import User
from shop.extensions import db
from tests.conftest import text_of
from tests.factories import PASSWORD


def test_login_takes_each_role_home(client, world):
    homes = {"staff01": "/my", "buyer-jinlv": "/company", "manager": "/manage/today", "admin": "/admin/report"}
    for username, home in homes.items():
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302 and response.headers["Location"].endswith(home)
        client.logout()


def test_login_is_case_insensitive_for_usernames(client, world):
    assert client.post("/login", data={"username": "Staff01", "password": PASSWORD}).status_code == 302


def test_wrong_password_says_so_and_logs_nobody_in(client, world):
    response = client.post("/login", data={"username": "staff01", "password": "wrong-password"})
    assert response.status_code == 422
    assert "用户名或密码不正确" in text_of(response)
    assert client.get("/my/households").status_code == 302


def test_unknown_user_gets_the_same_message(client, world):
    response = client.post("/login", data={"username": "nobody", "password": "whatever-at-all"})
    assert "用户名或密码不正确" in text_of(response)


def test_inactive_user_cannot_log_in(client, world):
    world.staff.active = False
    db.session.commit()
    response = client.post("/login", data={"username": "staff01", "password": PASSWORD})
    assert response.status_code == 422 and "用户名或密码不正确" in text_of(response)


def test_deactivating_a_user_ends_their_session(app, client, world):
    client.login("staff01")
    assert client.get("/my/households").status_code == 200
    world.staff.active = False
    db.session.commit()
    assert client.get("/my/households").status_code == 302


def test_login_redirects_back_to_the_page_asked_for(client, world):
    response = client.get("/manage/households")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.post("/login?next=/manage/households", data={"username": "manager", "password": PASSWORD})
    assert response.headers["Location"].endswith("/manage/households")


def test_login_never_redirects_off_site(client, world):
    response = client.post("/login?next=//evil.example/x", data={"username": "manager", "password": PASSWORD})
    assert "evil.example" not in response.headers["Location"]


def test_logout_ends_the_session(client, world):
    client.login("staff01")
    assert client.get("/my/households").status_code == 200
    assert client.logout().status_code == 302
    assert client.get("/my/households").status_code == 302


def test_logout_needs_post(client, world):
    client.login("staff01")
    assert client.get("/logout").status_code == 405
    assert client.get("/my/households").status_code == 200


def test_password_change_ends_other_sessions(app, world):
    phone, laptop = app.test_client(), app.test_client()
    phone.login("staff01")
    laptop.login("staff01")
    response = laptop.post("/account/password", data={"current_password": PASSWORD, "new_password": "a-much-longer-one",
                                                      "confirm": "a-much-longer-one"})
    assert response.status_code == 302
    assert laptop.get("/my/households").status_code == 200  # this session goes on
    assert phone.get("/my/households").status_code == 302   # the other one has ended
    assert phone.post("/login", data={"username": "staff01", "password": "a-much-longer-one"}).status_code == 302


def test_password_change_rules(client, world):
    client.login("staff01")
    before = world.staff.password_hash
    response = client.post("/account/password", data={"current_password": "not-it-at-all", "new_password": "a-much-longer-one",
                                                       "confirm": "a-much-longer-one"})
    assert "当前密码不正确" in text_of(response)
    response = client.post("/account/password", data={"current_password": PASSWORD, "new_password": "short",
                                                       "confirm": "short"})
    assert response.status_code == 422
    response = client.post("/account/password", data={"current_password": PASSWORD, "new_password": "a-much-longer-one",
                                                       "confirm": "another-long-one"})
    assert "两次输入的密码不一致" in text_of(response)
    db.session.expire_all()
    assert db.session.get(User, world.staff.id).password_hash == before


def test_post_without_csrf_token_is_refused_and_changes_nothing(client, world):
    client.login("manager")
    response = client.post("/manage/villages", data={"name": "新村"}, csrf=False)
    assert response.status_code == 400
    assert "表单已过期" in text_of(response)
    response = client.post("/manage/villages", data={"name": "新村", "csrf_token": "forged"}, csrf=False)
    assert response.status_code == 400
    from shop.producers.models import Village

    assert db.session.scalar(select(Village).where(Village.name == "新村")) is None


def test_login_form_needs_csrf_too(client, world):
    response = client.post("/login", data={"username": "staff01", "password": PASSWORD}, csrf=False)
    assert response.status_code == 400


def test_session_cookie_flags(client, world):
    response = client.post("/login", data={"username": "staff01", "password": PASSWORD})
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_when_https_is_configured(app, world):
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    response = client.post("/login", data={"username": "staff01", "password": PASSWORD}, base_url="https://shop.test")
    assert "Secure" in response.headers.get("Set-Cookie")


def test_passwords_are_stored_hashed_with_scrypt(world):
    assert world.staff.password_hash.startswith("scrypt:")
    assert PASSWORD not in world.staff.password_hash


def test_admin_creates_and_edits_users(client, world):
    client.login("admin")
    response = client.post("/admin/users/new", data={
        "username": "staff03", "display_name": "赵立新", "role": "staff", "organization_id": str(world.bureau.id),
        "password": "long-enough-pw", "active": "y"})
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.username == "staff03"))
    assert user.role == "staff" and user.organization_id == world.bureau.id
    # a company buyer must belong to a company
    response = client.post("/admin/users/new", data={
        "username": "buyer-x", "display_name": "X", "role": "company", "organization_id": str(world.bureau.id),
        "password": "long-enough-pw", "active": "y"})
    assert "企业采购员必须属于一家企业" in text_of(response)
    assert db.session.scalar(select(User).where(User.username == "buyer-x")) is None
    # duplicate username
    response = client.post("/admin/users/new", data={
        "username": "STAFF03", "display_name": "X", "role": "staff", "organization_id": str(world.bureau.id),
        "password": "long-enough-pw"})
    assert "已被使用" in text_of(response)
    # deactivate
    response = client.post(f"/admin/users/{user.id}/edit", data={
        "username": "ignored", "display_name": "赵立新", "role": "staff", "organization_id": str(world.bureau.id)})
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.active is False and user.username == "staff03"


def test_admin_adds_an_organization(client, world):
    from shop.accounts.models import Organization

    client.login("admin")
    assert client.post("/admin/organizations", data={"name": "县YY局", "kind": "government"}).status_code == 302
    response = client.post("/admin/organizations", data={"name": "县YY局", "kind": "government"})
    assert "已存在" in text_of(response)
    assert len(db.session.scalars(select(Organization).where(Organization.name == "县YY局")).all()) == 1


def test_a_copied_session_cookie_is_refused_after_logout(app, client, world):
    client.login("staff01")
    assert client.get("/my/households").status_code == 200
    cookie = client.get_cookie("session", domain="shop.test").value
    client.logout()
    thief = app.test_client()
    thief.set_cookie("session", cookie, domain="shop.test")
    assert thief.get("/my/households").status_code == 302  # the login behind the cookie has ended


def test_a_session_expires_after_its_lifetime(client, world):
    from sqlalchemy import update

    from shop.accounts.models import LoginSession
    from shop.models_base import utcnow

    client.login("staff01")
    db.session.execute(update(LoginSession).values(expires_at=utcnow()))
    db.session.commit()
    assert client.get("/my/households").status_code == 302


def test_each_login_is_recorded_on_the_server(client, world):
    from shop.accounts.models import LoginSession

    client.login("staff01")
    row = db.session.scalars(select(LoginSession)).one()
    assert row.user_id == world.staff.id and row.revoked_at is None and len(row.token_hash) == 64
    client.logout()
    db.session.refresh(row)
    assert row.revoked_at is not None


def _post(client, username, password, address="127.0.0.1"):
    return client.post("/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_one_address_failing_for_a_user_is_stopped_but_never_the_right_password_from_elsewhere(app, client, world):
    """Ten wrong passwords for the coordinator from one address stop that address for that user — and only it:
    the right password from another address logs in at once (nobody can lock anyone out)."""
    app.config["SHOP_LOGIN_LIMIT_USER_ADDRESS"] = "3 per 15 minutes"
    for _ in range(3):
        assert _post(client, "admin", "guess-guess-guess", "203.0.113.9").status_code == 422
    refused = _post(client, "admin", PASSWORD, "203.0.113.9")
    assert refused.status_code == 429 and "这台设备上密码错误的次数过多" in text_of(refused)
    assert int(refused.headers["Retry-After"]) > 0
    assert _post(client, "admin", PASSWORD, "198.51.100.7").status_code == 302
    client.logout()
    # the attacker's address may still try other usernames (the address limit is its own)
    assert _post(client, "staff02", PASSWORD, "203.0.113.9").status_code == 302


def test_an_address_over_its_limit_has_no_password_checked(app, client, world):
    """Spraying many usernames from one address: once the address is over its limit nothing more is checked —
    not even a correct password from it; other addresses are untouched."""
    from shop.accounts import services as accounts

    app.config["SHOP_LOGIN_LIMIT_ADDRESS"] = "4 per 15 minutes"
    checks = []
    real = accounts.check_password_hash
    accounts.check_password_hash = lambda stored, password: checks.append(1) or real(stored, password)
    try:
        statuses = [_post(client, name, "guess-guess-guess", "203.0.113.66").status_code
                    for name in ("staff01", "staff02", "manager", "admin", "buyer-jinlv", "nobody")]
        assert statuses == [422] * 4 + [429, 429]
        assert len(checks) == 4
        assert _post(client, "staff02", PASSWORD, "203.0.113.66").status_code == 429
        assert len(checks) == 4
        assert _post(client, "staff02", PASSWORD, "198.51.100.7").status_code == 302
    finally:
        accounts.check_password_hash = real


def test_guessing_one_user_from_many_addresses_is_slowed_and_the_user_and_admins_are_told(app, client, world):
    """Past the per-user limit each further failure doubles a wait that addresses which failed for the user must
    sit out; a fresh address with the right password is never made to wait. The user and the admins are told
    once."""
    from shop.notifications.models import Notification

    app.config["SHOP_LOGIN_LIMIT_USER"] = "3 per 15 minutes"
    for n in range(3):
        assert _post(client, "staff01", "guess-guess-guess", f"203.0.113.{n + 1}").status_code == 422
    slowed = _post(client, "staff01", "guess-guess-guess", "203.0.113.1")
    assert slowed.status_code == 429 and "秒后再试" in text_of(slowed)
    assert 1 <= int(slowed.headers["Retry-After"]) <= 2
    told = db.session.scalars(select(Notification).where(Notification.event == "login_failures")).all()
    assert sorted(n.user_id for n in told) == sorted([world.staff.id, world.admin.id])
    assert "staff01" in told[0].title and "3" in told[0].title
    # a fourth address fails too: the wait doubles, and nobody is told again
    assert _post(client, "staff01", "guess-guess-guess", "203.0.113.4").status_code == 422
    assert db.session.scalar(select(db.func.count(Notification.id)).where(
        Notification.event == "login_failures")) == 2
    assert _post(client, "staff01", PASSWORD, "198.51.100.7").status_code == 302


def test_simultaneous_wrong_passwords_cost_at_most_the_limit_in_password_checks(app, world):
    """Forty wrong passwords for one user from one address at the same instant: the attempt is counted before
    the password is checked, one slot each, so at most the limit's number of password checks happen."""
    import threading

    from shop.accounts import services as accounts

    app.config["SHOP_LOGIN_LIMIT_USER_ADDRESS"] = "10 per 15 minutes"
    app.config["SHOP_LOGIN_LIMIT_USER"] = "100 per 15 minutes"
    checks, lock = [], threading.Lock()
    real = accounts.check_password_hash

    def counted(stored, password):
        with lock:
            checks.append(1)
        return real(stored, password)

    accounts.check_password_hash = counted
    statuses, start = [], threading.Barrier(40)

    def attempt():
        with app.app_context():
            start.wait()
            response = app.test_client().post("/login", data={"username": "staff01", "password": "wrong-wrong-wrong"})
            statuses.append(response.status_code)

    try:
        threads = [threading.Thread(target=attempt) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        accounts.check_password_hash = real
    assert sorted(set(statuses)) == [422, 429] and statuses.count(422) == 10
    assert len(checks) == 10


def test_successful_logins_do_not_count(app, client, world):
    app.config["SHOP_LOGIN_LIMIT_USER"] = "2 per 15 minutes"
    for _ in range(4):
        assert client.post("/login", data={"username": "staff01", "password": PASSWORD}).status_code == 302
        client.logout()

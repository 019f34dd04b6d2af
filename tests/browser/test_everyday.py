"""Everyday use on a 390 × 844 phone, in a real browser: quantities that stick, a total always in view, and a
paged, searched order list."""
import re

from playwright.sync_api import expect

from sqlalchemy import select

from shop.extensions import db
from shop.orders import services as orders
from shop.orders.models import Order
from shop.payments import services as payments
from tests.browser.test_journeys import PHONE, Person, browser, live  # noqa: F401 - the journeys' fixtures
from tests.factories import order as place


def test_a_quantity_changed_in_the_cart_is_what_is_ordered(live, browser, world, artifacts_dir):  # noqa: F811
    staff = Person(browser, live, "staff01", artifacts_dir, "quantities")
    staff.go(f"/products/{world.eggs.id}")
    staff.page.click(".stepper .step[data-step='1']")  # the stepper: 1 → 2
    assert staff.page.input_value("input[name=quantity]") == "2"
    staff.page.click("text=加入购物车")
    staff.go("/cart")
    box = staff.page.locator(f"input[name=qty-{world.eggs.id}]")
    assert box.input_value() == "2"
    box.fill("10")  # typed, never tapped 更新数量: the cart saves it as it changes
    expect(staff.page.locator("[data-cart-total]")).to_contain_text("¥12.00")
    expect(staff.page.locator("[data-autosave-status]")).to_contain_text("已保存")
    total = staff.page.locator("[data-cart-total]").bounding_box()
    assert total["x"] >= 0 and total["x"] + total["width"] <= PHONE["width"]  # the total in view, no sideways scroll
    assert total["y"] + total["height"] <= PHONE["height"]
    assert staff.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    staff.shot("cart")
    staff.page.locator(f"input[name=qty-{world.eggs.id}]").fill("9")
    staff.page.click("button[name=place]")  # straight to checkout, before the change was saved
    assert "待付款" in staff.text()
    order = db.session.scalar(select(Order).order_by(Order.id.desc()))
    assert [(line.product_id, line.quantity) for line in order.lines] == [(world.eggs.id, 9)]
    assert "保留至" in staff.text()
    staff.shot("order")
    assert not staff.errors


def test_the_manager_pages_and_searches_the_delivered_orders(live, browser, world, artifacts_dir):  # noqa: F811
    from tests.factories import receive

    receive(world.h1, world.manager, (world.eggs, 200))
    placed = [place(world.staff2 if n == 5 else world.staff, world.point, (world.eggs, 1)) for n in range(60)]
    for order in placed:
        payments.confirm_offline_payment(order, reference=f"R-{order.id}", user_id=world.manager.id)
        orders.pack(order, user_id=world.manager.id)
        orders.hand_over(order, user_id=world.manager.id, to="本人")
    db.session.commit()
    manager = Person(browser, live, "manager", artifacts_dir, "lists")
    assert "今日工作" in manager.text()  # where the manager lands
    manager.go("/manage/orders?status=handed_over")
    text = manager.text()
    numbers = re.findall(r"\d{8}-\d{5}", text)
    assert numbers[0] == placed[-1].number and len(numbers) == 50 and "第 1 / 2 页，共 60 条" in text
    manager.shot("page-1")
    manager.page.click("text=下一页")
    assert re.findall(r"\d{8}-\d{5}", manager.text()) == [o.number for o in reversed(placed[:10])]
    manager.page.fill("input[name=q]", "王秀英")
    manager.page.click("text=查找")
    assert re.findall(r"\d{8}-\d{5}", manager.text()) == [placed[5].number]
    manager.shot("searched")
    assert not manager.errors


def test_a_household_opens_its_card_link_on_a_phone_and_sees_the_sale_just_made(live, browser, world,  # noqa: F811
                                                                                  artifacts_dir):
    from shop.producers import services as producers
    from shop.unit_of_work import run

    order = place(world.staff, world.point, (world.eggs, 6))
    payments.confirm_offline_payment(order, reference="R-card", user_id=world.manager.id)
    db.session.commit()
    card, pin = run(lambda: producers.issue_card(world.h1, user_id=world.manager.id))
    context = browser.new_context(viewport=PHONE, locale="zh-CN")  # the household's own phone: nobody logged in
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live}/h/{card.token}")  # what the card's QR code opens
    assert "李建国" not in page.inner_text("main")
    page.fill("input[name=pin]", pin)
    page.click("main form button[type=submit]")
    text = page.inner_text("main")
    assert "李建国" in text and "散养土鸡蛋" in text and "¥7.20" in text and "下次结算" in text
    box = page.locator("[data-income]").bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]
    page.screenshot(path=str(artifacts_dir / "household-01-own-page.png"), full_page=True)
    assert not errors
    context.close()

"""The catalog page, an order page, a household statement and the summary report make the same number
of SQL statements however much data there is (no N+1): counted at two data sizes."""
from sqlalchemy import event

from shop.extensions import db
from shop.payments import services as payments
from tests.factories import order as place, product, receive


def statements_for(app, client, url: str) -> int:
    """Statements the app runs to serve one GET (its own engine, whichever request context)."""
    seen = []

    def count(*_args):
        seen.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert response.status_code == 200, url
    return len(seen)


def grow(world, n: int, lines_per_order: int):
    """n more products in stock, n more suppliers' lots, n more paid orders with several lines each."""
    from tests.factories import household

    items = []
    for i in range(n):
        item = product(f"规模商品{world.grown + i}", price_fen=100 + i)
        supplier = household(world.village, f"G{world.grown + i:04d}", name="规模户", phone=None)
        receive(supplier, world.manager, (item, 50))
        receive(world.h1, world.manager, (item, 50))
        items.append(item)
    db.session.commit()
    for i in range(n):
        lines = [(items[(i + k) % len(items)], 2) for k in range(min(lines_per_order, len(items)))]
        made = place(world.staff, world.point, *lines)
        payments.confirm_offline_payment(made, reference=f"Q{world.grown + i}", user_id=world.manager.id)
    world.grown += n
    db.session.commit()
    return made


def test_page_query_counts_do_not_grow_with_the_data(app, client, world):
    world.grown = 0
    first = grow(world, 3, lines_per_order=2)
    def pages(order):
        return {"catalog": "/", "product": f"/products/{world.eggs.id}", "order": f"/orders/{order.id}",
                "statement": f"/manage/ledger/household/{world.h1.id}/statement",
                "summary": "/admin/report/summary", "report": "/admin/report"}

    client.login("admin")
    small = {name: statements_for(app, client, url) for name, url in pages(first).items()}
    bigger = grow(world, 12, lines_per_order=8)
    large = {name: statements_for(app, client, url) for name, url in pages(bigger).items()}
    assert all(count > 0 for count in small.values()), small
    assert large == small, f"statements grew with the data: {small} → {large}"

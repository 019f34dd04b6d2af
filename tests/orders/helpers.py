"""Driving orders the way people do: through the pages."""
from sqlalchemy import select

from shop.extensions import db
from shop.orders.models import Order


def buy(client, world, *items, payment="offline", point=None, workplace=False):
    """Put items (product, quantity) in the cart and check out; returns the checkout response."""
    for product, quantity in items:
        response = client.post("/cart/add", data={"product_id": str(product.id), "quantity": str(quantity)})
        assert response.status_code == 302
    data = {"handover": "workplace" if workplace else "pickup", "payment_method": payment,
            "pickup_point_id": "" if workplace else str((point or world.point).id)}
    return client.post("/checkout", data=data)


def last_order() -> Order:
    return db.session.scalars(select(Order).order_by(Order.id.desc())).first()


def run_cli(app, *args) -> tuple[int, str]:
    """A `flask` command, as cron runs it: in a process of its own, so with none of the test's transaction open
    (the test's writes are committed first; the command shares the test's app context and session)."""
    db.session.commit()
    result = app.test_cli_runner().invoke(args=list(args))
    output = result.output + (getattr(result, "stderr", "") or "")
    if result.exception and not isinstance(result.exception, SystemExit):
        output += repr(result.exception)
    return result.exit_code, output


def assert_books_clean(app):
    """`flask verify` passes: stock, orders, ledger, company receivables and reports all agree."""
    code, output = run_cli(app, "verify")
    assert code == 0, output

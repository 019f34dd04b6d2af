"""The declared access table: who may use each endpoint.

A new route fails the route tests until it is added here; a rule changed in code without
changing this table fails them too.
"""
PUBLIC, LOGIN = "public", "login"
ROLES = ("staff", "company", "manager", "admin")
BACK_OFFICE = {"manager", "admin"}

ROUTES: dict[str, set[str] | str] = {
    "system.healthz": PUBLIC,
    "system.set_language": PUBLIC,
    "accounts.login": PUBLIC,
    "accounts.logout": LOGIN,
    "accounts.change_password": LOGIN,
    "accounts.users": {"admin"},
    "accounts.user_new": {"admin"},
    "accounts.user_edit": {"admin"},
    "accounts.organizations": {"admin"},
    "producers.households": BACK_OFFICE,
    "producers.household_new": BACK_OFFICE,
    "producers.household": BACK_OFFICE,
    "producers.household_edit": BACK_OFFICE,
    "producers.household_import": BACK_OFFICE,
    "producers.pairing_import": {"admin"},
    "producers.enterprises": BACK_OFFICE,
    "producers.enterprise_new": BACK_OFFICE,
    "producers.enterprise_edit": BACK_OFFICE,
    "producers.villages": BACK_OFFICE,
    "producers.pairings": {"admin"},
    "producers.pairing_delete": {"admin"},
    "producers.my_households": {"staff"},
    "catalog.index": PUBLIC,
    "catalog.product": PUBLIC,
    "catalog.product_photo": PUBLIC,
    "catalog_manage.products": BACK_OFFICE,
    "catalog_manage.product_new": {"manager"},
    "catalog_manage.product_edit": {"manager"},
    "catalog_manage.product_toggle": {"manager"},
    "catalog_manage.pickup_points": BACK_OFFICE,
    "catalog_manage.pickup_point_new": {"manager"},
    "catalog_manage.pickup_point_edit": {"manager"},
    "inventory.overview": BACK_OFFICE,
    "inventory.product_lots": BACK_OFFICE,
    "inventory.set_threshold": {"manager"},
    "inventory.intake_start": {"manager"},
    "inventory.intake": {"manager"},
    "inventory.receipt": BACK_OFFICE,
    "inventory.lot": BACK_OFFICE,
    "inventory.adjust": {"manager"},
    "inventory.label": BACK_OFFICE,
    "inventory.household_stock": BACK_OFFICE,
    "inventory.trace": PUBLIC,
    "orders.cart": {"staff"},
    "orders.cart_add": {"staff"},
    "orders.cart_update": {"staff"},
    "orders.checkout": {"staff"},
    "orders.pay": {"staff", "company"},
    "orders.payment_return": {"staff", "company"},
    "orders.mine": {"staff", "company"},
    "orders.detail": {"staff", "company", "manager", "admin"},
    "orders.receipt": {"staff", "company", "manager", "admin"},
    "orders.cancel": {"staff", "company", "manager"},
    "orders.manage": BACK_OFFICE,
    "orders.picklist": BACK_OFFICE,
    "orders.packing_slip": BACK_OFFICE,
    "orders.offline_payment": {"manager"},
    "orders.pack": {"manager"},
    "orders.hand_over": {"manager"},
    "orders.refund": BACK_OFFICE,
    "payments.webhook": PUBLIC,
    "ledger.overview": BACK_OFFICE,
    "ledger.supplier": BACK_OFFICE,
    "ledger.payout": {"manager"},
    "ledger.statement": BACK_OFFICE,
}


def allowed(endpoint: str, role: str | None) -> bool:
    rule = ROUTES[endpoint]
    if rule == PUBLIC:
        return True
    if role is None:
        return False
    return rule == LOGIN or role in rule

"""A county's year of buying, written in bulk: the same rows the services write, far faster.

19 villages, ~1,600 households, ~50 buying units, ~3,000 staff, ~500 products, ~20,000 lots and
~200,000 order lines over the past year (full scale), with the companies' monthly contract orders,
payouts, and pending online orders for the webhook benchmark. Every sale has its lot, its stock
movement and its ledger entries, so `flask stock verify` and `flask ledger verify` hold on the result
(a test checks this at a tiny scale). Audit-log rows are not written.

Rows get explicit ids and go in with COPY on PostgreSQL and executemany on SQLite.
"""
from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text

from shop import clock
from shop.extensions import db
from shop.ledger import rollups

PASSWORD = "bench-password-1"
CATEGORIES = ("eggs", "peanuts", "mung_beans", "poultry", "brooms", "watermelons", "other")
UNITS = {"eggs": "枚", "peanuts": "斤", "mung_beans": "斤", "poultry": "只", "brooms": "把", "watermelons": "斤",
         "other": "件"}


@dataclass(frozen=True)
class Scale:
    villages: int
    households: int
    governments: int
    companies: int
    staff: int
    products: int
    lots: int
    lines: int
    pending: int  # pending online orders, for the webhook benchmark


SCALES = {
    "full": Scale(villages=19, households=1600, governments=40, companies=10, staff=3000, products=500, lots=20_000,
                  lines=200_000, pending=6000),
    "small": Scale(villages=4, households=320, governments=8, companies=2, staff=600, products=100, lots=4000,
                   lines=40_000, pending=3000),
    "tiny": Scale(villages=1, households=12, governments=2, companies=1, staff=20, products=8, lots=60, lines=300,
                  pending=10),
}


@dataclass
class Seeded:
    scale: Scale
    counts: dict[str, int]
    staff_ids: list[int]
    admin_id: int
    manager_id: int
    busiest_household_id: int
    pending_orders: list[tuple[int, str, int]]  # (order id, checkout session id, total fen)
    product_ids: list[int]
    product_groups: list[list[int]]  # each village's products: an order takes from one group

    @property
    def staff_username(self) -> str:
        """A staff member who buys (the first of the seeded staff), for the logged-in pages."""
        return "staff0001"


class Rows:
    """Rows per table, in insertion order, with explicit ids."""

    def __init__(self):
        self.tables: dict[str, tuple[tuple[str, ...], list[tuple]]] = {}
        self.next_id: dict[str, int] = {}

    def add(self, table: str, columns: tuple[str, ...], values: tuple, *, with_id: bool = True) -> int:
        cols, rows = self.tables.setdefault(table, (("id",) + columns if with_id else columns, []))
        if with_id:
            new_id = self.next_id.get(table, 0) + 1
            self.next_id[table] = new_id
            rows.append((new_id,) + values)
            return new_id
        rows.append(values)
        return 0


def _write(rows: Rows) -> dict[str, int]:
    connection = db.session.connection()
    dbapi = connection.connection.dbapi_connection
    postgres = connection.dialect.name == "postgresql"
    order = ["village", "organization", "user_account", "point_manager", "supported_village", "household", "pairing",
             "enterprise", "product", "pickup_point", "intake", "lot", "contract", "contract_price", "shop_order",
             "contract_run", "order_line", "allocation", "order_event", "stock_movement", "ledger_account",
             "journal_transaction", "ledger_entry", "payout", "api_token"]
    unwritten = set(rows.tables) - set(order)
    if unwritten:  # a table the seed fills but would not write: its rows would be silently lost
        raise ValueError(f"the seed fills tables it does not write: {sorted(unwritten)}")
    counts = {}
    cursor = dbapi.cursor()
    for table in order:
        if table not in rows.tables:
            continue
        columns, values = rows.tables[table]
        counts[table] = len(values)
        names = ", ".join(columns)
        if postgres:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", values)
        if postgres and "id" in columns:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {max(r[0] for r in values)})")
    cursor.close()
    return counts


# noqa reason: one pass writes the county's tables in order, sharing a dozen id maps and running balances;
# split into functions it would only pass them all around
def seed(scale_name: str | Scale = "full", *, today: date | None = None, rng_seed: int = 2023) -> Seeded:  # noqa: C901
    """Fill an empty, migrated database. Returns what the benchmarks need to know about it."""
    from shop.accounts.services import hash_password

    scale = SCALES[scale_name] if isinstance(scale_name, str) else scale_name
    rng = random.Random(rng_seed)
    today = today or clock.today()
    now = clock.now().replace(microsecond=0)
    year_start = clock.day_start(today - timedelta(days=365))
    r = Rows()
    password_hash = hash_password(PASSWORD)

    def at(days: float) -> datetime:
        return year_start + timedelta(days=days)

    # --- villages, households, enterprises ---------------------------------------------------------
    villages = [r.add("village", ("name", "town"), (f"第{v + 1:02d}村", "XX镇")) for v in range(scale.villages)]
    households = []
    statuses = ["alleviated"] * 70 + ["monitored"] * 5 + ["ordinary"] * 25
    for h in range(scale.households):
        status = rng.choice(statuses)
        households.append(r.add("household", (
            "code", "head_name", "members", "status", "risk_eliminated", "phone", "village_id", "note", "created_at"), (
            f"H{h + 1:05d}", f"户主{h + 1}", rng.randint(1, 6), status, False if status == "monitored" else None,
            None, villages[h % len(villages)], None, year_start)))
    enterprises = [r.add("enterprise", ("name", "kind", "village_id", "contact_name", "phone", "created_at"), (
        f"第{v + 1:02d}村专业合作社", "cooperative", v_id, None, None, year_start)) for v, v_id in enumerate(villages)]
    # each village's point holds its own villagers' goods: household h lives in village h % V, enterprise v in v
    households_of = {v_id: households[v::len(villages)] for v, v_id in enumerate(villages)}
    enterprise_of = dict(zip(villages, enterprises))

    # --- buying units and users ----------------------------------------------------------------------
    governments = [r.add("organization", ("name", "kind", "created_at"), (f"县第{g + 1:02d}单位", "government", year_start))
                   for g in range(scale.governments)]
    companies = [r.add("organization", ("name", "kind", "created_at"), (f"第{c + 1:02d}环卫公司", "company", year_start))
                 for c in range(scale.companies)]
    user_cols = ("username", "display_name", "password_hash", "role", "organization_id", "active", "phone",
                 "session_version", "created_at")
    admin_id = r.add("user_account", user_cols, ("admin", "协调员", password_hash, "admin", governments[0], True, None, 1,
                                                  year_start))
    manager_id = r.add("user_account", user_cols, ("manager", "服务点管理员", password_hash, "manager", None, True, None,
                                                    1, year_start))
    for v_id in villages:  # one manager runs every village's point: each of their queries is narrowed to all 19
        r.add("point_manager", ("user_id", "village_id", "created_at"), (manager_id, v_id, year_start))
    for g_id in governments:  # every unit supports every village: its staff are paired across the county
        for v_id in villages:
            r.add("supported_village", ("organization_id", "village_id", "created_at"), (g_id, v_id, year_start))
    staff = [r.add("user_account", user_cols, (f"staff{s + 1:04d}", f"职工{s + 1}", password_hash, "staff",
                                                governments[s % len(governments)], True, None, 1, year_start))
             for s in range(scale.staff)]
    buyers = {c: r.add("user_account", user_cols, (f"buyer{i + 1:02d}", f"采购{i + 1}", password_hash, "company", c,
                                                    True, None, 1, year_start)) for i, c in enumerate(companies)}
    paired: dict[int, int] = {}  # staff id → household id
    for i, household in enumerate(households):
        r.add("pairing", ("user_id", "household_id", "created_at"), (staff[i % len(staff)], household, year_start))
        paired.setdefault(staff[i % len(staff)], household)

    # --- products and lots ---------------------------------------------------------------------------
    products = []
    village_of: dict[int, int] = {}  # product → the village whose point sells it (round the villages in turn)
    for p in range(scale.products):
        category = CATEGORIES[p % len(CATEGORIES)]
        price = rng.choice([120, 150, 600, 800, 900, 1200, 1500, 2500, 3800, 6800])
        village = villages[p % len(villages)]
        products.append((r.add("product", (
            "village_id", "name", "category", "unit", "price_fen", "description", "photo", "active", "created_at",
            "updated_at", "season_start_month", "season_end_month", "low_stock_threshold"), (
            village, f"商品{p + 1:03d}", category, UNITS[category], price, None, None, True, year_start, year_start,
            None, None, None)), price))
        village_of[products[-1][0]] = village
    products_of = {v_id: [item for item in products if village_of[item[0]] == v_id] for v_id in villages}
    pickup_of = {v_id: r.add("pickup_point", ("village_id", "name", "address", "active", "created_at",
                                              "season_start_month", "season_end_month"),
                             (v_id, "村电商服务点" if v == 0 else f"第{v + 1:02d}村电商服务点", "村委会东侧", True, year_start,
                              None, None))
                 for v, v_id in enumerate(villages)}

    # lots per product, received across the year; each sale takes from the oldest lot already received
    lots_by_product: dict[int, list[list]] = {pid: [] for pid, _ in products}
    lot_supplier: dict[int, tuple[int | None, int | None]] = {}
    movements: list[tuple] = []
    per_product = max(1, scale.lots // len(products))
    demand = scale.lines * 5 // len(products)  # units a product sells in the year, roughly
    for index in range(scale.lots):
        product_id, _price = products[index % len(products)]
        received_at = at(365 * (index // len(products)) / per_product)
        if rng.random() < 0.05:
            supplier = (None, enterprise_of[village_of[product_id]])
        else:
            supplier = (rng.choice(households_of[village_of[product_id]]), None)
        quantity = rng.randint(demand // per_product + 10, 2 * demand // per_product + 40)
        intake = r.add("intake", ("received_at", "user_id", "note", "household_id", "enterprise_id"),
                       (received_at, manager_id, None, *supplier))
        lot = r.add("lot", ("product_id", "intake_id", "quantity_received", "remaining", "reserved", "received_at",
                            "best_before", "note", "token", "household_id", "enterprise_id"),
                    (product_id, intake, quantity, quantity, 0, received_at, None, None, secrets.token_urlsafe(18),
                     *supplier))
        lot_supplier[lot] = supplier
        lots_by_product[product_id].append([lot, received_at, quantity])  # [id, received, remaining]
        movements.append((lot, "intake", quantity, 0, None, None, f"intake:{intake}", manager_id, received_at))

    # --- ledger accounts -----------------------------------------------------------------------------
    accounts: dict[tuple, int] = {}
    balances: dict[int, int] = {}
    # the platform's accounts the migrations made: used as they are, new rows numbered after them
    for account_id, code in db.session.execute(text("SELECT id, code FROM ledger_account WHERE code IS NOT NULL")):
        accounts[(None, None, code, None)] = account_id
        balances[account_id] = 0
        r.next_id["ledger_account"] = max(r.next_id.get("ledger_account", 0), account_id)

    def account(household_id=None, enterprise_id=None, code=None, organization_id=None) -> int:
        key = (household_id, enterprise_id, code, organization_id)
        if key not in accounts:
            kind = ("household" if household_id else "enterprise" if enterprise_id
                    else "company" if organization_id else "platform")
            accounts[key] = r.add("ledger_account", ("kind", "household_id", "enterprise_id", "code", "organization_id",
                                                     "balance_fen"),
                                  (kind, household_id, enterprise_id, code, organization_id, 0))
            balances[accounts[key]] = 0
        return accounts[key]

    entry_cols = ("transaction_id", "account_id", "amount_fen", "allocation_id", "quantity", "created_at")
    lot_remaining_fix: dict[int, int] = {}
    reserved_fix: dict[int, int] = {}

    def take(product_id: int, quantity: int, when: datetime) -> int | None:
        for lot in lots_by_product[product_id]:
            if lot[1] <= when and lot[2] >= quantity:
                lot[2] -= quantity
                lot_remaining_fix[lot[0]] = lot[2]
                return lot[0]
        return None

    def sale(order_id: int, allocations: list[tuple[int, int, int, int]], debit: int, when: datetime, user_id):
        """allocations: (allocation id, lot id, quantity, unit price)."""
        tx = r.add("journal_transaction", ("kind", "source_type", "source_id", "order_id", "user_id", "memo",
                                           "created_at"), ("sale", "order", order_id, order_id, user_id,
                                                           f"order {order_id}", when))
        total = 0
        for allocation_id, lot_id, quantity, price in allocations:
            supplier = account(*lot_supplier[lot_id])
            value = quantity * price
            r.add("ledger_entry", entry_cols, (tx, supplier, -value, allocation_id, quantity, when))
            balances[supplier] -= value
            total += value
        r.add("ledger_entry", entry_cols, (tx, debit, total, None, None, when))
        balances[debit] += total

    order_cols = ("buyer_id", "organization_id", "channel", "status", "payment_status", "payment_method", "pickup_point_id",
                  "delivery_address", "total_fen", "refunded_fen", "currency", "reserved_until", "stripe_session_id",
                  "stripe_payment_intent_id", "payment_reference", "awaiting_async_payment", "review_reason",
                  "handed_over_to", "placed_at", "paid_at", "contract_id", "contract_month", "delivered_at",
                  "accepted_at", "acceptance_note", "rejected_units", "rejected_handled")
    event_cols = ("order_id", "from_status", "to_status", "user_id", "note", "created_at")

    # --- the companies' contracts: one each, a monthly order accepted every month -----------------------
    this_month = today.strftime("%Y-%m")
    months = sorted({clock.month_of(clock.local_day(at(d))) for d in range(0, 365, 20)} - {this_month})[-12:]
    for c, company in enumerate(companies):
        product_id, price = products[(4 + 7 * c) % len(products)]  # a "brooms" product
        monthly = 400
        supplier = (None, enterprise_of[village_of[product_id]])
        stocked = year_start - timedelta(days=40)  # before the first month's delivery
        intake = r.add("intake", ("received_at", "user_id", "note", "household_id", "enterprise_id"),
                       (stocked, manager_id, None, *supplier))
        big = r.add("lot", ("product_id", "intake_id", "quantity_received", "remaining", "reserved", "received_at",
                            "best_before", "note", "token", "household_id", "enterprise_id"),
                    (product_id, intake, monthly * 13, monthly * 13, 0, stocked, None, None,
                     secrets.token_urlsafe(18), *supplier))
        lot_supplier[big] = supplier
        lots_by_product[product_id].insert(0, [big, stocked, monthly * 13])
        movements.append((big, "intake", monthly * 13, 0, None, None, f"intake:{intake}", manager_id, stocked))
        contract = r.add("contract", ("number", "organization_id", "product_id", "monthly_quantity", "first_month",
                                      "last_month", "cap_fen", "delivery_address", "delivery_day",
                                      "payment_terms_days", "status", "scan", "created_at"),
                         (f"HT-{c + 1:02d}", company, product_id, monthly, months[0], months[-1],
                          monthly * 12 * price, "车队", 5, 30, "active", None, year_start))
        r.add("contract_price", ("contract_id", "from_month", "unit_price_fen", "user_id", "created_at"),
              (contract, months[0], price, admin_id, year_start))
        for month in months:
            placed = clock.day_start(clock.month_start(month).replace(day=5))
            accepted_at = placed + timedelta(days=2)
            accepted = monthly - (rng.randint(1, 10) if rng.random() < 0.2 else 0)
            order_id = r.add("shop_order", order_cols, (
                buyers[company], company, "standing", "accepted", "paid", "account", None, "车队", accepted * price, 0, "cny",
                None, None, None, None, False, None, None, placed, None, contract, month, placed + timedelta(days=1),
                accepted_at, "短少" if accepted < monthly else None, monthly - accepted, None))
            r.add("contract_run", ("contract_id", "month", "order_id", "created_at"), (contract, month, order_id, placed))
            line = r.add("order_line", ("order_id", "product_id", "quantity", "unit_price_fen", "refunded_quantity"),
                         (order_id, product_id, monthly, price, 0))
            lot = take(product_id, monthly, placed)
            allocation = r.add("allocation", ("line_id", "lot_id", "quantity", "refunded_quantity",
                                              "released_quantity", "household_id", "enterprise_id", "created_at"),
                               (line, lot, monthly, 0, monthly - accepted, *lot_supplier[lot], placed))
            movements.append((lot, "allocate", -monthly, monthly, None, None, f"order:{order_id}", None, placed))
            movements.append((lot, "dispatch", 0, -monthly, None, None, f"order:{order_id}", manager_id,
                              placed + timedelta(days=1)))
            for step, (source, target, when) in enumerate((
                    (None, "confirmed", placed), ("confirmed", "delivered", placed + timedelta(days=1)),
                    ("delivered", "accepted", accepted_at))):
                r.add("order_event", event_cols, (order_id, source, target, manager_id if step == 1 else None, None,
                                                  when))
            sale(order_id, [(allocation, lot, accepted, price)], account(organization_id=company), accepted_at,
                 buyers[company])

    # --- staff buying through the year ----------------------------------------------------------------
    lines_left = scale.lines
    orders = []
    while lines_left > 0:
        k = min(lines_left, rng.randint(1, 7))
        lines_left -= k
        orders.append((at(rng.uniform(0, 364)), rng.choice(staff), k))
    orders.sort()
    price_of = dict(products)
    for placed, buyer, k in orders:
        village = rng.choice(villages)  # an order is one village's point's: its goods and its pickup point
        chosen = rng.sample(products_of[village], min(k, len(products_of[village])))
        wanted = [(pid, rng.randint(1, 8)) for pid, _ in chosen]
        picks = [(pid, q, take(pid, q, placed)) for pid, q in wanted]
        picks = [p for p in picks if p[2] is not None]
        if not picks:
            continue
        paid = placed + timedelta(minutes=rng.randint(1, 60))
        handed = paid + timedelta(days=1)
        total = sum(q * price_of[pid] for pid, q, _lot in picks)
        org = governments[(buyer - staff[0]) % len(governments)]
        order_id = r.add("shop_order", order_cols, (
            buyer, org, "retail", "handed_over", "paid", "offline", pickup_of[village], None, total, 0, "cny", placed + timedelta(minutes=30),
            None, None, f"R{len(orders)}", False, None, "本人", placed, paid, None, None, None, None, None, 0, None))
        allocations = []
        for pid, q, lot in picks:
            line = r.add("order_line", ("order_id", "product_id", "quantity", "unit_price_fen", "refunded_quantity"),
                         (order_id, pid, q, price_of[pid], 0))
            allocation = r.add("allocation", ("line_id", "lot_id", "quantity", "refunded_quantity",
                                              "released_quantity", "household_id", "enterprise_id", "created_at"),
                               (line, lot, q, 0, 0, *lot_supplier[lot], placed))
            movements.append((lot, "allocate", -q, q, None, None, f"order:{order_id}", buyer, placed))
            movements.append((lot, "dispatch", 0, -q, None, None, f"order:{order_id}", manager_id, handed))
            allocations.append((allocation, lot, q, price_of[pid]))
        for source, target, when, who in ((None, "pending_payment", placed, buyer),
                                          ("pending_payment", "paid", paid, manager_id),
                                          ("paid", "packed", handed - timedelta(hours=2), manager_id),
                                          ("packed", "handed_over", handed, manager_id)):
            r.add("order_event", event_cols, (order_id, source, target, who, None, when))
        sale(order_id, allocations, account(code="cash_on_hand"), paid, manager_id)

    # --- payouts: half of what each supplier is owed, an hour ago ----------------------------------
    payout_at = now - timedelta(hours=1)
    for key, account_id in list(accounts.items()):
        owed = -balances[account_id]
        if key[2] is not None or key[3] is not None or owed < 200:
            continue
        amount = owed // 2
        payout = r.add("payout", ("account_id", "amount_fen", "method", "reference", "user_id", "created_at"),
                       (account_id, amount, "bank_transfer", f"付款{account_id}", manager_id, payout_at))
        tx = r.add("journal_transaction", ("kind", "source_type", "source_id", "order_id", "user_id", "memo",
                                           "created_at"), ("payout", "payout", payout, None, manager_id,
                                                           f"付款{account_id}", payout_at))
        r.add("ledger_entry", entry_cols, (tx, account_id, amount, None, None, payout_at))
        r.add("ledger_entry", entry_cols, (tx, account(code="bank"), -amount, None, None, payout_at))
        balances[account_id] += amount

    # --- pending online orders, awaiting their payment webhook ----------------------------------------
    pending = []
    for i in range(scale.pending):
        # two or three lines, each from a different supplier: a payment credits several households at once
        buyer = staff[i % len(staff)]
        village = villages[i % len(villages)]
        picks, suppliers = [], set()
        for k in range(2 + i % 2):
            product_id, price = products_of[village][(i * 3 + k * 7) % len(products_of[village])]
            quantity = 1 + (i + k) % 3
            lot = take(product_id, quantity, now)
            if lot is None:
                continue
            if lot_supplier[lot] in suppliers:  # the same supplier twice: give it back, keep one line of theirs
                held = next(entry for entry in lots_by_product[product_id] if entry[0] == lot)
                held[2] += quantity
                lot_remaining_fix[lot] = held[2]
                continue
            suppliers.add(lot_supplier[lot])
            picks.append((product_id, price, quantity, lot))
        if not picks:
            continue
        total = sum(price * quantity for _p, price, quantity, _l in picks)
        session_id = f"cs_bench_{i + 1:06d}"
        order_id = r.add("shop_order", order_cols, (
            buyer, governments[(buyer - staff[0]) % len(governments)], "retail", "pending_payment", "unpaid", "stripe",
            pickup_of[village],
            None, total, 0, "cny", now + timedelta(days=2), session_id, None, None, False, None, None,
            now - timedelta(minutes=5), None, None, None, None, None, None, 0, None))
        for product_id, price, quantity, lot in picks:
            line = r.add("order_line", ("order_id", "product_id", "quantity", "unit_price_fen", "refunded_quantity"),
                         (order_id, product_id, quantity, price, 0))
            r.add("allocation", ("line_id", "lot_id", "quantity", "refunded_quantity", "released_quantity",
                                 "household_id", "enterprise_id", "created_at"),
                  (line, lot, quantity, 0, 0, *lot_supplier[lot], now))
            movements.append((lot, "allocate", -quantity, quantity, None, None, f"order:{order_id}", buyer, now))
            reserved_fix[lot] = reserved_fix.get(lot, 0) + quantity
        r.add("order_event", event_cols, (order_id, None, "pending_payment", buyer, None, now))
        pending.append((order_id, session_id, total))

    # lots' remaining and reserved, accounts' balances: what the movements and entries add up to
    lot_cols, lot_rows = r.tables["lot"]
    r.tables["lot"] = (lot_cols, [row[:4] + (lot_remaining_fix.get(row[0], row[4]), reserved_fix.get(row[0], 0))
                                  + row[6:] for row in lot_rows])
    account_cols, account_rows = r.tables["ledger_account"]
    r.tables["ledger_account"] = (account_cols, [row[:6] + ((balances[row[0]] if row[1] != "platform" else 0),)
                                                 for row in account_rows])
    for movement in movements:
        r.add("stock_movement", ("lot_id", "kind", "quantity", "reserved_delta", "reason", "note", "reference",
                                 "user_id", "created_at"), movement)
    counts = _write(r)
    counts.update(rollups.rebuild())  # the daily sales rollups, summed from the entries just written
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # fresh statistics, as autovacuum would gather in time
    db.session.commit()
    busiest = max((a for k, a in accounts.items() if k[0]), key=lambda a: -balances[a], default=None)
    busiest_household = next(k[0] for k, a in accounts.items() if a == busiest)
    return Seeded(scale, counts, staff, admin_id, manager_id, busiest_household, pending, [p for p, _ in products],
                  [[p for p, _ in products_of[v]] for v in villages])

"""`make bench`: the shop at county scale, measured side by side with a bare baseline in one run.

For each database (PostgreSQL, then SQLite): migrate and seed a county's year (bench/seed.py), serve
the shop and the baseline app with gunicorn (workers = cores), drive both with wrk from a second
process, and time the heaviest pages against their own SQL run directly through the driver. Ratios,
not absolute numbers, are what mean something on a shared machine. Results go to bench/results.json
and to the table in README.md.

Settings: BENCH_SCALE=full|small (default full), BENCH_DATABASE_URL (default: a throwaway database
on the local PostgreSQL server, dropped afterwards), BENCH_DURATION seconds per load test (default 4),
BENCH_BACKENDS=postgresql,sqlite.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "whsec_bench_secret"
CONNECTIONS = 10  # concurrent clients: "10 concurrent buyers"
WRITERS = 10      # gunicorn workers serving the order and webhook tests: ten buyers' transactions truly overlap
TARGETS = {"catalog_logged_in_vs_bare": (">=", 0.25), "order_vs_insert": (">=", 0.12),
           "webhook_vs_insert": (">=", 0.20), "statement_vs_sql": ("<=", 1.8), "summary_speedup_vs_raw": (">=", 20),
           "export_peak_rss_mb": ("<=", 150)}
# the parts of the headline keys (catalog_logged_in_vs_bare is the worse of the staff's catalog and product
# page), and the earlier keys, kept out of the headline: the anonymous pages (served from the render cache)
DETAILS = {"catalog_staff_vs_bare": (">=", 0.25), "product_staff_vs_bare": (">=", 0.25),
           "catalog_anonymous_vs_bare": (">=", 0.25), "product_anonymous_vs_bare": (">=", 0.25)}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- servers -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(app_spec: str, env: dict, workers: int):
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "--timeout", "120", app_spec], cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(url + ("/bare" if "baseline" in app_spec else "/healthz"), timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{app_spec} did not start")
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


# --- load ------------------------------------------------------------------------------------------

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: float, script: str | None = None, args: tuple = (), cookie: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    if script:
        command += ["-s", str(BENCH / "wrk" / script)]
    command.append(url)
    if args:
        command += ["--", *map(str, args)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * UNIT[unit], 2)

    requests_total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), 1),
            "p50_ms": latency("50"), "p99_ms": latency("99"), "requests": requests_total,
            "errors": int(errors.group(1)) if errors else 0,
            **({"socket_errors": socket_errors.group(1)} if socket_errors else {})}


def median_seconds(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


# --- the database ---------------------------------------------------------------------------------

@contextmanager
def postgres_database():
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    name = f"shop_bench_{os.getpid()}"
    admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-d", "postgres", "-c"]
    subprocess.run(admin + [f'DROP DATABASE IF EXISTS "{name}"'], check=True)
    subprocess.run(admin + [f'CREATE DATABASE "{name}"'], check=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run(admin + [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)


@contextmanager
def sqlite_database():
    folder = tempfile.mkdtemp(prefix="shop-bench-")
    try:
        yield f"sqlite:///{folder}/bench.sqlite3"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shop_app(url: str):
    from shop import create_app

    return create_app({"ENVIRON": {"SECRET_KEY": "bench", "DATABASE_URL": url,
                                   "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET},
                       "INSTANCE_PATH": tempfile.mkdtemp(prefix="shop-bench-instance-")})


# --- one backend ---------------------------------------------------------------------------------------

def capture_sql(work) -> list[tuple[str, object]]:
    """The statements a piece of service code sends, with their parameters."""
    from sqlalchemy import event

    from shop.extensions import db

    statements = []

    def listener(_conn, _cursor, statement, parameters, _context, _executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        work()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return statements


def replay(statements) -> None:
    """The same statements straight through the database driver: no ORM, no Python around them."""
    from shop.extensions import db

    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            cursor.execute(statement, parameters)
            if cursor.description:
                cursor.fetchall()
        cursor.close()
        raw.rollback()
    finally:
        raw.close()


def login_cookie(shop: str, username: str) -> str:
    """Log in through the real login form of the running shop; the session cookie a browser would send."""
    from bench.seed import PASSWORD

    browser = requests.Session()
    page = browser.get(shop + "/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = browser.post(shop + "/login", data={"csrf_token": token, "username": username, "password": PASSWORD},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, f"login as {username}: {answer.status_code}"
    return "; ".join(f"{name}={value}" for name, value in browser.cookies.items())


def signed_in(app, username: str):
    """A test client logged in as the login page would log it in (a server-side login session)."""
    from sqlalchemy import select

    from shop.accounts.models import User
    from shop.accounts.services import start_login_session
    from shop.extensions import db

    user = db.session.scalar(select(User).where(User.username == username))
    from shop.unit_of_work import run

    sid = run(lambda: start_login_session(user, ip="127.0.0.1", user_agent="bench"))
    client = app.test_client()
    with client.session_transaction() as session:
        session.update({"sid": sid, "_user_id": user.get_id(), "_fresh": True})
    return client


def bench_backend(backend: str, url: str, scale: str, seconds: float, workers: int) -> dict:
    import stripe
    from flask_migrate import upgrade

    from bench.seed import seed
    from shop.accounts.models import User
    from shop.accounts.services import create_api_token
    from shop.extensions import db
    from shop import clock
    from shop.inventory import services as inventory
    from shop.ledger import services as ledger
    from shop.orders.models import Order
    from shop.payments.models import ProcessedStripeEvent
    from bench import raw_summary
    from shop.reports import services as reports
    from sqlalchemy import func, select

    result: dict = {"database": backend}
    app = shop_app(url)
    with app.app_context():
        began = time.perf_counter()
        upgrade()
        seeded = seed(scale)
        result["seed_seconds"] = round(time.perf_counter() - began, 1)
        result["rows"] = seeded.counts
        log(f"{backend}: seeded {seeded.counts['order_line']:,} order lines in {result['seed_seconds']} s")
        from bench.baseline import metadata as baseline_tables

        baseline_tables.create_all(db.engine)
        buyers = seeded.staff_ids[:CONNECTIONS]
        tokens = [create_api_token(db.session.get(User, user_id), "bench")[1] for user_id in buyers]
        db.session.commit()
        orders_before = db.session.scalar(select(func.count()).select_from(Order))
        today = clock.today()
    work = Path(tempfile.mkdtemp(prefix="shop-bench-wrk-"))
    (work / "tokens.txt").write_text("\n".join(tokens) + "\n")
    # one line per village, its products' ids: a basket is one village's point's goods
    (work / "products.txt").write_text("".join(" ".join(map(str, group)) + "\n" for group in seeded.product_groups))
    env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    load: dict = {}
    with gunicorn("shop:create_app()", env, workers) as shop, \
            gunicorn("bench.baseline:create_app()", env, workers) as base:
        product = seeded.product_ids[len(seeded.product_ids) // 2]
        staff_cookie = login_cookie(shop, seeded.staff_username)
        for name, target in (("bare", base + "/bare"), ("catalog", shop + "/"),
                             ("product", shop + f"/products/{product}")):
            wrk(target, 1)  # warm up
            wrk(target, 1, cookie=staff_cookie)
        # side by side, in turn: A B C … A, so drift over the run shows in the baseline's two runs
        load["bare"] = wrk(base + "/bare", seconds)
        load["catalog"] = wrk(shop + "/", seconds)
        load["product"] = wrk(shop + f"/products/{product}", seconds)
        load["catalog_staff"] = wrk(shop + "/", seconds, cookie=staff_cookie)
        load["product_staff"] = wrk(shop + f"/products/{product}", seconds, cookie=staff_cookie)
        load["bare_again"] = wrk(base + "/bare", seconds)
        log(f"{backend}: bare {load['bare']['rps']}/{load['bare_again']['rps']} rps, catalog {load['catalog']['rps']} "
            f"(staff {load['catalog_staff']['rps']}), product {load['product']['rps']} "
            f"(staff {load['product_staff']['rps']})")

    # the writes, each side with WRITERS workers, so ten transactions are in flight at once (with one worker
    # per core, "ten buyers" would be two concurrent transactions)
    with gunicorn("shop:create_app()", env, WRITERS) as shop, \
            gunicorn("bench.baseline:create_app()", env, WRITERS) as base:
        wrk(base + "/insert", 2, "post.lua")  # warm up every worker of both sides
        wrk(shop + "/", 2, "orders.lua", (work / "tokens.txt", work / "products.txt"))
        load["insert"] = wrk(base + "/insert", seconds, "post.lua")
        load["order"] = wrk(shop + "/", seconds, "orders.lua", (work / "tokens.txt", work / "products.txt"))
        # webhooks: one signed event per pending order, signed now (Stripe's tolerance is five minutes)
        with open(work / "payloads.txt", "w") as out:
            for index, (order_id, session_id, total) in enumerate(seeded.pending_orders):
                event = {"id": f"evt_bench_{index}", "object": "event", "type": "checkout.session.completed",
                         "data": {"object": {"id": session_id, "object": "checkout.session", "payment_status": "paid",
                                             "amount_total": total, "currency": "cny",
                                             "payment_intent": f"pi_bench_{index}",
                                             "client_reference_id": str(order_id)}}}
                body = json.dumps(event, separators=(",", ":"))
                out.write(stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET) + "\t" + body + "\n")
        load["webhook"] = wrk(shop + "/", seconds, "webhooks.lua", (work / "payloads.txt", 2))
        load["insert_again"] = wrk(base + "/insert", seconds, "post.lua")
        log(f"{backend}: insert {load['insert']['rps']}/{load['insert_again']['rps']} rps, order "
            f"{load['order']['rps']}, webhook {load['webhook']['rps']}")

        with app.app_context():
            db.session.remove()
            placed = db.session.scalar(select(func.count()).select_from(Order)) - orders_before
            processed = db.session.scalar(select(func.count()).select_from(ProcessedStripeEvent)
                                          .where(ProcessedStripeEvent.outcome == "paid"))
            stock_problems = inventory.verify()
            ledger_problems = ledger.verify()
        load["order"]["orders_placed"] = placed
        load["webhook"]["payments_applied"] = processed
        load["webhook"]["payloads"] = len(seeded.pending_orders)
        result["oversold"] = bool(stock_problems)
        result["checks"] = {"stock_verify": [str(p) for p in stock_problems][:5], "ledger_verify": ledger_problems[:5],
                            # requests still in flight when wrk stops are completed by the server, not counted by wrk
                            "every_answered_order_was_placed": placed >= load["order"]["requests"] - load["order"]["errors"],
                            "webhooks_each_sent_once": load["webhook"]["requests"] <= len(seeded.pending_orders)}
        log(f"{backend}: {placed} orders placed, {processed} payments applied, stock verify "
            f"{'FAILED' if stock_problems else 'ok'}, ledger verify {'FAILED' if ledger_problems else 'ok'}")

        # the year's summary page against the raw aggregates it replaced, and a household's statement against
        # its own SQL, both replayed through the driver in this process, so neither side pays for HTTP or a
        # client: the page's whole request (login check, queries, rendering) against the statements
        year = today.year
        start, end = date(year - 1, today.month, 1), today
        household = seeded.busiest_household_id
        with app.app_context():
            admin, manager = signed_in(app, "admin"), signed_in(app, "manager")
            the_year = reports.Period(date(year, 1, 1), date(year, 12, 31))
            summary_sql = capture_sql(lambda: raw_summary.figures(the_year))
            result["checks"]["summary_equals_raw"] = raw_summary.agrees(the_year, reports.build(the_year, today))
            account = ledger.household_account(household)
            db.session.commit()
            statement_sql = capture_sql(lambda: ledger.statement(account, start, end))
            db.session.remove()
        summary_url = f"/admin/report/summary?year={year}"
        statement_url = f"/manage/ledger/household/{household}/statement?from={start}&to={end}"

        def page(client, url):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        def sql(statements):
            with app.app_context():
                replay(statements)

        timings = {"summary_page": [], "summary_sql": [], "statement_page": [], "statement_sql": []}
        page(admin, summary_url), page(manager, statement_url)  # warm
        # no app context is held around the pages: each request makes its own, with its login check, as a
        # real request does; the SQL side gets a fresh context too
        for _ in range(7):  # in turn, so both sides see the same machine
            timings["summary_page"].append(median_seconds(lambda: page(admin, summary_url), 1))
            timings["summary_sql"].append(median_seconds(lambda: sql(summary_sql), 1))
            timings["statement_page"].append(median_seconds(lambda: page(manager, statement_url), 1))
            timings["statement_sql"].append(median_seconds(lambda: sql(statement_sql), 1))
        medians = {k: round(statistics.median(v) * 1000, 1) for k, v in timings.items()}
        result["pages_ms"] = medians
        with app.app_context():
            result["statement_rows"] = len(ledger.statement(ledger.household_account(household), start, end).rows)
            db.session.rollback()
        log(f"{backend}: summary page {medians['summary_page']} ms vs the raw aggregates {medians['summary_sql']} ms; "
            f"statement ({result['statement_rows']} rows) {medians['statement_page']} ms vs {medians['statement_sql']} ms")

    export = subprocess.run([sys.executable, "-m", "bench.export_rss", str(date(year - 1, 1, 1)), str(today)],
                            cwd=ROOT, env={**os.environ, **env, "BENCH_INSTANCE": str(work)},
                            capture_output=True, text=True, check=True)
    result["export"] = json.loads(export.stdout.strip().splitlines()[-1])
    log(f"{backend}: XLSX export of the year's lines: peak RSS {result['export']['peak_rss_mb']} MB "
        f"({result['export']['bytes'] / 1e6:.1f} MB file, {result['export']['seconds']} s)")
    shutil.rmtree(work, ignore_errors=True)

    bare = statistics.mean([load["bare"]["rps"], load["bare_again"]["rps"]])
    insert = statistics.mean([load["insert"]["rps"], load["insert_again"]["rps"]])
    result["load"] = load
    def vs_bare(name):
        return round(load[name]["rps"] / bare, 3)

    statement = round(medians["statement_page"] / max(medians["statement_sql"], 0.01), 2)
    result["ratios"] = {
        "catalog_logged_in_vs_bare": min(vs_bare("catalog_staff"), vs_bare("product_staff")),
        "order_vs_insert": round(load["order"]["rps"] / insert, 3),
        "webhook_vs_insert": round(load["webhook"]["rps"] / insert, 3),
        "statement_vs_sql": statement,
        # the year's eight aggregates straight from the raw movements (bench/raw_summary.py) against the whole
        # summary page, which reads the daily rollups: how much the rollups save
        "summary_speedup_vs_raw": round(medians["summary_sql"] / max(medians["summary_page"], 0.01), 2),
        "export_peak_rss_mb": result["export"]["peak_rss_mb"],
    }
    result["details"] = {"catalog_staff_vs_bare": vs_bare("catalog_staff"), "product_staff_vs_bare": vs_bare("product_staff"),
                         "catalog_anonymous_vs_bare": vs_bare("catalog"), "product_anonymous_vs_bare": vs_bare("product")}
    return result


# --- the report -------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    postgres = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    import sqlite3

    return {"cores": os.cpu_count(), "cpu": cpu, "memory": memory, "python": platform.python_version(),
            "postgresql": postgres, "sqlite": sqlite3.sqlite_version, "os": platform.platform()}


def met(key: str, value: float) -> bool:
    op, target = {**TARGETS, **DETAILS}[key]
    return value >= target if op == ">=" else value <= target


def readme_table(results: dict) -> str:
    m = results["machine"]
    head = (f"Measured {results['date']} at scale `{results['scale']}` on {m['cores']} cores ({m['cpu'] or 'unknown CPU'}, "
            f"{m['memory']}), gunicorn with {results['workers']} workers for the pages and {WRITERS} for the orders "
            f"and webhooks, wrk with {CONNECTIONS} connections; "
            f"{m['postgresql']}, SQLite {m['sqlite']}.\n\n")
    backends = [b for b in ("postgresql", "sqlite") if b in results]
    rows = ["| ratio | target | " + " | ".join(backends) + " |", "| --- | --- | " + " | ".join("---" for _ in backends) + " |"]
    for key, (op, target) in TARGETS.items():
        cells = []
        for backend in backends:
            value = results[backend]["ratios"][key]
            cells.append(f"{value} {'✓' if met(key, value) else '✗'}")
        rows.append(f"| `{key}` | {op} {target} | " + " | ".join(cells) + " |")
    for key, (op, target) in DETAILS.items():
        cells = [str(results[backend]["details"][key]) for backend in backends]
        rows.append(f"| &nbsp;&nbsp;{key.replace('_', ' ')} | {op} {target} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append("| load test | " + " | ".join(f"{b} rps (p50 / p99 ms)" for b in backends) + " |")
    rows.append("| --- | " + " | ".join("---" for _ in backends) + " |")
    for name in ("bare", "catalog", "product", "catalog_staff", "product_staff", "bare_again", "insert", "order",
                 "webhook", "insert_again"):
        cells = []
        for backend in backends:
            run = results[backend]["load"][name]
            cells.append(f"{run['rps']:,} ({run['p50_ms']} / {run['p99_ms']})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append("| page | " + " | ".join(f"{b}: page / SQL (ms)" for b in backends) + " |")
    rows.append("| --- | " + " | ".join("---" for _ in backends) + " |")
    for page in ("summary", "statement"):
        cells = [f"{results[b]['pages_ms'][page + '_page']} / {results[b]['pages_ms'][page + '_sql']}" for b in backends]
        rows.append(f"| {page} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _old, after = rest.split(end, 1)
        readme.write_text(before + start + "\n" + table + end + after)


def main() -> int:
    scale = os.environ.get("BENCH_SCALE", "full")
    seconds = float(os.environ.get("BENCH_DURATION", "4"))
    backends = [b.strip() for b in os.environ.get("BENCH_BACKENDS", "postgresql,sqlite").split(",") if b.strip()]
    workers = os.cpu_count() or 2
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    began = time.perf_counter()
    results: dict = {"date": date.today().isoformat(), "scale": scale, "workers": workers, "machine": machine(),
                     "duration_per_load_test_s": seconds}
    for backend in backends:
        database = postgres_database() if backend == "postgresql" else sqlite_database()
        with database as url:
            results[backend] = bench_backend(backend, url, scale, seconds, workers)
    primary = results[backends[0]]
    results.update(primary["ratios"])  # the headline keys: PostgreSQL's, what production runs
    results["targets_met"] = {key: met(key, value) for key, value in primary["ratios"].items()}
    results["total_seconds"] = round(time.perf_counter() - began, 1)
    (BENCH / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    update_readme(readme_table(results))
    log(f"done in {results['total_seconds']} s; bench/results.json and README.md updated")
    for key, ok in results["targets_met"].items():
        log(f"  {key}: {primary['ratios'][key]} {'meets' if ok else 'MISSES'} {TARGETS[key][0]} {TARGETS[key][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

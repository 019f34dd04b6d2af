"""Command-line tasks: `flask --app shop demo load`, `users create`, `verify`, … Each command that writes runs
its service through the unit of work, like a page does."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from . import clock, demo, unit_of_work, vault
from .accounts import services as accounts
from .accounts.models import Organization, User
from .contracts import services as contracts
from .errors import DomainError
from .extensions import db
from .inventory import services as inventory
from .ledger import rollups
from .ledger import services as ledger
from .notifications import sender as notification_sender
from .notifications import services as notifications
from .orders import services as orders
from .payments import services as payments
from .points import services as points
from .payments import stripe_gateway
from .reports import services as reports
from .producers import services as producers
from .producers.models import Village
from .welfare import services as welfare

demo_cli = AppGroup("demo", help="The demo village from the bureau's 2023 work summary.")
users_cli = AppGroup("users", help="User accounts.")
stock_cli = AppGroup("stock", help="Stock at the service point.")
orders_cli = AppGroup("orders", help="Orders.")
payments_cli = AppGroup("payments", help="Payments.")
ledger_cli = AppGroup("ledger", help="The households' income ledger.")
contracts_cli = AppGroup("contracts", help="Sanitation-company contracts.")
notify_cli = AppGroup("notify", help="Notifications: what is due, and the outbox of email and group-robot messages.")
welfare_cli = AppGroup("welfare", help="Union welfare funds and their grants (工会福利).")
secrets_cli = AppGroup("secrets", help="Channel passwords and signing secrets, sealed with SHOP_SECRETS_KEY.")


def _write(work: Callable, *, param: str | None = None):
    """Run `work` as the command's unit of work; a refusal is the command's error message (exit 2)."""
    try:
        return unit_of_work.run(work)
    except DomainError as err:
        if param:
            raise click.BadParameter(err.message, param_hint=param) from None
        raise click.ClickException(err.message) from None


# --- the demo and users -------------------------------------------------------------------------

@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Only load when the database holds no users yet.")
def demo_load(if_empty: bool) -> None:
    """Load the demo village (idempotent: running it again changes nothing)."""
    if if_empty and db.session.scalar(select(User.id).limit(1)) is not None:
        click.echo("The database already holds data; demo not loaded.")
        return
    click.echo(_write(demo.load))


@demo_cli.command("logins")
@click.option("--port", type=click.IntRange(1, 65535), default=None, envvar="PORT",
              help="The port the shop is served on (default: $PORT, else 5000).")
@click.option("--host", default="127.0.0.1", show_default=True)
def demo_logins(port: int | None, host: str) -> None:
    """Print the demo logins, with links to where the shop is served (SHOP_BASE_URL when set)."""
    base = current_app.config.get("SHOP_BASE_URL") or f"http://{host}:{port or 5000}"
    click.echo(demo.logins_text(base))


@users_cli.command("token")
@click.argument("username")
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
def users_token(username: str, name: str) -> None:
    """Make an API token for USERNAME and print it (it is shown only this once)."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))
    if user is None:
        raise click.ClickException(f"unknown user: {username}")
    _token, secret = _write(lambda: accounts.create_api_token(user, name))
    click.echo(secret)


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["staff", "company", "manager", "admin"]), required=True)
@click.option("--name", "display_name", required=True, help="Display name.")
@click.option("--organization", default=None, help="Organization name (staff and company users need one).")
@click.option("--village", "villages", multiple=True, help="A village whose service point a manager runs (repeat).")
@click.password_option(help="At least 10 characters.")
def users_create(username: str, role: str, display_name: str, organization: str | None, villages: tuple[str, ...],
                 password: str) -> None:
    """Create a user (a real deployment starts with its own admin); a manager runs the villages named."""
    org = None
    if organization:
        org = db.session.scalar(select(Organization).where(Organization.name == organization))
        if org is None:
            raise click.ClickException(f"unknown organization: {organization}")
    village_ids = {db.session.scalar(select(Village.id).where(Village.name == name)) for name in villages}
    if None in village_ids:
        raise click.ClickException(f"unknown village among: {', '.join(villages)}")
    if village_ids and role != "manager":
        raise click.ClickException("only a manager runs villages (--village)")

    def create():
        user = accounts.create_user(username=username, display_name=display_name, role=role, password=password,
                                    organization=org)
        producers.set_managed_villages(user.id, village_ids)
        return user

    _write(create)
    click.echo(f"created {role} {username}")
    if role == "manager" and not village_ids:
        click.echo("this manager runs no village yet and sees nothing: name one with --village, or on /admin/users")


# --- checks ---------------------------------------------------------------------------------------

def _checks() -> dict[str, Callable[[], list[str]]]:
    """Every check of the books, by what it checks: each returns the problems it found, naming their rows."""
    return {
        "stock": lambda: [f"lot {p.lot_id}: {p.message}" for p in inventory.verify()],
        "orders": orders.verify,
        "ledger": ledger.verify,
        "receivables": contracts.verify,
        "reports": reports.verify,
        "sales points": points.verify,
        "notifications": notifications.verify,
        "welfare": welfare.verify,
    }


def _run_checks(names: list[str]) -> None:
    checks = _checks()
    failed = False
    for name in names:
        problems = checks[name]()
        for problem in problems:
            click.echo(f"{name}: {problem}", err=True)
        failed = failed or bool(problems)
        click.echo(f"{name}: {'FAILED' if problems else 'ok'}" + (f" ({len(problems)} problems)" if problems else ""))
    if failed:
        raise SystemExit(1)


@click.command("verify")
def verify_all() -> None:
    """Run every check of the books: stock, orders, ledger, company receivables and reports. Exits 1 naming
    every row that breaks one."""
    _run_checks(list(_checks()))


@stock_cli.command("verify")
def stock_verify() -> None:
    """Check every lot (remaining and reserved against its movements) and the units orders hold on it."""
    _run_checks(["stock", "orders"])


@ledger_cli.command("verify")
def ledger_verify() -> None:
    """Check every invariant of the ledger, the companies' receivables, the reports and the welfare funds (Σ granted
    = Σ spent − Σ returned + Σ unspent + Σ expired, to the fen) against it."""
    _run_checks(["ledger", "receivables", "reports", "welfare"])


@ledger_cli.command("rollups-rebuild")
def ledger_rollups_rebuild() -> None:
    """Recount the daily sales rollups the reports read from the ledger's sale and refund postings (they are kept
    with every posting; `verify` says when they differ). Writers wait while it runs."""
    counts = _write(rollups.rebuild)
    click.echo(", ".join(f"{table}: {rows} rows" for table, rows in counts.items()))


# --- scheduled work -------------------------------------------------------------------------------

@welfare_cli.command("expire")
def welfare_expire() -> None:
    """Return what is left of every grant past its expiry date to its fund (safe on several hosts at once, and to
    run again: a grant expires once)."""
    expired = _write(welfare.expire_grants)
    click.echo(f"expired {len(expired)} grants" + (f": {', '.join(map(str, expired))}" if expired else ""))


@orders_cli.command("expire")
def orders_expire() -> None:
    """Release stock held by unpaid orders whose reservation ran out (safe on several hosts at once)."""
    expired = _write(orders.expire_reservations)
    click.echo(f"expired {len(expired)} orders" + (f": {', '.join(map(str, expired))}" if expired else ""))


@notify_cli.command("send")
def notify_send() -> None:
    """Tell buyers whose hold ends within the hour and companies whose monthly statement is out, then send
    every due message of the outbox (cron, every few minutes; any number of hosts may run it at once)."""
    now = clock.now()
    holds = _write(lambda: orders.tell_holds_ending(now))
    statements = _write(lambda: contracts.tell_statements(clock.local_day(now)))
    counts = notification_sender.send_due()
    click.echo(f"told {holds} about holds ending, {statements} about statements; "
               f"sent {counts['sent']}, to retry {counts['retry']}, given up {counts['failed']}")


@notify_cli.command("digest")
def notify_digest() -> None:
    """Weekly (cron, e.g. Monday morning): each staff member is told which of their households are on the
    watch list; run `notify send` after it to email them. Running it twice in a week tells no one twice."""
    config = current_app.config
    rules = reports.WatchRules(config["SHOP_WATCH_INCOME_LINE_FEN"], config["SHOP_WATCH_DROP_PERCENT"],
                               config["SHOP_WATCH_IDLE_DAYS"])
    told = _write(lambda: reports.tell_watch_digests(clock.today(), rules))
    click.echo(f"told {told} staff members about their households on the watch list")


@secrets_cli.command("rotate")
def secrets_rotate() -> None:
    """Seal every stored channel secret again under the first key of SHOP_SECRETS_KEY (and seal any stored
    before secrets were sealed). To change the key: put the new key first, the old one after it, run this,
    then drop the old key."""
    if not current_app.config.get("SHOP_SECRETS_KEY"):
        raise click.ClickException("SHOP_SECRETS_KEY is not set")
    try:
        done = _write(notifications.reseal_secrets)
    except vault.CannotUnseal as exc:
        raise click.ClickException("a stored secret opens with none of the keys in SHOP_SECRETS_KEY: "
                                   "keep the old key after the new one until this has run") from exc
    click.echo(f"sealed {done} secrets under the first key")


@payments_cli.command("reconcile")
@click.option("--since", "since", required=True, help="YYYY-MM-DD: apply Stripe's events from this day on.")
def payments_reconcile(since: str) -> None:
    """List Stripe's events since a day and apply any that were missed."""
    try:
        start = clock.day_start(clock.parse_date(since, "since"))
    except DomainError as exc:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--since") from exc
    if not stripe_gateway.configured():
        raise click.ClickException("STRIPE_SECRET_KEY is not set")
    counts = payments.reconcile(start, unit=unit_of_work.run)
    click.echo("reconcile: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "no events"))


@payments_cli.command("send-refunds")
def payments_send_refunds() -> None:
    """Send to Stripe every card refund recorded while Stripe could not be reached (safe to run any time:
    each refund's own id is its idempotency key, so Stripe refunds it once). Run it from cron."""
    if not stripe_gateway.configured():
        raise click.ClickException("STRIPE_SECRET_KEY is not set")
    waiting = unit_of_work.read_only(payments.refunds_to_send)
    sent = sum(1 for refund_id in waiting if payments.send_refund(refund_id, unit=unit_of_work.run))
    click.echo(f"send-refunds: {sent} sent, {len(waiting) - sent} still waiting")
    if sent < len(waiting):
        raise SystemExit(1)


@contracts_cli.command("generate")
@click.option("--month", required=True, help="YYYY-MM")
def contracts_generate(month: str) -> None:
    """Make each active contract's standing order for the month (at most once; safe to run twice)."""
    try:
        results = contracts.generate(month, unit=unit_of_work.run)
    except DomainError as err:
        raise click.BadParameter(err.message, param_hint="--month") from err
    for result in results:
        click.echo(f"{result.contract.number}: {result.outcome}"
                   + (f" order {result.order.id}" if result.order else "")
                   + (" (trimmed to the cap)" if result.trimmed else "")
                   + (f", backordered {result.backordered}" if result.backordered else ""))
    if not results:
        click.echo("no contracts")


@click.command("backup")
@click.option("--to", "folder", default=None, help="Folder for the copy (default: instance/backups).")
def backup(folder: str | None) -> None:
    """A consistent copy of the SQLite database, taken while the shop runs (SQLite's online backup API).

    On PostgreSQL use pg_dump (see README)."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        raise click.ClickException("this database is not SQLite: back PostgreSQL up with pg_dump (see README)")
    target_dir = Path(folder or Path(current_app.instance_path) / "backups")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"shop-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.sqlite3"
    source = sqlite3.connect(url.database)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    click.echo(str(target))


def register(app: Flask) -> None:
    for command in (verify_all, backup, contracts_cli, orders_cli, payments_cli, ledger_cli, demo_cli, users_cli,
                    stock_cli, notify_cli, secrets_cli, welfare_cli):
        app.cli.add_command(command)

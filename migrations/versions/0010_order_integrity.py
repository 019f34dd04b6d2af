"""order integrity: payment status apart from fulfilment, refused bulk orders, 64-bit money, dispatches
recorded as stock movements, company receivables as accounts that keep their balance

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

MONEY = [("product", "price_fen"), ("price_tier", "unit_price_fen"), ("shop_order", "total_fen"),
         ("shop_order", "refunded_fen"), ("order_line", "unit_price_fen"), ("refund", "amount_fen"),
         ("ledger_account", "balance_fen"), ("ledger_entry", "amount_fen"), ("payout", "amount_fen"),
         ("organization_target", "target_fen"), ("contract", "cap_fen"), ("contract_price", "unit_price_fen"),
         ("backorder", "unit_price_fen"), ("company_payment", "amount_fen")]

OLD_STATUSES = ("'pending_payment', 'paid', 'packed', 'handed_over', 'cancelled', 'partially_refunded', 'refunded', "
                "'requested', 'confirmed', 'delivered', 'accepted'")
NEW_STATUSES = ("'pending_payment', 'paid', 'packed', 'handed_over', 'cancelled', 'requested', 'confirmed', "
                "'delivered', 'accepted', 'refused'")
SALE_AT = sa.text('coalesce(paid_at, accepted_at)')


def _money(type_):
    if op.get_bind().dialect.name == "postgresql":  # SQLite's INTEGER is 64-bit already
        for table, column in MONEY:
            op.alter_column(table, column, type_=type_, existing_nullable=False)


def upgrade():
    # the expression index is not reflected on SQLite, so it is set aside while the tables are rebuilt
    op.drop_index('ix_shop_order_sale_at', table_name='shop_order')
    _money(sa.BigInteger())
    _orders_up()
    _events_up()
    _movements_up()
    _accounts_up()
    op.create_index('ix_shop_order_sale_at', 'shop_order', [SALE_AT], unique=False)


def _orders_up():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_status', sa.String(length=20), nullable=False,
                                      server_default='unpaid'))
        batch_op.drop_constraint(op.f('ck_shop_order_status_valid'), type_='check')
    op.execute("""
        UPDATE shop_order SET payment_status = CASE
            WHEN status = 'partially_refunded' THEN 'partially_refunded'
            WHEN status = 'refunded' THEN 'refunded'
            WHEN status IN ('paid', 'packed', 'handed_over') THEN 'paid'
            WHEN status = 'accepted' AND EXISTS (SELECT 1 FROM journal_transaction t
                                                 WHERE t.kind = 'sale' AND t.order_id = shop_order.id) THEN 'paid'
            ELSE 'unpaid' END""")
    # where the goods of a refunded order are: the last move of its fulfilment before (or between) its refunds
    op.execute("""
        UPDATE shop_order SET status = COALESCE(
            (SELECT e.to_status FROM order_event e WHERE e.order_id = shop_order.id
               AND e.to_status NOT IN ('partially_refunded', 'refunded') ORDER BY e.id DESC LIMIT 1), 'paid')
        WHERE status IN ('partially_refunded', 'refunded')""")
    op.execute("UPDATE shop_order SET status = 'cancelled' WHERE payment_status = 'refunded' "
               "AND status IN ('paid', 'packed')")
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_shop_order_status_valid'), f"status IN ({NEW_STATUSES})")
        batch_op.create_check_constraint(op.f('ck_shop_order_payment_status_valid'),
                                         "payment_status IN ('unpaid', 'paid', 'partially_refunded', 'refunded')")
        batch_op.create_index(batch_op.f('ix_shop_order_payment_status'), ['payment_status'], unique=False)


def _events_up():
    with op.batch_alter_table('order_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=12), nullable=False, server_default='status'))
    op.execute("UPDATE order_event SET kind = 'payment' WHERE to_status IN ('partially_refunded', 'refunded')")
    op.execute("UPDATE order_event SET kind = 'note', to_status = note "
               "WHERE from_status = to_status AND note IN ('restocked', 'written_off')")
    with op.batch_alter_table('order_event', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_order_event_kind_valid'), "kind IN ('status', 'payment', 'note')")


def _movements_up():
    with op.batch_alter_table('stock_movement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved_delta', sa.Integer(), nullable=False, server_default='0'))
        batch_op.drop_constraint(op.f('ck_stock_movement_quantity_not_zero'), type_='check')
        batch_op.drop_constraint(op.f('ck_stock_movement_kind_valid'), type_='check')
    op.execute("UPDATE stock_movement SET kind = 'return' WHERE kind = 'release' AND reference LIKE 'order:%\\:rejected'")
    op.execute("UPDATE stock_movement SET reserved_delta = -quantity WHERE kind IN ('allocate', 'release')")
    # dispatches were not recorded before: one opening movement per lot brings its reserve to what it is
    op.execute("""
        INSERT INTO stock_movement (lot_id, kind, quantity, reserved_delta, note, created_at)
        SELECT lot.id, 'dispatch', 0, lot.reserved - sums.total, 'dispatches before this movement was kept',
               CURRENT_TIMESTAMP
        FROM lot JOIN (SELECT lot_id, SUM(reserved_delta) AS total FROM stock_movement GROUP BY lot_id) sums
          ON sums.lot_id = lot.id
        WHERE lot.reserved <> sums.total""")
    with op.batch_alter_table('stock_movement', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_stock_movement_changes_something'),
                                         "quantity <> 0 OR reserved_delta <> 0")
        batch_op.create_check_constraint(op.f('ck_stock_movement_kind_valid'),
                                         "kind IN ('intake', 'allocate', 'release', 'dispatch', 'return', 'adjust')")


def _accounts_up():
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organization_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_ledger_account_organization_id'), ['organization_id'])
        batch_op.create_foreign_key(batch_op.f('fk_ledger_account_organization_id_organization'), 'organization',
                                    ['organization_id'], ['id'])
        for name in ('kind_valid', 'platform_account', 'supplier_never_owes'):
            batch_op.drop_constraint(op.f(f'ck_ledger_account_{name}'), type_='check')
    # each company's receivable was a platform account "receivables:<organization id>"
    op.execute("""
        UPDATE ledger_account SET kind = 'company', organization_id = CAST(substr(code, 13) AS INTEGER), code = NULL,
               balance_fen = (SELECT COALESCE(SUM(e.amount_fen), 0) FROM ledger_entry e
                              WHERE e.account_id = ledger_account.id)
        WHERE code LIKE 'receivables:%'""")
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_ledger_account_kind_valid'),
                                         "kind IN ('household', 'enterprise', 'company', 'platform')")
        batch_op.create_check_constraint(op.f('ck_ledger_account_platform_account'),
                                         "(kind = 'platform') = (code IS NOT NULL)")
        batch_op.create_check_constraint(op.f('ck_ledger_account_company_account'),
                                         "(kind = 'company') = (organization_id IS NOT NULL)")
        batch_op.create_check_constraint(op.f('ck_ledger_account_supplier_never_owes'),
                                         "kind NOT IN ('household', 'enterprise') OR balance_fen <= 0")
        batch_op.create_check_constraint(op.f('ck_ledger_account_company_never_overpaid'),
                                         "kind <> 'company' OR balance_fen >= 0")


def downgrade():
    op.drop_index('ix_shop_order_sale_at', table_name='shop_order')
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        for name in ('kind_valid', 'platform_account', 'company_account', 'supplier_never_owes',
                     'company_never_overpaid'):
            batch_op.drop_constraint(op.f(f'ck_ledger_account_{name}'), type_='check')
    op.execute("UPDATE ledger_account SET kind = 'platform', code = 'receivables:' || CAST(organization_id AS VARCHAR), "
               "balance_fen = 0 WHERE kind = 'company'")
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ledger_account_organization_id_organization'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_ledger_account_organization_id'), type_='unique')
        batch_op.drop_column('organization_id')
        batch_op.create_check_constraint(op.f('ck_ledger_account_kind_valid'),
                                         "kind IN ('household', 'enterprise', 'platform')")
        batch_op.create_check_constraint(op.f('ck_ledger_account_platform_account'),
                                         "(kind = 'platform') = (code IS NOT NULL)")
        batch_op.create_check_constraint(op.f('ck_ledger_account_supplier_never_owes'),
                                         "kind = 'platform' OR balance_fen <= 0")

    with op.batch_alter_table('stock_movement', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_stock_movement_changes_something'), type_='check')
        batch_op.drop_constraint(op.f('ck_stock_movement_kind_valid'), type_='check')
    op.execute("DELETE FROM stock_movement WHERE quantity = 0")
    op.execute("UPDATE stock_movement SET kind = 'release' WHERE kind = 'return'")
    with op.batch_alter_table('stock_movement', schema=None) as batch_op:
        batch_op.drop_column('reserved_delta')
        batch_op.create_check_constraint(op.f('ck_stock_movement_quantity_not_zero'), "quantity <> 0")
        batch_op.create_check_constraint(op.f('ck_stock_movement_kind_valid'),
                                         "kind IN ('intake', 'allocate', 'release', 'adjust')")

    with op.batch_alter_table('order_event', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_order_event_kind_valid'), type_='check')
        batch_op.drop_column('kind')

    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_order_payment_status'))
        batch_op.drop_constraint(op.f('ck_shop_order_payment_status_valid'), type_='check')
        batch_op.drop_constraint(op.f('ck_shop_order_status_valid'), type_='check')
    op.execute("UPDATE shop_order SET status = payment_status WHERE payment_status IN ('partially_refunded', 'refunded')")
    op.execute("UPDATE shop_order SET status = 'cancelled' WHERE status = 'refused'")
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_column('payment_status')
        batch_op.create_check_constraint(op.f('ck_shop_order_status_valid'), f"status IN ({OLD_STATUSES})")
    op.create_index('ix_shop_order_sale_at', 'shop_order', [SALE_AT], unique=False)
    _money(sa.Integer())

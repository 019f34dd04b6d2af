"""union welfare funds (工会福利): a unit's fund, its top-ups, grants to members and what became of them; the
ledger's accounts for a fund's unallocated and granted money

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 03:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

Money = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ACCOUNT_KINDS = ("kind IN ('household', 'enterprise', 'company', 'platform')",
                 "kind IN ('household', 'enterprise', 'company', 'platform', 'welfare_fund', 'member_grant')")
TRANSACTION_KINDS = ("kind IN ('sale', 'refund', 'payout', 'receipt', 'adjustment')",
                     "kind IN ('sale', 'refund', 'payout', 'receipt', 'adjustment', 'welfare')")


def upgrade():
    op.create_table('welfare_fund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("source IN ('union', 'unit')", name=op.f('ck_welfare_fund_source_valid')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                            name=op.f('fk_welfare_fund_organization_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_welfare_fund')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_welfare_fund_organization_id'))
    )
    op.create_table('welfare_topup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fund_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', Money, nullable=False),
    sa.Column('reference', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_welfare_topup_amount_positive')),
    sa.ForeignKeyConstraint(['fund_id'], ['welfare_fund.id'], name=op.f('fk_welfare_topup_fund_id_welfare_fund')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_welfare_topup_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_welfare_topup'))
    )
    with op.batch_alter_table('welfare_topup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_welfare_topup_fund_id'), ['fund_id'], unique=False)
    op.create_table('welfare_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fund_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', Money, nullable=False),
    sa.Column('remaining_fen', Money, nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('purpose', sa.String(length=60), nullable=False),
    sa.Column('expired_at', sa.DateTime(), nullable=True),
    sa.Column('granted_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_welfare_grant_amount_positive')),
    sa.CheckConstraint('remaining_fen >= 0 AND remaining_fen <= amount_fen',
                       name=op.f('ck_welfare_grant_remaining_within_amount')),
    sa.CheckConstraint('starts_on <= expires_on', name=op.f('ck_welfare_grant_starts_before_expiry')),
    sa.ForeignKeyConstraint(['fund_id'], ['welfare_fund.id'], name=op.f('fk_welfare_grant_fund_id_welfare_fund')),
    sa.ForeignKeyConstraint(['granted_by'], ['user_account.id'],
                            name=op.f('fk_welfare_grant_granted_by_user_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_welfare_grant_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_welfare_grant'))
    )
    with op.batch_alter_table('welfare_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_welfare_grant_fund_id'), ['fund_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_welfare_grant_expires_on'), ['expires_on'], unique=False)
        batch_op.create_index('ix_welfare_grant_user_expires', ['user_id', 'expires_on'], unique=False)
    op.create_table('welfare_movement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('amount_fen', Money, nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('spend', 'return', 'expire')", name=op.f('ck_welfare_movement_kind_valid')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_welfare_movement_amount_positive')),
    sa.ForeignKeyConstraint(['grant_id'], ['welfare_grant.id'],
                            name=op.f('fk_welfare_movement_grant_id_welfare_grant')),
    sa.ForeignKeyConstraint(['order_id'], ['shop_order.id'], name=op.f('fk_welfare_movement_order_id_shop_order')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_welfare_movement'))
    )
    with op.batch_alter_table('welfare_movement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_welfare_movement_grant_id'), ['grant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_welfare_movement_order_id'), ['order_id'], unique=False)
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fund_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_ledger_account_fund_id_welfare_fund'), 'welfare_fund',
                                    ['fund_id'], ['id'])
        batch_op.create_unique_constraint('uq_ledger_account_kind_fund_id', ['kind', 'fund_id'])
        batch_op.drop_constraint(op.f('ck_ledger_account_kind_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_ledger_account_kind_valid'), ACCOUNT_KINDS[1])
        batch_op.create_check_constraint(
            op.f('ck_ledger_account_welfare_account'),
            "(kind IN ('welfare_fund', 'member_grant')) = (fund_id IS NOT NULL)")
        batch_op.create_check_constraint(
            op.f('ck_ledger_account_welfare_never_overdrawn'),
            "kind NOT IN ('welfare_fund', 'member_grant') OR balance_fen <= 0")
    with op.batch_alter_table('journal_transaction', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_journal_transaction_kind_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_journal_transaction_kind_valid'), TRANSACTION_KINDS[1])


def downgrade():
    op.execute("DELETE FROM ledger_entry WHERE transaction_id IN "
               "(SELECT id FROM journal_transaction WHERE kind = 'welfare')")
    op.execute("DELETE FROM ledger_entry WHERE account_id IN "
               "(SELECT id FROM ledger_account WHERE kind IN ('welfare_fund', 'member_grant'))")
    op.execute("DELETE FROM journal_transaction WHERE kind = 'welfare'")
    op.execute("DELETE FROM ledger_account WHERE kind IN ('welfare_fund', 'member_grant')")
    with op.batch_alter_table('journal_transaction', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_journal_transaction_kind_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_journal_transaction_kind_valid'), TRANSACTION_KINDS[0])
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ledger_account_welfare_never_overdrawn'), type_='check')
        batch_op.drop_constraint(op.f('ck_ledger_account_welfare_account'), type_='check')
        batch_op.drop_constraint(op.f('ck_ledger_account_kind_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_ledger_account_kind_valid'), ACCOUNT_KINDS[0])
        batch_op.drop_constraint('uq_ledger_account_kind_fund_id', type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_ledger_account_fund_id_welfare_fund'), type_='foreignkey')
        batch_op.drop_column('fund_id')
    op.drop_table('welfare_movement')
    op.drop_table('welfare_grant')
    op.drop_table('welfare_topup')
    op.drop_table('welfare_fund')

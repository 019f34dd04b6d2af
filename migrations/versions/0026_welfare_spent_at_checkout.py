"""welfare grants spent at checkout: the part of an order paid from the buyer's grants, and the part of a refund
given back to them (never as cash); a refund wholly to welfare has the method `welfare`

Existing orders and refunds paid nothing from welfare (0). The platform's `welfare_held` account holds welfare
money drawn by orders placed and not yet paid.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 05:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('welfare_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=False, server_default='0'))
        batch_op.create_check_constraint(op.f('ck_shop_order_welfare_within_total'),
                                         'welfare_fen >= 0 AND welfare_fen <= total_fen')
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('welfare_fen', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=False, server_default='0'))
        batch_op.create_check_constraint(op.f('ck_refund_welfare_within_amount'),
                                         'welfare_fen >= 0 AND welfare_fen <= amount_fen')
        batch_op.drop_constraint(op.f('ck_refund_method_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_refund_method_valid'),
                                         "method IN ('stripe', 'offline', 'account', 'welfare')")
    account = sa.table('ledger_account', sa.column('kind', sa.String), sa.column('code', sa.String),
                       sa.column('balance_fen', sa.BigInteger))
    bind = op.get_bind()
    if bind.execute(sa.select(account.c.code).where(account.c.code == 'welfare_held')).first() is None:
        op.bulk_insert(account, [{'kind': 'platform', 'code': 'welfare_held', 'balance_fen': 0}])


def downgrade():
    # the welfare_held account stays: entries may name it
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_refund_method_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_refund_method_valid'), "method IN ('stripe', 'offline', 'account')")
        batch_op.drop_constraint(op.f('ck_refund_welfare_within_amount'), type_='check')
        batch_op.drop_column('welfare_fen')
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_shop_order_welfare_within_total'), type_='check')
        batch_op.drop_column('welfare_fen')

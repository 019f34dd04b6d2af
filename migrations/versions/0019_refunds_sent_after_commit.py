"""card and wallet refunds are recorded first and sent to Stripe after their transaction commits (a refund's
Stripe state is kept); the index on when a sale happened goes, since no query reads it

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 18:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_shop_order_sale_at', table_name='shop_order')  # first: batch mode cannot reflect it
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_status', sa.String(length=12), nullable=True))
    # every Stripe refund made before this one was sent inside its own transaction: Stripe has it
    op.execute("UPDATE refund SET stripe_status = 'sent' WHERE method = 'stripe'")
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_stripe_status'), ['stripe_status'], unique=False)
        batch_op.create_check_constraint(
            op.f('ck_refund_stripe_status_valid'),
            "stripe_status IN ('to_send', 'sent', 'succeeded', 'failed')")
        batch_op.create_check_constraint(
            op.f('ck_refund_stripe_status_for_stripe'), "(method = 'stripe') = (stripe_status IS NOT NULL)")


def downgrade():
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_refund_stripe_status_for_stripe'), type_='check')
        batch_op.drop_constraint(op.f('ck_refund_stripe_status_valid'), type_='check')
        batch_op.drop_index(batch_op.f('ix_refund_stripe_status'))
        batch_op.drop_column('stripe_status')
    op.create_index('ix_shop_order_sale_at', 'shop_order', [sa.text('coalesce(paid_at, accepted_at)')], unique=False)

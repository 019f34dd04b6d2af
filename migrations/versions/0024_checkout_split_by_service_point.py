"""a checkout holding goods of several service points is split into one order per point, paid once

Every part names the checkout's first order; one Checkout Session may pay every part, so its id is no longer
unique to one order. Existing orders are each their own checkout (checkout_id stays empty): no figure changes.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 02:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkout_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_shop_order_checkout_id_shop_order'), 'shop_order',
                                    ['checkout_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_shop_order_checkout_id'), ['checkout_id'], unique=False)
        batch_op.drop_constraint(batch_op.f('uq_shop_order_stripe_session_id'), type_='unique')
        batch_op.create_index(batch_op.f('ix_shop_order_stripe_session_id'), ['stripe_session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_order_stripe_session_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_shop_order_stripe_session_id'), ['stripe_session_id'])
        batch_op.drop_index(batch_op.f('ix_shop_order_checkout_id'))
        batch_op.drop_constraint(batch_op.f('fk_shop_order_checkout_id_shop_order'), type_='foreignkey')
        batch_op.drop_column('checkout_id')

"""index when each sale happened (reports filter on it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 12:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # An expression index: it also makes the planner keep statistics on the expression, so a year's report
    # is planned as the hash join it is rather than as 250 orders' worth of nested loops.
    op.create_index('ix_shop_order_sale_at', 'shop_order', [sa.text('coalesce(paid_at, accepted_at)')], unique=False)


def downgrade():
    op.drop_index('ix_shop_order_sale_at', table_name='shop_order')

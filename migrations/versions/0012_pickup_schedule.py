"""pickup point opening days and closing time: how long an order paid at the service point is held

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pickup_point', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_weekdays', sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column('closes_at', sa.Time(), nullable=True))


def downgrade():
    with op.batch_alter_table('pickup_point', schema=None) as batch_op:
        batch_op.drop_column('closes_at')
        batch_op.drop_column('open_weekdays')

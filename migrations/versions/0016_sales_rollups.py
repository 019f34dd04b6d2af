"""daily sales rollups: the ledger's sale and refund postings summed per local day, by buyer and by supply,
kept with each posting and filled here from the ledger

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 18:10:00

"""
from alembic import op
import sqlalchemy as sa

from shop.ledger import rollups


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

MEASURES = [('units', 'money'), ('gross_fen', 'money'), ('credited_fen', 'money'), ('borne_fen', 'money'),
            ('sales', 'int')]


def _measures():
    money = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    return [sa.Column(name, money if kind == 'money' else sa.Integer(), nullable=False) for name, kind in MEASURES]


def upgrade():
    op.create_table('sales_day_buyer',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    *_measures(),
    sa.PrimaryKeyConstraint('day', 'organization_id', 'channel', 'contract_id', 'buyer_id',
                            name=op.f('pk_sales_day_buyer'))
    )
    op.create_table('sales_day_supply',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    *_measures(),
    sa.PrimaryKeyConstraint('day', 'organization_id', 'channel', 'product_id', 'household_id', 'enterprise_id',
                            name=op.f('pk_sales_day_supply'))
    )
    # what the ledger has posted so far, summed the way every later posting adds to it
    rollups.rebuild(op.get_bind())


def downgrade():
    op.drop_table('sales_day_supply')
    op.drop_table('sales_day_buyer')

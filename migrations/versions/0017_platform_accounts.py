"""the platform's own ledger accounts made once, here, instead of on first use by a sale or payment

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 18:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

CODES = ("stripe_cash", "cash_on_hand", "bank", "fee_income", "refund_shortfall", "point_cash", "grower_direct",
         "cash_difference")


def upgrade():
    account = sa.table('ledger_account', sa.column('kind', sa.String), sa.column('code', sa.String),
                       sa.column('balance_fen', sa.BigInteger))
    bind = op.get_bind()
    existing = set(bind.execute(sa.select(account.c.code).where(account.c.code.is_not(None))).scalars())
    missing = [{'kind': 'platform', 'code': code, 'balance_fen': 0} for code in CODES if code not in existing]
    if missing:
        op.bulk_insert(account, missing)


def downgrade():
    pass  # the accounts stay: entries may name them

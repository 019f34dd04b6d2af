"""a supporting unit's coordinator (单位协调员): a role that sees its own unit's staff, pairings and figures

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 09:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

OLD = "role IN ('staff', 'company', 'manager', 'admin', 'operator')"
NEW = "role IN ('staff', 'company', 'manager', 'admin', 'operator', 'coordinator')"


def _check(condition):
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_account_role_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_user_account_role_valid'), condition)


def upgrade():
    _check(NEW)


def downgrade():
    op.execute("UPDATE user_account SET role = 'staff', active = false WHERE role = 'coordinator'")
    _check(OLD)

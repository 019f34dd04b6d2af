"""the bell's unread count kept on the user's row, changed with the notifications it counts

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unread_notifications', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE user_account SET unread_notifications = (SELECT count(*) FROM notification "
               "WHERE notification.user_id = user_account.id AND notification.read_at IS NULL)")
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_user_account_unread_not_negative'), 'unread_notifications >= 0')


def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_account_unread_not_negative'), type_='check')
        batch_op.drop_column('unread_notifications')

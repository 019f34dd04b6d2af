"""request keys: an API request's Idempotency-Key (or a form's one-time token) and the answer it got

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('request_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_request_key_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_key')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_request_key_user_id_key'))
    )
    with op.batch_alter_table('request_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_key_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('request_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_key_created_at'))
    op.drop_table('request_key')

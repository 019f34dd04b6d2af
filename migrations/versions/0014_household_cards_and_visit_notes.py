"""household cards (a household's own page, opened with a hashed PIN) and staff visit notes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:22:25.238967

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('household_card',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('pin_hash', sa.String(length=255), nullable=False),
    sa.Column('pin_version', sa.Integer(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('failed_attempts >= 0', name=op.f('ck_household_card_attempts_not_negative')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_household_card_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_household_card_household_id_household')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_household_card')),
    sa.UniqueConstraint('token', name=op.f('uq_household_card_token'))
    )
    with op.batch_alter_table('household_card', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_household_card_household_id'), ['household_id'], unique=False)

    op.create_table('visit_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_visit_note_household_id_household')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_visit_note_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_note'))
    )
    with op.batch_alter_table('visit_note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_note_household_id'), ['household_id'], unique=False)



def downgrade():
    with op.batch_alter_table('visit_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_note_household_id'))

    op.drop_table('visit_note')
    with op.batch_alter_table('household_card', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_card_household_id'))

    op.drop_table('household_card')

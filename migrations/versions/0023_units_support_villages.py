"""units support villages (结对帮扶), and a household's moves between villages are kept

Until now any unit's staff could be paired with any household: every government unit is recorded as supporting
every village that exists, so no pairing that could be made before is refused after; the county then narrows it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 14:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('supported_village',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'],
                            name=op.f('fk_supported_village_organization_id_organization')),
    sa.ForeignKeyConstraint(['village_id'], ['village.id'], name=op.f('fk_supported_village_village_id_village')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supported_village')),
    sa.UniqueConstraint('organization_id', 'village_id', name=op.f('uq_supported_village_organization_id_village_id'))
    )
    with op.batch_alter_table('supported_village', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supported_village_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_supported_village_village_id'), ['village_id'], unique=False)
    op.create_table('household_move',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('from_village_id', sa.Integer(), nullable=False),
    sa.Column('to_village_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('moved_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('from_village_id <> to_village_id', name=op.f('ck_household_move_moves_somewhere')),
    sa.ForeignKeyConstraint(['from_village_id'], ['village.id'], name=op.f('fk_household_move_from_village_id_village')),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_household_move_household_id_household')),
    sa.ForeignKeyConstraint(['to_village_id'], ['village.id'], name=op.f('fk_household_move_to_village_id_village')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_household_move_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_household_move'))
    )
    with op.batch_alter_table('household_move', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_household_move_household_id'), ['household_id'], unique=False)
    op.execute("INSERT INTO supported_village (organization_id, village_id, created_at)"
               " SELECT o.id, v.id, CURRENT_TIMESTAMP FROM organization o CROSS JOIN village v"
               " WHERE o.kind = 'government'")


def downgrade():
    with op.batch_alter_table('household_move', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_move_household_id'))
    op.drop_table('household_move')
    with op.batch_alter_table('supported_village', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supported_village_village_id'))
        batch_op.drop_index(batch_op.f('ix_supported_village_organization_id'))
    op.drop_table('supported_village')

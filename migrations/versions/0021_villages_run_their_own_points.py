"""each village's service point: products, pickup and sales points belong to a village; managers are granted villages

Today's installation has one village: every product, pickup point and sales point becomes that village's,
and every manager is granted every village that exists, so nobody sees a figure change.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_FIRST_VILLAGE = "(SELECT min(id) FROM village)"
# a product's village: where the supplier of its first lot lives (a household's, else an enterprise's)
_PRODUCT_VILLAGE = (
    "COALESCE((SELECT COALESCE(h.village_id, e.village_id) FROM lot"
    " LEFT JOIN household h ON h.id = lot.household_id LEFT JOIN enterprise e ON e.id = lot.enterprise_id"
    " WHERE lot.product_id = product.id ORDER BY lot.id LIMIT 1), " + _FIRST_VILLAGE + ")")
_POINT_VILLAGE = (
    "COALESCE((SELECT COALESCE(h.village_id, e.village_id) FROM point_grower g"
    " LEFT JOIN household h ON h.id = g.household_id LEFT JOIN enterprise e ON e.id = g.enterprise_id"
    " WHERE g.sales_point_id = sales_point.id ORDER BY g.id LIMIT 1), " + _FIRST_VILLAGE + ")")


def upgrade():
    op.create_table('point_manager',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_point_manager_user_id_user_account')),
    sa.ForeignKeyConstraint(['village_id'], ['village.id'], name=op.f('fk_point_manager_village_id_village')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_manager')),
    sa.UniqueConstraint('user_id', 'village_id', name=op.f('uq_point_manager_user_id_village_id'))
    )
    with op.batch_alter_table('point_manager', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_point_manager_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_point_manager_village_id'), ['village_id'], unique=False)

    # a shop with goods but no village yet gets one, so that everything it holds has a home
    op.execute("INSERT INTO village (name, town) SELECT '本村', NULL WHERE NOT EXISTS (SELECT 1 FROM village) AND"
               " (EXISTS (SELECT 1 FROM product) OR EXISTS (SELECT 1 FROM pickup_point)"
               " OR EXISTS (SELECT 1 FROM sales_point))")
    for table, value in (('product', _PRODUCT_VILLAGE), ('pickup_point', _FIRST_VILLAGE),
                         ('sales_point', _POINT_VILLAGE)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('village_id', sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET village_id = {value}")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('village_id', existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(batch_op.f(f'ix_{table}_village_id'), ['village_id'], unique=False)
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_village_id_village'), 'village', ['village_id'], ['id'])
            if table == 'product':
                batch_op.drop_constraint(batch_op.f('uq_product_name'), type_='unique')
                batch_op.create_unique_constraint(batch_op.f('uq_product_village_id_name'), ['village_id', 'name'])

    op.execute("INSERT INTO point_manager (user_id, village_id, created_at)"
               " SELECT u.id, v.id, CURRENT_TIMESTAMP FROM user_account u CROSS JOIN village v"
               " WHERE u.role = 'manager'")


def downgrade():
    for table in ('sales_point', 'pickup_point', 'product'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == 'product':
                batch_op.drop_constraint(batch_op.f('uq_product_village_id_name'), type_='unique')
                batch_op.create_unique_constraint(batch_op.f('uq_product_name'), ['name'])
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_village_id_village'), type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_village_id'))
            batch_op.drop_column('village_id')
    with op.batch_alter_table('point_manager', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_point_manager_village_id'))
        batch_op.drop_index(batch_op.f('ix_point_manager_user_id'))
    op.drop_table('point_manager')

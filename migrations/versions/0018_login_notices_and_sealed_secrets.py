"""users and admins are told when guessing at a password is being slowed (a new notification event)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 17:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

EVENTS_OLD = ("order_placed", "payment_recorded", "ready_for_pickup", "out_for_delivery", "hold_expiring",
              "awaiting_acceptance", "statement_issued", "backorder_filled", "watch_digest", "test")
EVENTS_NEW = EVENTS_OLD + ("login_failures",)


def _events(values):
    condition = "event IN ({})".format(", ".join(f"'{v}'" for v in values))
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_notification_event_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_notification_event_valid'), condition)


def upgrade():
    _events(EVENTS_NEW)


def downgrade():
    op.execute("DELETE FROM notification WHERE event = 'login_failures'")
    _events(EVENTS_OLD)

"""who sees money, who acts: money_visibility and action_permission per installation

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 02:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('money_visibility', sa.String(length=32),
                                      server_default='everyone', nullable=False))
        batch_op.add_column(sa.Column('action_permission', sa.String(length=32),
                                      server_default='owners_and_admins', nullable=False))


def downgrade():
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.drop_column('action_permission')
        batch_op.drop_column('money_visibility')

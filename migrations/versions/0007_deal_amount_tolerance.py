"""deal amount tolerance: how far a deal's amount may be from the sum of its lines

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 01:35:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_tolerance', sa.Numeric(precision=18, scale=4),
                                      server_default='0.01', nullable=False))


def downgrade():
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.drop_column('amount_tolerance')

"""contact sync: persons (B2C deals' contacts) on or off, and their own CRM properties
(issue #15, person links)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_sync_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('persons', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('person_fields', sa.JSON(), nullable=False,
                                      server_default='{}'))


def downgrade():
    with op.batch_alter_table('contact_sync_settings', schema=None) as batch_op:
        batch_op.drop_column('person_fields')
        batch_op.drop_column('persons')

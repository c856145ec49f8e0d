"""contact sync: a link whose Xero contact is archived is flagged (issue #15, merges and
archives)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 15:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('xero_status', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.drop_column('xero_status')

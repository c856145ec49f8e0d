"""what finance did in Xero stays done; nothing lost, nothing adopted (issue #11, 2-4)

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deal_sync_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paydeck_written_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('amount_prepaid', sa.Numeric(18, 4), nullable=True))
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('use_contact_terms', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))


def downgrade():
    with op.batch_alter_table('installation_settings', schema=None) as batch_op:
        batch_op.drop_column('use_contact_terms')
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.drop_column('amount_prepaid')
        batch_op.drop_column('paydeck_written_at')
    with op.batch_alter_table('deal_sync_request', schema=None) as batch_op:
        batch_op.drop_column('version')

"""token refresh failure state on installations and Xero connections

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:40:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('installation', 'xero_connection')

def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('token_failures', sa.Integer(), server_default='0',
                                          nullable=False))
            batch_op.add_column(sa.Column('token_failing_since', sa.DateTime(),
                                          nullable=True))
            batch_op.add_column(sa.Column('token_failure_detail', sa.Text(), server_default='',
                                          nullable=False))

def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('token_failure_detail')
            batch_op.drop_column('token_failing_since')
            batch_op.drop_column('token_failures')

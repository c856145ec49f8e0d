"""the whole invoice on the deal's link: Xero's lines, totals, payments and allocations; the
last sync; Paydeck's own email of it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detail', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('synced_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('emailed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('emailed_to', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.drop_column('emailed_to')
        batch_op.drop_column('emailed_at')
        batch_op.drop_column('synced_at')
        batch_op.drop_column('detail')

"""re-invoice a voided invoice: the new invoice link names the voided one it replaces

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('replaced_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_invoice_link_replaces_id_invoice_link'),
                                    'invoice_link', ['replaces_id'], ['id'])


def downgrade():
    with op.batch_alter_table('invoice_link', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invoice_link_replaces_id_invoice_link'), type_='foreignkey')
        batch_op.drop_column('replaced_at')
        batch_op.drop_column('replaces_id')

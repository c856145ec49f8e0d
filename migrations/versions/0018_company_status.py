"""contact sync: CRM-side merges and deletes - the link's CRM status, and merged company ids
(issue #15, section 3 "Merges")

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('crm_status_at', sa.DateTime(), nullable=True))
    op.create_table(
        'crm_company_merge',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('installation_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.String(length=64), nullable=False),
        sa.Column('merged_into', sa.String(length=64), nullable=False),
        sa.Column('occurred_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['installation_id'], ['installation.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('installation_id', 'company_id'),
    )


def downgrade():
    op.drop_table('crm_company_merge')
    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.drop_column('crm_status_at')
        batch_op.drop_column('crm_status')

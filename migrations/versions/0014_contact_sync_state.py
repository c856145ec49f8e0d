"""two-way contact sync: the link's sync state, the admin's contact sync settings, conflicts
as review items about a link

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('xero_version', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('crm_version', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('xero_written_version', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('crm_written_version', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('field_hashes', sa.JSON(), server_default='{}',
                                      nullable=False))
        batch_op.add_column(sa.Column('open_conflicts', sa.JSON(), server_default='{}',
                                      nullable=False))
        batch_op.add_column(sa.Column('last_origin', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('synced_at', sa.DateTime(), nullable=True))

    op.create_table(
        'contact_sync_settings',
        sa.Column('installation_id', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('fields', sa.JSON(), server_default='{}', nullable=False),
        sa.Column('contact_groups', sa.JSON(), server_default='[]', nullable=False),
        sa.Column('xero_roles', sa.JSON(), server_default='["customer", "unassigned"]',
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['installation_id'], ['installation.id']),
        sa.PrimaryKeyConstraint('installation_id'),
    )

    with op.batch_alter_table('review_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_link_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_review_item_contact_link_id'), ['contact_link_id'],
                              unique=False)
        batch_op.create_foreign_key('fk_review_item_contact_link_id', 'contact_link',
                                    ['contact_link_id'], ['id'])


def downgrade():
    with op.batch_alter_table('review_item', schema=None) as batch_op:
        batch_op.drop_constraint('fk_review_item_contact_link_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_review_item_contact_link_id'))
        batch_op.drop_column('contact_link_id')

    op.drop_table('contact_sync_settings')

    with op.batch_alter_table('contact_link', schema=None) as batch_op:
        batch_op.drop_column('synced_at')
        batch_op.drop_column('last_origin')
        batch_op.drop_column('open_conflicts')
        batch_op.drop_column('field_hashes')
        batch_op.drop_column('crm_written_version')
        batch_op.drop_column('xero_written_version')
        batch_op.drop_column('crm_version')
        batch_op.drop_column('xero_version')

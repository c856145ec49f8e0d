"""the initial contact match: a run, what it read, the rows the admin reviews (issue #15
part 2)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'contact_match_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('installation_id', sa.Integer(), nullable=False),
        sa.Column('xero_connection_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('crm_cursor', sa.String(length=512), nullable=True),
        sa.Column('crm_done', sa.Boolean(), nullable=False),
        sa.Column('xero_page', sa.Integer(), nullable=False),
        sa.Column('xero_done', sa.Boolean(), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('crm_calls', sa.Integer(), nullable=False),
        sa.Column('xero_calls', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('started_by', sa.String(length=64), nullable=False),
        sa.Column('approved_at', sa.DateTime(), nullable=True),
        sa.Column('batches', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['installation_id'], ['installation.id']),
        sa.ForeignKeyConstraint(['xero_connection_id'], ['xero_connection.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_contact_match_run_installation', 'contact_match_run',
                    ['installation_id', 'id'], unique=False)
    op.create_table(
        'contact_match_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('side', sa.String(length=8), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('email', sa.String(length=255), nullable=False),
        sa.Column('tax_number', sa.String(length=64), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('in_scope', sa.Boolean(), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['contact_match_run.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id', 'side', 'record_id'),
    )
    op.create_table(
        'contact_match_row',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('crm_id', sa.String(length=64), nullable=True),
        sa.Column('xero_id', sa.String(length=64), nullable=True),
        sa.Column('crm_name', sa.String(length=255), nullable=False),
        sa.Column('xero_name', sa.String(length=255), nullable=False),
        sa.Column('matched_on', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('candidates', sa.JSON(), nullable=False),
        sa.Column('choice', sa.String(length=16), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('batch', sa.Integer(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['contact_match_run.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_contact_match_row_kind', 'contact_match_row', ['run_id', 'kind', 'id'],
                    unique=False)
    op.create_index('ix_contact_match_row_state', 'contact_match_row', ['run_id', 'state'],
                    unique=False)


def downgrade():
    op.drop_index('ix_contact_match_row_state', table_name='contact_match_row')
    op.drop_index('ix_contact_match_row_kind', table_name='contact_match_row')
    op.drop_table('contact_match_row')
    op.drop_table('contact_match_record')
    op.drop_index('ix_contact_match_run_installation', table_name='contact_match_run')
    op.drop_table('contact_match_run')

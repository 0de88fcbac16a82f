"""Sender authentication results on every logged message.

`messages.auth` holds the SPF, DKIM and DMARC result words as JSON;
`messages.auth_results` the Authentication-Results field (RFC 8601) that
the relay recorded for the log. Both are empty for messages logged before.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('auth_results', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('auth_results')
        batch_op.drop_column('auth')

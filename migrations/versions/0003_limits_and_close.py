"""Closing threads and counting accepted messages for the rate limits.

`threads.closed_at` is set by `relay thread close` (NULL: open). Mail to
a closed thread's aliases is refused at RCPT.

`accept_events` holds one row per accepted message and limited key (the
sender address, the client's network), so that every relay process
sharing the database counts the same messages. Keys are stored only as
a keyed hash; rows older than the longest window are pruned.

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))

    op.create_table('accept_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('accept_events', schema=None) as batch_op:
        batch_op.create_index('ix_accept_events_key_at', ['kind', 'key_hash', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_accept_events_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accept_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accept_events_at'))
        batch_op.drop_index('ix_accept_events_key_at')
    op.drop_table('accept_events')
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_column('closed_at')

"""Secrets at rest: sealed columns become binary, every such table gets `key_id`.

The columns of `storage.sealing.SEALED` (real addresses, names, subjects,
refusal texts, remote errors, attachment names, message bytes) become
`LargeBinary`: they hold AES-GCM envelopes from now on. On PostgreSQL
the values already there become their UTF-8 bytes (`convert_to`). SQLite
stores a value by its own type whatever the column declares, so there the
columns keep their declared type (changing it would mean copying every
table, which SQLite refuses for tables that others reference while
foreign keys are on); new values are BLOBs, old ones stay TEXT and read
back as such. Each table gains a nullable
`key_id`, indexed so the re-encryption pass finds the rows it must move:
NULL marks the rows written before this revision (plaintext, with a plain
lower-case address in the `*_key` index columns). The migration cannot
read key files, so it leaves those rows as they are; the relay seals and
re-indexes them itself (see `storage/reseal.py`).

Revision ID: 0004
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = "0003"
branch_labels = None
depends_on = None

SEALED = {
    "sellers": {"email": False, "name": False},
    "seller_addresses": {"email": False},
    "threads": {"buyer_email": False, "buyer_name": False},
    "messages": {"mail_from": False, "rcpt_to": False, "header_from": True, "subject": True,
                 "reason": True, "excerpt": True},
    "message_bodies": {},  # already LargeBinary
    "attachments": {"filename": True},
    "message_events": {"detail": True},
    "queue": {"envelope_from": False, "recipient": False, "last_error": True},
}
# The types of 0001, to go back to.
TEXT_TYPES = {
    ("sellers", "email"): sa.String(320), ("sellers", "name"): sa.String(200),
    ("seller_addresses", "email"): sa.String(320),
    ("threads", "buyer_email"): sa.String(320), ("threads", "buyer_name"): sa.String(200),
    ("messages", "mail_from"): sa.String(320), ("messages", "rcpt_to"): sa.Text(),
    ("messages", "header_from"): sa.String(320), ("messages", "subject"): sa.Text(),
    ("messages", "reason"): sa.Text(), ("messages", "excerpt"): sa.Text(),
    ("attachments", "filename"): sa.Text(), ("message_events", "detail"): sa.Text(),
    ("queue", "envelope_from"): sa.String(320), ("queue", "recipient"): sa.String(320),
    ("queue", "last_error"): sa.Text(),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, nullable in (columns.items() if postgres else ()):
                extra = {"postgresql_using": f"convert_to({column}, 'UTF8')"} if postgres else {}
                batch_op.alter_column(column, existing_type=TEXT_TYPES[(table, column)],
                                      type_=sa.LargeBinary(), existing_nullable=nullable, **extra)
            batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
            batch_op.create_index(f"ix_{table}_key_id", ["key_id"], unique=False)


def downgrade() -> None:
    # Only for a database whose rows are all plaintext (`[storage] encrypt = false`
    # and the re-encryption pass finished): sealed bytes cannot become text here.
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_key_id")
            batch_op.drop_column("key_id")
            for column, nullable in (columns.items() if postgres else ()):
                extra = {"postgresql_using": f"convert_from({column}, 'UTF8')"} if postgres else {}
                batch_op.alter_column(column, existing_type=sa.LargeBinary(),
                                      type_=TEXT_TYPES[(table, column)], existing_nullable=nullable,
                                      **extra)

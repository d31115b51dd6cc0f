"""Audit spool: ids of spooled records replayed into the store (exactly-once replay).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_replayed",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_replayed_replayed_at", "audit_replayed", ["replayed_at"])


def downgrade() -> None:
    op.drop_table("audit_replayed")

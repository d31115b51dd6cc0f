"""DTR: the hook's decisions by CRD coverage-assertion-id (cds_service.dtr.store) and the SMART
Backend Services access tokens, as SHA-256 (cds_service.dtr.smart).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dtr_context",
        sa.Column("assertion_id", sa.String(128), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
    )
    op.create_index("ix_dtr_context_recorded_at", "dtr_context", ["recorded_at"])
    op.create_index("ix_dtr_context_expires_at", "dtr_context", ["expires_at"])
    op.create_table(
        "dtr_access_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("client_iss", sa.String(512), nullable=False),
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dtr_access_token_expires_at", "dtr_access_token", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dtr_access_token")
    op.drop_table("dtr_context")

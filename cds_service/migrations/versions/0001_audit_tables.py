"""Audit trail: hook calls, the cards they issued, and feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_hook_call",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hook_instance", sa.String(64)),
        sa.Column("client_iss", sa.String(512)),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Float),
        sa.Column("policies", sa.JSON, nullable=False),
        sa.Column("decisions", sa.JSON, nullable=False),
        sa.Column("retrieval", sa.JSON),
        sa.Column("timings", sa.JSON),
        sa.Column("response", sa.JSON),
    )
    op.create_index("ix_audit_hook_call_recorded_at", "audit_hook_call", ["recorded_at"])
    op.create_index("ix_audit_hook_call_hook_instance", "audit_hook_call", ["hook_instance"])
    op.create_table(
        "audit_card",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("hook_call_id", sa.Integer, sa.ForeignKey("audit_hook_call.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_audit_card_hook_call_id", "audit_card", ["hook_call_id"])
    op.create_table(
        "audit_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False),
        sa.Column("client_iss", sa.String(512)),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("item", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_feedback_received_at", "audit_feedback", ["received_at"])
    op.create_index("ix_audit_feedback_card_uuid", "audit_feedback", ["card_uuid"])


def downgrade() -> None:
    op.drop_table("audit_feedback")
    op.drop_table("audit_card")
    op.drop_table("audit_hook_call")

"""Client JWT replay store: token ids (hashed) seen, until their expiry.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_jti",
        sa.Column("key", sa.String(64), primary_key=True),  # sha256 of (iss, jti): unique across workers
        sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds: the token's exp plus leeway
    )
    op.create_index("ix_auth_jti_expires_at", "auth_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_table("auth_jti")

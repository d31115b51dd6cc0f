"""Alembic migrations of the audit database (run by ``cart-cds audit migrate`` and at start-up)."""

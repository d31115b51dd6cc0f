"""cart-cds service layer: CDS Hooks 2.0 / Da Vinci CRD HTTP protocol, record retrieval, cards, CLI.

``create_app`` is imported lazily so that importing any ``cds_service`` module (for example from the
CLI or another layer's tests) does not pull in Flask routes or create anything.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from cds_service.app import create_app

        return create_app
    raise AttributeError(f"module 'cds_service' has no attribute {name!r}")

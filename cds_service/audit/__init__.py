"""The audit trail (CRD found-37): one row per hook call, feedback against card uuids, retention.

``AuditStore`` (store), ``install_audit`` / ``note`` (capture: Flask wiring and the use case's hand-over of
retrieval outcomes and timings), ``audit`` click group (cli: migrate, show, purge).
"""

from cds_service.audit.capture import install_audit, note
from cds_service.audit.store import AuditStore, HookCallRecord, migrate

__all__ = ["AuditStore", "HookCallRecord", "install_audit", "migrate", "note"]

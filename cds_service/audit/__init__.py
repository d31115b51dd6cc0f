"""The audit trail (CRD found-37): one row per hook call, feedback against card uuids, retention.

``AuditStore`` (store), ``install_audit`` / ``hook_answered`` / ``feedback_received`` (capture: the Flask
wiring, and the route's one hand-over of what a hook call or a feedback POST produced), ``audit`` click
group (cli: migrate, show, purge).
"""

from cds_service.audit.capture import feedback_received, hook_answered, install_audit
from cds_service.audit.store import AuditStore, HookCallRecord, migrate

__all__ = ["AuditStore", "HookCallRecord", "feedback_received", "hook_answered", "install_audit", "migrate"]

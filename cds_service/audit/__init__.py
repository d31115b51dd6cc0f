"""The audit trail (CRD found-37): one row per hook call, feedback against card uuids, retention.

``AuditStore`` (store), ``AuditSpool`` / ``AuditTrail`` (spool: the durable local spool behind the store
while it is unreachable), ``install_audit`` / ``hook_answered`` / ``feedback_received`` (capture: the Flask
wiring, and the route's one hand-over of what a hook call or a feedback POST produced), ``audit`` click
group (cli: migrate, show, purge).
"""

from cds_service.audit.capture import (
           feedback_received,
           hook_answered,
           install_audit,
           readiness,
)
from cds_service.audit.spool import AuditSpool, AuditTrail
from cds_service.audit.store import AuditStore, HookCallRecord, migrate

__all__ = ["AuditSpool", "AuditStore", "AuditTrail", "HookCallRecord", "feedback_received", "hook_answered",
           "install_audit", "migrate", "readiness"]

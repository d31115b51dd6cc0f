"""An audit trail with no holes: records the store cannot take wait in a durable local spool and are
replayed into the store when it is back, in order and exactly once.

An answer the payer gave must be on record (CRD found-37). When the audit database is unreachable
(PostgreSQL stopped, SQLite locked), a hook call is still answered, and its record is appended to this
worker's spool file (``audit-spool-<pid>-<random>.jsonl`` in ``CART_CDS_AUDIT_SPOOL_DIR``: one JSON line per
record, flushed and ``fsync``ed before the answer leaves, so it survives a crash or a power loss).

- Order: while a worker's spool holds records, its new records are appended behind them, and a replay
  writes a file front to back; so each worker's records reach the store in the order they were made
  (each keeps the time it was made).
- Exactly once: each spooled record has an id, which the store writes in the same transaction as the
  record (``audit_replayed``); a replay interrupted anywhere is simply run again.
- Replay: a background thread of the worker retries every ``retry_seconds`` until the spool is empty;
  spool files of workers that died (their ``flock`` is free) are adopted and replayed too.
- Bounded: at most ``max_records`` per worker. A record that can be neither stored nor spooled raises
  ``AuditNotRecorded``: the capture then withholds the answer (503), since the trail must not have a hole.
- Visible: ``state()`` (used by ``/readyz``) says whether the store answers and how many records wait.

The log says "hook call audited" only for a record the store has written; a spooled one is logged as
spooled, and its replay as replayed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cds_service.audit.store import AuditStore, AuditStoreUnavailable, HookCallRecord

log = logging.getLogger(__name__)

_PREFIX, _SUFFIX = "audit-spool-", ".jsonl"


class AuditNotRecorded(RuntimeError):
    """Neither the store nor the spool took the record (the spool is full or cannot be written)."""


class AuditSpool:
    """This worker's spool file plus the orphaned files of dead workers, in one directory."""

    def __init__(self, directory: str | Path, max_records: int) -> None:
        self.directory = Path(directory)
        self.max_records = max_records
        self._lock = threading.Lock()
        self._pid: int | None = None  # the process that opened ``_file`` (a forked worker opens its own)
        self._file: BinaryIO | None = None
        self._count = 0

    def _own(self) -> BinaryIO:
        if self._file is None or self._pid != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"  # one per spool object, even in one process
            handle = open(self.directory / name, "ab+")
            weakref.finalize(self, handle.close)  # closed (and its lock released) with the spool
            fcntl.flock(handle, fcntl.LOCK_EX)  # held while this worker lives: not an orphan
            self._file, self._pid, self._count = handle, os.getpid(), 0
        return self._file

    def append(self, entry: dict) -> int:
        """Append ``entry`` durably; returns the number of records now waiting in this worker's file."""
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            spool = self._own()
            if self._count >= self.max_records:
                raise AuditNotRecorded("spool-full")
            spool.seek(0, os.SEEK_END)
            spool.write(line)
            spool.flush()
            os.fsync(spool.fileno())
            self._count += 1
            return self._count

    def own_pending(self) -> int:
        with self._lock:
            return self._count if self._pid == os.getpid() else 0

    def pending(self) -> int:
        """Records waiting in every spool file of the directory (this worker's and others')."""
        total = 0
        for path in self._files():
            try:
                total += path.read_bytes().count(b"\n")
            except OSError:
                continue
        return total

    def drain(self, write: Callable[[dict], None]) -> int:
        """Replay this worker's file, then orphaned files, front to back through ``write`` (which raises
        ``AuditStoreUnavailable`` to stop); emptied files are truncated or removed. Returns the number
        of records written. (A file that failed half-way is replayed whole next time: the records
        already written are skipped by their ids.)"""
        written = 0
        with self._lock:
            own = self._file if self._pid == os.getpid() else None
            if own is not None and self._count:
                written += _replay(own, write)
                own.truncate(0)
                os.fsync(own.fileno())
                self._count = 0
            for path in self._files():
                if own is not None and path.name == Path(own.name).name:
                    continue
                written += _adopt(path, write)
        return written

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.startswith(_PREFIX) and p.name.endswith(_SUFFIX))


def _entries(spool) -> list[dict]:
    """The complete records of a spool file, in order (a torn last line -- a crash mid-append, whose
    answer was therefore never sent -- is skipped)."""
    spool.seek(0)
    out = []
    for line in spool.read().splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def _replay(spool, write: Callable[[dict], None]) -> int:
    entries = _entries(spool)
    for entry in entries:
        write(entry)
    return len(entries)


def _adopt(path: Path, write: Callable[[dict], None]) -> int:
    """Replay and remove the spool file of a worker that is gone (nobody holds its lock)."""
    try:
        with open(path, "rb+") as spool:
            try:
                fcntl.flock(spool, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a live worker's file
            written = _replay(spool, write)
            path.unlink()
            return written
    except FileNotFoundError:  # adopted by another worker meanwhile
        return 0


class AuditTrail:
    """The store, with the spool behind it: what the capture writes through."""

    def __init__(self, store: AuditStore, spool: AuditSpool | None, retry_seconds: float = 2.0) -> None:
        self.store = store
        self.spool = spool
        self._retry = retry_seconds
        self._order = threading.Lock()  # one record at a time per worker: keeps the spool's order
        self._replayer: threading.Thread | None = None
        self._next_orphan_check = 0.0

    def hook_call(self, record: HookCallRecord) -> tuple[str, int | None]:
        """("stored", row id) or ("spooled", records waiting); raises ``AuditNotRecorded``."""
        return self._record("hook", asdict(record), lambda: self.store.record_hook_call(record))

    def feedback(self, items: list[dict], client_iss: str | None, service: str) -> tuple[str, int | None]:
        data = {"items": items, "client_iss": client_iss, "service": service}
        return self._record("feedback", data, lambda: self.store.record_feedback(items, client_iss, service))

    def _record(self, kind: str, data: dict, write: Callable[[], Any]) -> tuple[str, int | None]:
        if self.spool is None or not self.spool.own_pending():  # the usual case: straight to the store
            try:
                result = write()
            except AuditStoreUnavailable:
                if self.spool is None:
                    raise AuditNotRecorded("no-spool") from None
            else:
                self._adopt_orphans_now_and_then()
                return "stored", result
        with self._order:  # behind the records already waiting, until a replay has emptied the spool
            return "spooled", self._spool(self.spool, kind, data)

    def _spool(self, spool: AuditSpool, kind: str, data: dict) -> int:
        entry = {"id": uuid.uuid4().hex, "kind": kind, "at": datetime.now(UTC).isoformat(), "data": data}
        try:
            waiting = spool.append(entry)
        except OSError as exc:
            raise AuditNotRecorded(type(exc).__name__) from exc
        self._start_replayer()
        return waiting

    def _start_replayer(self) -> None:
        if self._replayer is None or not self._replayer.is_alive():
            self._replayer = threading.Thread(target=self._replay_until_empty, daemon=True, name="cart-cds-audit-replay")
            self._replayer.start()

    def _replay_until_empty(self) -> None:
        while True:
            time.sleep(self._retry)
            if self.replay() and (self.spool is None or not self.spool.own_pending()):
                return

    def replay(self) -> bool:
        """Write every waiting record to the store; True when the spool was emptied (or there is none)."""
        if self.spool is None:
            return True
        try:
            with self._order:
                written = self.spool.drain(self._write_entry)
        except AuditStoreUnavailable:
            return False
        if written:
            log.info("spooled audit records replayed", extra={"count": written})
        return True

    def _write_entry(self, entry: dict) -> None:
        data, at = entry["data"], datetime.fromisoformat(entry["at"])
        if entry["kind"] == "hook":
            self.store.record_hook_call(HookCallRecord(**{**data, "recorded_at": at}), replay_id=entry["id"])
        else:
            self.store.record_feedback(data["items"], data["client_iss"], data["service"], received_at=at,
                                       replay_id=entry["id"])

    def _adopt_orphans_now_and_then(self) -> None:
        """Spool files left by dead workers are replayed by a live one (checked every few seconds)."""
        now = time.monotonic()
        if self.spool is None or now < self._next_orphan_check:
            return
        self._next_orphan_check = now + 10 * self._retry
        if self.spool.pending():
            self._start_replayer()

    def state(self) -> dict:
        """Readiness of the trail: ready when the store answers and nothing waits in the spool."""
        reachable = self.store.reachable()
        waiting = self.spool.pending() if self.spool is not None else 0
        return {"status": "ready" if reachable and not waiting else "degraded",
                "auditStore": "reachable" if reachable else "unreachable", "spooledRecords": waiting}

"""Production gunicorn settings for ``cart-cds serve`` (and the benchmark's served runs).

Why these values:
- ``gthread`` workers (processes = ``CART_CDS_WORKERS``, threads = ``CART_CDS_THREADS``): a hook is
  CPU-bound when the record is prefetched, but waits on the EHR's FHIR server when it is not; threads let a
  worker keep computing other hooks while one waits, processes use the cores. The default, four workers
  with two threads each, is what measured best on a 2-core host (the benchmark, typical prefetched hook:
  109 hooks/s at concurrency 4 and 8, against 83-85 with two workers of four threads, whose threads
  contend for one interpreter lock, and 105 with two single-thread workers, which cannot overlap FHIR
  waits); give two workers per core elsewhere.
- ``timeout`` is twice the hook budget plus a margin: gunicorn must never kill a worker that is still
  inside a hook's budget (the FHIR deadline already bounds every call), only one that is truly stuck.
- ``graceful_timeout``: on SIGTERM (a deploy, a scale-in) in-flight hooks get their whole budget to finish
  before the worker exits, so no EHR sees a reset connection for a call it already sent.
- ``keepalive``: EHRs send hooks over long-lived connections; keeping them 30 s avoids a TCP (and TLS at
  the proxy) handshake per signature. In ``gthread`` idle keep-alive connections wait in the poller, not
  in a thread.
- request limits: request line and header sizes are gunicorn's (a JWT fits in 8 KB); the body limit is
  ``CART_CDS_MAX_BODY_BYTES``, enforced by the app (413) since gunicorn has none.
- gunicorn's own error answers (bad request line, 414, 431, malformed chunked body) are OperationOutcome
  JSON like the app's (``gunicorn_errors``), and never quote the request.
- the access log holds the method, the *path without query string* (``%(U)s``), status, size and time:
  a query string may carry patient ids, and no header (user agent, referer, token) is logged.
- TLS (``CART_CDS_TLS_CERT_FILE``/``CART_CDS_TLS_KEY_FILE``): gunicorn terminates it with a context whose
  minimum version is TLS 1.2 (CRD sec-3, Inferno's TLS test); otherwise a reverse proxy does.
- the app is built once in the master (policies validated, discovery built) and forked: each worker then
  drops the database connections it inherited (``post_fork``), as SQLAlchemy requires after ``fork``.
- metrics: every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics``,
  answered by any one worker, sums all of them (``cds_service.metrics``). ``multiprocess_metrics`` makes a
  fresh directory for this server before the app (and the metrics library) is loaded, unless the operator
  named one; ``child_exit`` drops an exited worker's live gauges; the master removes its own directory
  when it exits.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import ssl
import tempfile
from typing import Any

from flask import Flask

from cds_service import gunicorn_errors
from cds_service.audit.capture import EXTENSION_KEY
from cds_service.metrics import MULTIPROC_ENV
from cds_service.settings import Settings

ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
KEEPALIVE_SECONDS = 30
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190


def production_options(settings: Settings, *, bind: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """gunicorn settings (names as in gunicorn's ``Config``) for serving the app in production."""
    budget = settings.hook_budget_seconds
    return {
        "bind": bind or settings.bind,
        "workers": workers or settings.workers,
        "threads": settings.threads,
        "worker_class": "gthread",
        "timeout": int(budget * 2) + 10,
        "graceful_timeout": int(budget) + 5,
        "keepalive": KEEPALIVE_SECONDS,
        "limit_request_line": MAX_REQUEST_LINE,
        "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_field_size": MAX_HEADER_FIELD_BYTES,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "cart-cds",
        "post_fork": _drop_inherited_connections,
        "child_exit": _forget_worker_metrics,
        **tls_options(settings),
        "on_starting": gunicorn_errors.install,  # gunicorn's own 400/414/431 answers as JSON
    }


def tls_options(settings: Settings) -> dict[str, Any]:
    """gunicorn's TLS settings when ``cart-cds serve`` terminates TLS itself (CRD sec-2/sec-3: TLS 1.2 or
    later; CDS Hooks requires TLS for every endpoint). Without a certificate the service speaks plain HTTP
    and must sit behind a reverse proxy that terminates TLS."""
    if settings.tls_cert_file is None:
        return {}
    return {"certfile": str(settings.tls_cert_file), "keyfile": str(settings.tls_key_file),
            "ssl_context": minimum_tls_1_2}


def minimum_tls_1_2(config, default_ssl_context_factory) -> ssl.SSLContext:
    """gunicorn ``ssl_context`` hook: its default context (certificate, key, ciphers), refusing below TLS 1.2."""
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def multiprocess_metrics() -> str:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a directory for this server's metric files; call before the
    app is built. An operator's own directory is kept (it must be emptied between runs, as the library
    requires); otherwise a new one is made and removed when this process exits."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="cart-cds-metrics-")
        os.environ[MULTIPROC_ENV] = directory
        atexit.register(_remove_in, os.getpid(), directory)
    return directory


def _remove_in(owner: int, directory: str) -> None:
    """Remove ``directory`` at exit of the process that made it only: forked workers inherit the exit
    handlers of the master and must not take the directory away from the others."""
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def _forget_worker_metrics(server, worker) -> None:
    """gunicorn ``child_exit`` hook: the exited worker's live gauges no longer count (its counters do)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _drop_inherited_connections(server, worker) -> None:
    """gunicorn ``post_fork`` hook: the worker must not share the master's pooled DB connections."""
    app = server.app.wsgi()
    if isinstance(app, Flask):
        after_fork(app)


def after_fork(app: Flask) -> None:
    store = app.extensions.get(EXTENSION_KEY)
    if store is not None:
        store.engine.dispose(close=False)  # forget, without closing, the connections the parent holds


YOUNG_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Set the collector up for serving hooks; call once the app is loaded (before gunicorn forks).

    Every few hooks the cyclic collector walks the whole heap (its oldest generation), and most of that
    heap is the loaded app's long-lived objects (fhir.resources models, schemas, policies, value sets):
    those walks were the slow tail of the hook latency. ``gc.freeze`` moves everything alive now out of
    the collector's view (and, before a fork, keeps the workers' shared memory pages untouched by it).
    Measured on the typical benchmark hook over 1,500 calls: CPU p99 52.6 -> 18.3 ms, p95 22.7 -> 17.5 ms.

    The youngest generation's threshold goes from 700 to ``YOUNG_THRESHOLD`` allocations: a large record
    is millions of objects that all survive the hook, and with collections every 700 allocations the
    older generations' walks over that growing live record made the hook super-linear in the record
    (20,000-resource bench record: 3.1 s -> 2.3 s CPU, log-log slope 1k -> 20k 1.10 -> 1.00; no change
    on the typical record). A young collection still runs every 10,000 allocations, so a hook's cyclic
    garbage waits for at most that many (a few hundred kB), not the millions a raise of every
    threshold let pile up."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])

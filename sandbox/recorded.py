"""Recorded FHIR responses: the documented on-disk format, keyed by request, and how to look them up.

One JSON file per scenario, ``sandbox/recorded/<server>/<scenario>.json``::

    {
      "format": "cart-cds-recorded/1",
      "server": "replay",                      # or "hapi", ... (where it was recorded)
      "base": "http://127.0.0.1:8090/fhir",    # the FHIR base the bodies' absolute URLs point at
      "scenario": "abecma-meets-all-criteria",
      "responses": {
        "GET Patient/abecma-meets-all-criteria-pt": {"status": 200, "body": {...}},
        "GET Observation?_count=200&_sort=-date&code=http://loinc.org|33358-3,...&patient=...": {...},
        "GET ?_bundletype=searchset&_count=3&_getpages=...&_getpagesoffset=3": {...}
      }
    }

A request key is ``METHOD path?query``: the path relative to the FHIR base (no leading slash; empty for
HAPI's base-level paging links), the query parameters decoded and sorted by name then value, joined
with ``&`` and not re-encoded. When replaying against another base (the replay server's real port, or a
``responses`` mock), every occurrence of ``base`` in a body is rewritten to the new base.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

FORMAT = "cart-cds-recorded/1"
SANDBOX = Path(__file__).parent
RECORDED = SANDBOX / "recorded"


def request_key(method: str, path: str, params: Iterable[tuple[str, str]] | dict[str, str] = ()) -> str:
    items = sorted(params.items() if isinstance(params, dict) else params)
    query = "&".join(f"{name}={value}" for name, value in items)
    return f"{method.upper()} {path.strip('/')}" + (f"?{query}" if query else "")


def key_for_url(method: str, url: str, base: str) -> str | None:
    """The key of an absolute URL under ``base``; None when the URL is not under that base."""
    base = base.rstrip("/")
    parts = urlsplit(url)
    path_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if path_url != base and not path_url.startswith(base + "/"):
        return None
    return request_key(method, path_url[len(base):], parse_qsl(parts.query, keep_blank_values=True))


def rebase(value, old: str, new: str):
    """``value`` (any JSON) with every ``old`` base URL replaced by ``new``."""
    if old == new:
        return value
    return json.loads(json.dumps(value).replace(old.rstrip("/"), new.rstrip("/")))


def recording(server: str, base: str, scenario: str, responses: dict[str, dict]) -> dict:
    return {"format": FORMAT, "server": server, "base": base, "scenario": scenario, "responses": responses}


def load(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return data


def load_dir(directory: Path, base: str) -> dict[str, dict]:
    """Every recorded response under ``directory``, rebased onto ``base``, merged into one key index."""
    index: dict[str, dict] = {}
    for path in sorted(directory.glob("*.json")):
        data = load(path)
        index.update(rebase(data["responses"], data["base"], base))
    return index

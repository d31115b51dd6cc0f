"""Limits on hostile input, checked before a hook request is parsed into typed objects.

The body size is capped by Flask (``MAX_CONTENT_LENGTH``, 413). Inside that cap a body can still be
built to hurt: a hundred thousand draft orders, prefetch Bundles with millions of entries, one string of
several megabytes, or arrays nested thousands deep (which would exhaust the recursion of the JSON
parser or of any code walking the tree). Each limit is far above what a real EHR sends for one patient
and one signing session, and a request over it is refused naming the field: 413 for too many or too
long, 400 for nesting too deep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson
from flask import Flask, g, request

from cds_service.errors import RequestError


@dataclass(frozen=True)
class InputLimits:
    max_draft_orders: int = 50
    # Feedback: a client sends one item per card a clinician acted on -- one or a few per request; each
    # item is an audit row (20,000 items in one request took 5.8 s and 1.8 GB of audit database).
    max_feedback_items: int = 100
    max_prefetch_keys: int = 32
    max_prefetch_entries: int = 20_000  # Bundle entries over all prefetch keys together
    max_array_items: int = 20_000  # any single array
    max_string_length: int = 1_000_000  # characters (attachments inlined as base64 are the long ones)
    max_depth: int = 64  # FHIR resources nest about 10 deep; a prefetch Bundle adds 4


class InputLimitError(RequestError):
    """A request over one of the limits; ``status`` is 413 (too many / too long) or 400 (too deep)."""

    def __init__(self, status: int, message: str, path: str | None = None):
        super().__init__(message, path)
        self.status = status


def check_limits(body: object, limits: InputLimits = InputLimits(), body_bytes: int | None = None) -> None:
    """Raise ``InputLimitError`` for the first limit ``body`` (parsed JSON: plain dicts, lists, strings and
    numbers, as a JSON parser returns them) breaks; ``body_bytes`` is the size of the raw body, when known."""
    # When the whole body is shorter than the string limit, no string in it can break that limit, so
    # strings are not even looked at.
    check_strings = body_bytes is None or body_bytes > limits.max_string_length
    if not within_tree_limits(body, limits, check_strings):
        check_tree(body, limits, check_strings)
    if not isinstance(body, dict):
        return
    context = body.get("context")
    draft_orders = context.get("draftOrders") if isinstance(context, dict) else None
    entries = draft_orders.get("entry") if isinstance(draft_orders, dict) else None
    if isinstance(entries, list) and len(entries) > limits.max_draft_orders:
        raise InputLimitError(413, f"more than {limits.max_draft_orders} draft orders", "context.draftOrders.entry")
    prefetch = body.get("prefetch")
    if isinstance(prefetch, dict):
        if len(prefetch) > limits.max_prefetch_keys:
            raise InputLimitError(413, f"more than {limits.max_prefetch_keys} prefetch keys", "prefetch")
        total = sum(len(v["entry"]) for v in prefetch.values() if isinstance(v, dict) and isinstance(v.get("entry"), list))
        if total > limits.max_prefetch_entries:
            raise InputLimitError(413, f"more than {limits.max_prefetch_entries} Bundle entries in prefetch", "prefetch")


def within_tree_limits(body: object, limits: InputLimits, check_strings: bool) -> bool:
    """True when no nesting, array, string or object key in ``body`` breaks a limit.

    The common case -- every request that is not hostile -- pays only for this: one pass level by level
    over the containers, with exact type tests and no path bookkeeping (about a third of the cost of the
    path-naming walk). When it finds a problem, ``check_tree`` walks again to name the path."""
    if type(body) is str:
        return not check_strings or len(body) <= limits.max_string_length
    level: list[Any] = [body] if type(body) is dict or type(body) is list else []
    max_items, max_length = limits.max_array_items, limits.max_string_length
    depth = 0
    while level:
        depth += 1
        if depth > limits.max_depth:
            return False
        below: list = []
        keep = below.append
        objects: list = []
        for container in level:
            children: Iterable[Any]
            if type(container) is list:
                if len(container) > max_items:
                    return False
                children = container
            else:
                objects.append(container)
                children = container.values()
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    keep(child)
                elif check_strings and kind is str and len(child) > max_length:
                    return False
        # JSON object keys are strings: one C-level pass over every key of this level
        if check_strings and objects and max(map(len, chain.from_iterable(objects)), default=0) > max_length:
            return False
        level = below
    return True


def check_tree(body: object, limits: InputLimits, check_strings: bool) -> None:
    """Raise ``InputLimitError`` naming the path of the first problem, in depth-first order.

    Iterative walk over containers only (the check must not itself recurse on a hostile depth); paths
    are linked tuples, joined only on failure."""
    if check_strings and isinstance(body, str) and len(body) > limits.max_string_length:
        raise InputLimitError(413, f"string longer than {limits.max_string_length} characters", "$")
    if not isinstance(body, (dict, list)):
        return
    stack: list[tuple[dict | list, int, tuple]] = [(body, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if depth > limits.max_depth:
            raise InputLimitError(400, f"nested deeper than {limits.max_depth} levels", _path(path))
        if isinstance(value, list):
            if len(value) > limits.max_array_items:
                raise InputLimitError(413, f"array longer than {limits.max_array_items} items", _path(path))
            children: Iterable[tuple[Any, Any]] = enumerate(value)
        else:
            children = value.items()
        for key, item in children:
            if check_strings and isinstance(key, str) and len(key) > limits.max_string_length:
                raise InputLimitError(413, "object key too long", _path(path))
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (path, key)))
            elif check_strings and isinstance(item, str) and len(item) > limits.max_string_length:
                raise InputLimitError(413, f"string longer than {limits.max_string_length} characters",
                                      _path((path, key)))


def _path(linked: tuple) -> str:
    parts: list[object] = []
    while linked:
        linked, part = linked
        parts.append(part)
    out = ""
    for part in reversed(parts):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    # keys are client text: keep the path readable but never long
    return (out or "$")[:200]


_PARSED_BODY = "input_limits_parsed_body"  # flask.g: the request body as parsed and checked here


def parsed_body(default: object = None) -> object:
    """The current request's body as ``install_input_limits`` parsed and checked it, so that the route
    does not parse it a second time; ``default`` when it was not parsed here (not valid JSON, not a POST
    under /cds-services, or no limits installed). Call inside a request."""
    return g.get(_PARSED_BODY, default)


def install_input_limits(app: Flask, limits: InputLimits = InputLimits()) -> None:
    """Check every JSON POST under /cds-services before the route parses it; the parsed body is kept for
    the route (``parsed_body``).

    A body that is not valid JSON is left to the route (its 400 names the problem), except when the
    parser gave up on nesting depth, which is reported here as too deep."""

    @app.before_request
    def enforce_input_limits():
        if request.method != "POST" or not request.path.startswith("/cds-services/"):
            return None
        raw = request.get_data(cache=True)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
                raise InputLimitError(400, f"nested deeper than {limits.max_depth} levels") from None
            return None
        check_limits(body, limits, len(raw))
        if request.path.endswith("/feedback"):
            check_feedback_items(body, limits)
        setattr(g, _PARSED_BODY, body)
        return None


def check_feedback_items(body: object, limits: InputLimits = InputLimits()) -> None:
    items = body.get("feedback") if isinstance(body, dict) else None
    if isinstance(items, list) and len(items) > limits.max_feedback_items:
        raise InputLimitError(413, f"more than {limits.max_feedback_items} feedback items", "feedback")

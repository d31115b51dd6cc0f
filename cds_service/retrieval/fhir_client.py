"""A small FHIR R4 REST client for one hook call: reads and paged searches against ``fhirServer``.

Why it is this careful: the server is named by the caller, the token is the EHR's, and the hook has a
hard response-time budget. So every call
- carries ``Authorization: Bearer`` only when a token was given, and only to the ``fhirServer`` origin:
  ``next`` links and redirects that leave the origin are never followed;
- has connect and read timeouts taken from one per-hook ``Deadline``, and stops reading a body when the
  deadline passes or the byte cap is reached (the body is streamed, never loaded whole first);
- maps HTTP status and transport failures once, here, to typed ``FhirRequestError`` subclasses whose
  ``reason`` is the short code the retrieval outcome carries (``http-401``, ``timeout``, ``not-fhir`` ...).

Nothing is cached between hooks: the token lives on the client instance (one per hook), never on the
``requests.Session``, which may be shared by a worker for connection reuse. Logs and error messages name
the resource type, status and reason only (allow-listed ``extra`` fields), never a URL (it holds patient ids), a body, or the token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import requests
from requests.adapters import HTTPAdapter

from cds_service import metrics
from cds_service.retrieval.fhir_server_guard import origin_of

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024


class Deadline:
    """One point in time by which all FHIR I/O of a hook must be done. ``clock`` is injectable so
    tests can move time without sleeping."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


class FhirRequestError(Exception):
    """A FHIR call that gave no usable answer. ``reason`` is a short code; the message is safe to log or
    return (resource type and reason only)."""

    reason = "error"
    description = "failed"

    def __init__(self, resource_type: str | None = None):
        self.resource_type = resource_type
        super().__init__(f"FHIR {resource_type or 'request'}: {self.description} ({self.reason})")


class Unauthorized(FhirRequestError):
    reason, description = "http-401", "the FHIR server did not accept the access token"


class Forbidden(FhirRequestError):
    reason, description = "http-403", "the FHIR server refused access"


class NotFound(FhirRequestError):
    reason, description = "http-404", "not found"


class Gone(FhirRequestError):
    reason, description = "http-410", "gone"


class RateLimited(FhirRequestError):
    reason, description = "http-429", "the FHIR server is rate limiting"


class ClientError(FhirRequestError):
    reason, description = "http-4xx", "the FHIR server rejected the request"


class ServerError(FhirRequestError):
    reason, description = "http-5xx", "the FHIR server failed"


class FhirTimeout(FhirRequestError):
    reason, description = "timeout", "no answer within the deadline"


class FhirConnectionError(FhirRequestError):
    reason, description = "connection", "the FHIR server could not be reached"


class NotJson(FhirRequestError):
    reason, description = "not-json", "the answer is not JSON"


class NotFhir(FhirRequestError):
    reason, description = "not-fhir", "the answer is not the FHIR content asked for"


class ResponseTooLarge(FhirRequestError):
    reason, description = "too-large", "the answer exceeds the size limit"


class OffOrigin(FhirRequestError):
    reason, description = "off-origin", "the FHIR server sent us to another origin"


_STATUS_ERRORS: Mapping[int, type[FhirRequestError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    429: RateLimited,
}


def error_for_status(status: int) -> type[FhirRequestError] | None:
    """The one mapping from an HTTP status to a typed error (None for success)."""
    if 200 <= status < 300:
        return None
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, ClientError)


@dataclass(frozen=True)
class SearchResult:
    """Resources gathered over the pages of one search. ``complete`` is False when paging stopped early;
    ``reason`` then says why (``page-cap``, ``deadline``, ``next-off-origin`` or a failed page's reason)."""

    resources: tuple[dict, ...]
    complete: bool = True
    reason: str | None = None


def search_page(bundle: object, expected: Collection[str], bundle_types: Collection[str] = ("searchset",)):
    """(resources, next link) of one search Bundle whose matches must be of the ``expected`` types.

    Included resources (``search.mode = include``) are kept whatever their type; OperationOutcome entries
    (warnings about the search) are dropped. Raises ``NotFhir`` for anything else: not a Bundle, a Bundle
    of another type, or a match of an unexpected type."""
    resource_type = next(iter(expected), None)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotFhir(resource_type)
    if bundle.get("type") not in bundle_types:
        raise NotFhir(resource_type)
    entries = bundle.get("entry", [])
    links = bundle.get("link", [])
    if not isinstance(entries, list) or not isinstance(links, list):
        raise NotFhir(resource_type)
    resources = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise NotFhir(resource_type)
        mode = (entry.get("search") or {}).get("mode") if isinstance(entry.get("search"), dict) else None
        kind = resource.get("resourceType")
        if kind == "OperationOutcome" or mode == "outcome":
            continue
        if mode != "include" and kind not in expected:
            raise NotFhir(resource_type)
        resources.append(resource)
    next_url = next(
        (link.get("url") for link in links
         if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str)),
        None,
    )
    return resources, next_url


class FhirClient:
    """Reads and searches for one hook call against one ``fhirServer`` base URL."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        deadline: Deadline,
        *,
        max_pages: int = 20,
        max_bytes: int = 20 * 1024 * 1024,
        session: requests.Session | None = None,
    ):
        origin = origin_of(base_url)
        if origin is None:
            raise ValueError("fhirServer must be an absolute http(s) URL checked by the fhirServer guard")
        self.base_url = base_url.rstrip("/")
        self.origin = origin
        self._token = access_token or None
        self.deadline = deadline
        self.max_pages = max(1, max_pages)
        self.max_bytes = max_bytes
        self._session = session or new_session(1)  # a client on its own sends one request at a time

    def __repr__(self) -> str:  # never show the token
        return f"FhirClient(origin={self.origin!r})"

    def read(self, path: str, expected: Collection[str]) -> dict:
        """GET ``{base}/{Type}/{id}``; the answer must be one of the ``expected`` resource types."""
        resource_type = path.split("/", 1)[0]
        resource = self._get(f"{self.base_url}/{quote(path, safe='/')}", None, resource_type)
        if resource.get("resourceType") not in expected:
            raise NotFhir(resource_type)
        return resource

    def search(self, resource_type: str, params: Mapping[str, str], expected: Collection[str] = ()) -> SearchResult:
        """GET ``{base}/{Type}?params`` and follow ``next`` links (bounded). Values are passed to requests
        for encoding, never pasted into the URL. A failure on the first page raises; a failure after it
        returns the pages obtained as incomplete."""
        expected = tuple(expected) or (resource_type,)
        bundle = self._get(f"{self.base_url}/{quote(resource_type)}", dict(params), resource_type)
        resources, next_url = search_page(bundle, expected)
        return self._follow(resources, next_url, expected, pages=1)

    def continue_search(self, first_page: list[dict], next_url: str | None, expected: Collection[str]) -> SearchResult:
        """Follow the ``next`` link of a Bundle obtained elsewhere (a paginated prefetch)."""
        return self._follow(list(first_page), next_url, tuple(expected), pages=1)

    def _follow(self, resources: list[dict], next_url: str | None, expected: tuple[str, ...], pages: int) -> SearchResult:
        resource_type = expected[0]
        while next_url:
            url = urljoin(self.base_url + "/", next_url)
            if origin_of(url) != self.origin:
                log.warning("FHIR search next link leaves the fhirServer origin; not followed",
                            extra={"resourceType": resource_type, "reason": "next-off-origin"})
                return SearchResult(tuple(resources), False, "next-off-origin")
            if pages >= self.max_pages:
                return SearchResult(tuple(resources), False, "page-cap")
            if self.deadline.expired:
                return SearchResult(tuple(resources), False, "deadline")
            try:
                page, next_url = search_page(self._get(url, None, resource_type), expected)
            except FhirRequestError as exc:
                return SearchResult(tuple(resources), False, exc.reason)
            resources.extend(page)
            pages += 1
        return SearchResult(tuple(resources))

    def _get(self, url: str, params: dict | None, resource_type: str) -> dict:
        with metrics.fhir_query():
            return self._get_measured(url, params, resource_type)

    def _get_measured(self, url: str, params: dict | None, resource_type: str) -> dict:
        headers = {"Accept": FHIR_JSON}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        started = time.monotonic()
        for _ in range(MAX_REDIRECTS + 1):
            if origin_of(url) != self.origin:
                raise OffOrigin(resource_type)
            remaining = self.deadline.remaining()
            if remaining <= 0:
                raise FhirTimeout(resource_type)
            try:
                with self._session.get(
                    url,
                    params=params,
                    headers=headers,
                    timeout=(remaining, remaining),
                    stream=True,
                    allow_redirects=False,
                ) as response:
                    if response.is_redirect:
                        url, params = urljoin(url, response.headers.get("location", "")), None
                        continue
                    error = error_for_status(response.status_code)
                    if error is not None:
                        log.info("FHIR request answered with an error status",
                                 extra={"resourceType": resource_type, "status": response.status_code})
                        raise error(resource_type)
                    body = self._read_body(response, resource_type)
                    content_type = response.headers.get("content-type", "")
            except requests.Timeout:
                raise FhirTimeout(resource_type) from None
            except requests.RequestException:
                raise FhirConnectionError(resource_type) from None
            log.debug("FHIR response read", extra={
                "resourceType": resource_type, "bytes": len(body),
                "duration_ms": round((time.monotonic() - started) * 1000, 1)})
            return _parse(body, content_type, resource_type)
        raise OffOrigin(resource_type)  # too many redirects, even on the same origin

    def _read_body(self, response: requests.Response, resource_type: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLarge(resource_type)
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise ResponseTooLarge(resource_type)
            if len(chunk) == CHUNK_BYTES and self.deadline.expired:  # more is coming, and too late
                raise FhirTimeout(resource_type)
        return bytes(body)


def _parse(body: bytes, content_type: str, resource_type: str) -> dict:
    try:
        value = json.loads(body)
    except ValueError:
        if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
            raise NotFhir(resource_type) from None  # an HTML error or login page
        raise NotJson(resource_type) from None
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise NotFhir(resource_type)
    return value


def new_session(pool_size: int) -> requests.Session:
    """A session for FHIR calls: no automatic retries (the deadline leaves no room for them), a
    connection pool as large as the retrieval thread pool. It holds no credentials."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session

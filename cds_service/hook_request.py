"""The JSON edge of a hook call: body bytes -> validated, frozen ``OrderSignRequest``.

Validation happens once, here, against ``schemas/order-sign-request.schema.json``; after that the rest of
the service works with typed values and never re-checks shapes. Unknown members are ignored (CRD
found-33). FHIR resources (draft orders, prefetch values) are kept as the raw JSON the EHR sent: the
mapping layer reads them leniently, so an order written in a slightly wrong FHIR shape (the order-sign
library's own "R4" example puts ``doseQuantity`` straight under the dosage) is still accepted here.

Every rejection is a ``HookRequestError`` whose ``path`` is the JSON path at fault and whose message is
written by us without echoing the value that was sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from cds_service.discovery import CONFIGURATION_OPTIONS, CRD_VERSIONS
from cds_service.errors import HookRequestError, UnsupportedVersionError

CONFIGURATION_KEY = "davinci-crd.configuration"
REQUESTED_VERSION_KEY = "davinci-crd.requestedVersion"


@dataclass(frozen=True)
class FhirAuthorization:
    """The EHR's access token for ``fhirServer``. Transient: never logged, stored or reused across calls."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"FhirAuthorization(token_type={self.token_type!r}, scope={self.scope!r}, access_token=<redacted>)"


@dataclass(frozen=True)
class OrderSignContext:
    user_id: str
    patient_id: str
    encounter_id: str | None
    draft_orders: dict  # the FHIR Bundle as sent

    def draft_order_resources(self) -> tuple[dict, ...]:
        """The request resources of ``draftOrders``, in Bundle order."""
        return tuple(entry["resource"] for entry in self.draft_orders.get("entry", ()))


@dataclass(frozen=True)
class OrderSignRequest:
    hook: str
    hook_instance: str
    fhir_server: str | None
    fhir_authorization: FhirAuthorization | None
    context: OrderSignContext
    prefetch: dict | None  # key -> resource, Bundle, OperationOutcome or None, as sent; None when absent
    extension: dict
    configuration: Mapping[str, bool | int]  # every declared CRD option, defaults filled in
    requested_version: str | None = None


def parse_order_sign_request(body: bytes) -> OrderSignRequest:
    """Decode and validate an order-sign request body; raises ``HookRequestError`` (400) or
    ``UnsupportedVersionError`` (422)."""
    return order_sign_request(decode_json(body))


def order_sign_request(data: Any) -> OrderSignRequest:
    """Validate an order-sign request body already decoded from JSON (``decode_json``: the route gets it
    from the input limits, which parsed it once); raises as ``parse_order_sign_request``."""
    validate_json("order-sign-request", data)
    auth = data.get("fhirAuthorization")
    context = data["context"]
    extension = data.get("extension") or {}
    requested_version = extension.get(REQUESTED_VERSION_KEY)
    if requested_version is not None and requested_version not in CRD_VERSIONS:
        raise UnsupportedVersionError(
            "this service supports CRD version " + ", ".join(CRD_VERSIONS), json_path(("extension", REQUESTED_VERSION_KEY)))
    if auth is not None and auth.get("patient") is not None and auth["patient"] != context["patientId"]:
        # cds-r-2: the token was granted for another patient than the one the hook is about
        raise HookRequestError("must be the patient of context.patientId", json_path(("fhirAuthorization", "patient")))
    return OrderSignRequest(
        hook=data["hook"],
        hook_instance=data["hookInstance"],
        fhir_server=data.get("fhirServer"),
        fhir_authorization=None if auth is None else FhirAuthorization(
            access_token=auth["access_token"], token_type=auth["token_type"], expires_in=auth["expires_in"],
            scope=auth["scope"], subject=auth["subject"], patient=auth.get("patient")),
        context=OrderSignContext(
            user_id=context["userId"], patient_id=context["patientId"], encounter_id=context.get("encounterId"),
            draft_orders=context["draftOrders"]),
        prefetch=data.get("prefetch"),
        extension=extension,
        configuration=parse_configuration(extension.get(CONFIGURATION_KEY) or {}),
        requested_version=requested_version,
    )


def parse_configuration(values: Mapping[str, Any]) -> Mapping[str, bool | int]:
    """The CRD configuration the client asked for: declared options typed and defaulted, unknown codes
    ignored (CRD dev-17). A declared option of the wrong JSON type is a 400 naming its path."""
    configuration = {}
    for option in CONFIGURATION_OPTIONS:
        value = values.get(option.code, option.default)
        if not option.accepts(value):
            raise HookRequestError(f"must be {option.expected}",
                                   json_path(("extension", CONFIGURATION_KEY, option.code)))
        configuration[option.code] = value
    return MappingProxyType(configuration)


def decode_json(body: bytes) -> Any:
    """Strict JSON (RFC 8259: no NaN, valid UTF-8, bounded nesting) -> Python values."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HookRequestError(
            f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})") from None


@cache
def _validator(name: str) -> Draft202012Validator:
    """Built once per schema. Local ``$ref``s are inlined: resolving one on every call cost a third of the
    validation of a request."""
    text = resources.files("cds_service.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(inline_local_refs(schema, schema.get("$defs", {})),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def inline_local_refs(node: Any, defs: Mapping[str, Any], resolving: frozenset[str] = frozenset()) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/<name>"}`` replaced by that definition (a recursive one is
    left as a reference; ``$defs`` stays, so it still resolves)."""
    if isinstance(node, list):
        return [inline_local_refs(item, defs, resolving) for item in node]
    if not isinstance(node, dict):
        return node
    name = node["$ref"].removeprefix("#/$defs/") if node.keys() == {"$ref"} else None
    if name is not None and name in defs and name not in resolving:
        return inline_local_refs(defs[name], defs, resolving | {name})
    return {key: inline_local_refs(value, defs, resolving) for key, value in node.items()}


def validate_json(schema_name: str, data: Any) -> None:
    """Validate ``data`` against ``cds_service/schemas/<schema_name>.schema.json``; the first problem
    becomes a ``HookRequestError`` naming its path."""
    problems = [(_describe(error), error.validator) for error in _validator(schema_name).iter_errors(data)]
    if problems:
        # Shallowest path first; at one depth a wrong value before a missing member, then by path.
        (path, message), _ = min(problems, key=lambda p: (
            _depth(p[0][0]), p[1] in ("required", "dependentRequired"), p[0][0] or ""))
        raise HookRequestError(message if path else f"request body {message}", path)


def _depth(path: str | None) -> int:
    return 0 if path is None else path.count(".") + path.count("[") + 1


def _describe(error: ValidationError) -> tuple[str | None, str]:
    """(path, message) for a schema error, in words that do not repeat the offending value. A schema may
    word its own message with the (ignored-by-validators) keyword ``x-error``."""
    parts = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        missing = next(name for name in expected if name not in error.instance)
        return json_path(parts + [missing]), "is required"
    if kind == "dependentRequired":
        trigger = next(name for name, needs in expected.items() if name in error.instance)
        missing = next(name for name in expected[trigger] if name not in error.instance)
        return json_path(parts + [missing]), f"is required when {trigger} is present"
    if "x-error" in error.schema:  # the schema's own wording for this field
        return json_path(parts), error.schema["x-error"]
    if kind == "type":
        names = [expected] if isinstance(expected, str) else expected
        return json_path(parts), "must be " + " or ".join(_TYPE_WORDS[name] for name in names)
    if kind == "const":
        return json_path(parts), f"must be {json.dumps(expected)}"
    if kind == "enum":
        return json_path(parts), "must be one of " + ", ".join(json.dumps(value) for value in expected)
    if kind == "format":
        return json_path(parts), f"must be a valid {expected}"
    if kind == "minLength":
        return json_path(parts), "must not be empty"
    if kind == "minItems":
        return json_path(parts), f"must have at least {expected} item(s)"
    if kind == "minimum":
        return json_path(parts), f"must be at least {expected}"
    return json_path(parts), "is invalid"


_TYPE_WORDS = {"object": "a JSON object", "array": "an array", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(parts: Iterable[str | int]) -> str | None:
    """``context.draftOrders.entry[0].resource``; keys that are not identifiers are bracketed
    (``extension["davinci-crd.configuration"]``). The empty path (the body itself) is None."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += "[" + json.dumps(part[:64]) + "]"
    return text or None

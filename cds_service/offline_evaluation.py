"""``cart-cds evaluate``: the order-sign use case on a recorded hook request, without HTTP.

An integration engineer or a payer analyst replays a request an EHR sent (or a sandbox hook) and reads
the answer the service would have given, as of any date::

    cart-cds evaluate HOOK.json [--as-of 2026-11-24] [--fhir-server URL] [--format json|text] [--compact]

The request goes through exactly what a hook call goes through -- the same input limits, the same
parsing and validation, ``order_sign.handle_order_sign`` with an ``OrderSignService`` built from the
``CART_CDS_*`` settings -- only the HTTP edge is missing (client JWT checks and the audit trail belong to
that edge and do not apply). ``--format json`` prints the CDS Hooks response; ``--format text`` a
summary a person reads: per card the product, policy, verdict and every criterion with its status,
reason and evidence, then the coverage information written on each order.

``--fhir-server`` replaces the request's ``fhirServer`` (a live server such as HAPI, or the sandbox
replay server ``cart-cds sandbox fhir-server``). The operator chose it, so a loopback address is
accepted; every other check of the server-side request forgery guard still applies. The recorded
``fhirAuthorization`` is dropped with it: that token was issued for the recorded server, not this one, and
the server the operator named is queried without a token (as an open test server).

Anything wrong with the input -- not JSON, not a valid order-sign request, a refused ``fhirServer``, no
record data at all (the 412 case) -- is one message naming the JSON path, with exit status 2, never a
traceback. A bad ``CART_CDS_*`` setting exits with status 1, as ``cart-cds serve`` does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click

from cds_service.errors import (
    FhirServerNotAllowedError,
    RecordUnavailableError,
    RequestError,
)
from cds_service.hook_request import decode_json, order_sign_request
from cds_service.input_limits import check_limits
from cds_service.order_sign import OrderSignService, handle_order_sign
from cds_service.response.cards import card_decision
from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from cds_service.settings import Settings

BAD_INPUT_EXIT_CODE = 2


class EvaluationInputError(click.ClickException):
    """The hook file (or an option standing in for one of its fields) cannot be evaluated: exit 2."""

    exit_code = BAD_INPUT_EXIT_CODE


def settings_for_fhir_server(settings: Settings, fhir_server: str | None) -> Settings:
    """The settings under which an operator-given ``fhir_server`` (a replay server, a test server) is
    queried: loopback allowed and its host open, since the operator, not a client, chose it and no
    client token stands behind the queries."""
    if fhir_server is None:
        return settings
    host = urlsplit(fhir_server).netloc.lower()
    return dataclasses.replace(settings, allow_loopback_fhir=True, fhir_open_hosts=(*settings.fhir_open_hosts, host))


def evaluate_hook(body: bytes, *, settings: Settings, as_of: date, fhir_server: str | None = None) -> dict:
    """The CDS Hooks response (JSON) the service gives for one recorded order-sign request body.

    Raises ``RequestError`` exactly where the service would answer with an error status (its ``path``
    names the field at fault). ``fhir_server`` replaces the request's ``fhirServer`` (see module doc)."""
    settings = settings_for_fhir_server(settings, fhir_server)
    service = OrderSignService.from_settings(settings)
    try:
        return evaluate_request(body, service=service, as_of=as_of, fhir_server=fhir_server)
    finally:
        service.session.close()


def evaluate_request(body: bytes, *, service: OrderSignService, as_of: date, fhir_server: str | None = None) -> dict:
    """``evaluate_hook`` with a service already built (one per suite of hooks, ``policy_cases``)."""
    data = decode_json(body)
    check_limits(data, body_bytes=len(body))
    request = order_sign_request(data)
    if fhir_server is not None:
        request = dataclasses.replace(request, fhir_server=fhir_server, fhir_authorization=None)
    return handle_order_sign(request, service=service, as_of=as_of).response.as_json()


def error_message(exc: RequestError, *, fhir_server_option: bool) -> str:
    """One line for a refused input: where (JSON path, or the option that replaced it) and what."""
    if isinstance(exc, FhirServerNotAllowedError):
        if fhir_server_option:
            return f"--fhir-server: {exc.message}"
        return (f"{exc.message} (evaluate against another server with --fhir-server URL; "
                "CART_CDS_ALLOW_LOOPBACK_FHIR=true admits a loopback fhirServer)")
    if isinstance(exc, RecordUnavailableError):
        return f"{exc.message} The request needs a prefetch or a reachable fhirServer (--fhir-server URL)."
    return f"{exc.path}: {exc.message}" if exc.path else exc.message


# --------------------------------------------------------------------------------------------------
# Text summary
# --------------------------------------------------------------------------------------------------

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # no terminal escapes from a hostile file


def _safe(value: object) -> str:
    return _UNPRINTABLE.sub("?", str(value))


def text_summary(response: dict, as_of: date) -> str:
    """A readable account of a CDS Hooks response: every card's decision, criterion by criterion with
    its evidence, then the coverage information the system actions write onto the orders."""
    cards = response.get("cards", [])
    actions = response.get("systemActions", [])
    lines = [f"Decision date {as_of.isoformat()}: {_count(len(cards), 'card')}, "
             f"{_count(len(actions), 'coverage-information action')}."]
    if not cards:
        lines.append("No draft order is in scope of a loaded policy: the response is {\"cards\": []}.")
    for number, card in enumerate(cards, 1):
        lines += ["", *_card_lines(number, card)]
    lines += ["", "Coverage information:"]
    lines += [line for action in actions for line in _action_lines(action)] or [
        "  none (no in-scope order, no Coverage found, or coverage-info: false)"]
    return "\n".join(_safe(line) for line in lines)


def _card_lines(number: int, card: dict) -> list[str]:
    decision = card_decision(card) or {}
    summary = card.get("summary", "")
    lines = [
        f"Card {number} [{card.get('indicator')}]",
        f"  Product:  {summary.split(': ', 1)[0]}",  # cards.card_summary writes "<product>: <verdict>"
        f"  Order:    {decision.get('order', '-')}",
        f"  Policy:   {decision.get('policy', '-')} (version {decision.get('policyVersion', '-')})",
        f"  Verdict:  {decision.get('verdict', '-')}",
        f"  Summary:  {summary}",
    ]
    missing = decision.get("missingDocumentation", [])
    if missing:
        lines += ["  Documentation to submit:", *(f"    - {item}" for item in missing)]
    referral = decision.get("referral")
    if referral:
        lines.append(f"  Referral: {referral.get('reason', '')}")
        lines += [f"    - {p.get('lineOfBusiness')}: {p.get('policy')} ({p.get('kind')})" for p in referral.get("policies", [])]
    lines.append("  Criteria:")
    for criterion in decision.get("criteria", []):
        flag = " (retrieval failed)" if criterion.get("retrievalFailed") else ""
        lines.append(f"    {criterion.get('status', '?'):<8} {criterion.get('id', '?'):<11} {criterion.get('reason', '')}{flag}")
        lines += [f"{'':25}- {_evidence_text(e)}" for e in criterion.get("evidence", [])]
    return lines


def _evidence_text(evidence: dict) -> str:
    value = " ".join(str(evidence[k]) for k in ("value", "unit") if k in evidence)
    text = f"{evidence.get('reference')} {evidence.get('element')}"
    text += f" = {value}" if value else ""
    return text + (f" ({evidence['date']})" if "date" in evidence else "")


def _action_lines(action: dict) -> list[str]:
    resource = action.get("resource", {})
    order = f"{resource.get('resourceType')}/{resource.get('id')}"
    lines = [f"  {action.get('type')} {order}: {action.get('description', '')}"]
    for extension in resource.get("extension", []):
        if extension.get("url") != COVERAGE_INFORMATION_URL:
            continue
        parts: dict[str, list] = {}
        for part in extension.get("extension", []):
            parts.setdefault(part.get("url"), []).append(_part_value(part))
        shown = ("coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "date")
        lines.append("    " + ", ".join(f"{name}={'/'.join(parts[name])}" for name in shown if name in parts))
        lines += [f"    reason: {reason}" for reason in parts.get("reason", [])]
        lines += [f"    assertion id: {i}" for i in parts.get("coverage-assertion-id", [])]
    return lines


def _part_value(part: dict) -> str:
    if "valueReference" in part:
        return str(part["valueReference"].get("reference"))
    if "valueCodeableConcept" in part:
        concept = part["valueCodeableConcept"]
        codes = [c.get("code") for c in concept.get("coding", []) if c.get("code")]
        return " ".join(filter(None, ["[" + ",".join(codes) + "]" if codes else None, concept.get("text")]))
    return next((str(v) for k, v in part.items() if k.startswith("value")), "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def _read(path: Path, limit: int) -> bytes:
    with path.open("rb") as file:
        body = file.read(limit + 1)
    if len(body) > limit:
        raise EvaluationInputError(f"{path}: larger than CART_CDS_MAX_BODY_BYTES ({limit} bytes)")
    return body


@click.command("evaluate")
@click.argument("hook_file", metavar="HOOK.json",
                type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--as-of", metavar="YYYY-MM-DD", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Decision date [default: today (UTC)].")
@click.option("--fhir-server", metavar="URL", help="Query this FHIR base URL instead of the request's fhirServer.")
@click.option("--format", "output_format", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option("--compact", is_flag=True, help="JSON on one line instead of indented.")
def evaluate(hook_file: Path, as_of: datetime | None, fhir_server: str | None, output_format: str, compact: bool) -> None:
    """Evaluate a recorded order-sign request (no HTTP service needed) and print the response."""
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    decision_date = as_of.date() if as_of else datetime.now(UTC).date()
    try:
        response = evaluate_hook(_read(hook_file, settings.max_body_bytes), settings=settings,
                                 as_of=decision_date, fhir_server=fhir_server)
    except RequestError as exc:
        raise EvaluationInputError(f"{hook_file}: {error_message(exc, fhir_server_option=fhir_server is not None)}") from None
    if output_format == "text":
        click.echo(text_summary(response, decision_date))
    else:
        click.echo(json.dumps(response, indent=None if compact else 2))


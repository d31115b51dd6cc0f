"""``cart-cds demo --dtr``: one documentation-incomplete scenario through DTR, as a DTR app does it.

1. the order is signed (the scenario's recorded hook): its coverage-information names the form and the
   ``coverage-assertion-id``;
2. ``$questionnaire-package`` for that context: the form, and the draft response prefilled from the
   hook's decision; each question is printed with its prefilled answer, or "open" for the clinician;
3. the clinician answers every open "is this criterion met?" question Yes (``manual``, authored by the
   signed-in user) and completes the response;
4. ``$evaluate``: the re-evaluated verdict, the criteria met on attestation alone (for prior
   authorization review) and what is still missing.

Everything goes over HTTP to the service on loopback (``server.form_server``), with client
authentication off (no SMART Backend Services client here). With ``serve`` the page
(``sandbox/dtr_form``, LHC-Forms) stays served for a person to fill the same form in a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TextIO

import requests

from cds_service.response.coverage_information import COVERAGE_INFORMATION_URL
from sandbox.dtr_form.server import SERVICE_PATH, form_server, lforms_installed, recorded_hook

SCENARIO = "missing-labs"  # documentation-incomplete: the serum M-protein result is not on the record
ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
EVIDENCE_WIDTH = 90


def _walk(items):
    for item in items or ():
        yield item
        yield from _walk(item.get("item"))


def _value(element: dict):
    """The value[x] of an answer or a simple sub-extension (None for a complex one such as ``detail``)."""
    return next((v for k, v in element.items() if k.startswith("value")), None)


def _completed(draft: dict, form: dict, user: str) -> tuple[dict, list[str]]:
    """``draft`` with every open ``.met`` question answered Yes by ``user``, nested as the form nests."""
    given = {item["linkId"]: item["answer"] for item in _walk(draft.get("item")) if "answer" in item}
    opened = [item["linkId"] for item in _walk(form["item"]) if item["linkId"].endswith(".met")
              and item["linkId"] not in given]
    manual = {"url": ORIGIN, "extension": [{"url": "source", "valueCode": "manual"}, {
        "url": "author", "extension": [{"url": "practitioner", "valueReference": {"reference": user}}]}]}
    for link in opened:
        given[link] = [{"valueBoolean": True, "extension": [manual]}]

    def nested(items):
        for item in items:
            if item["type"] == "group":
                inner = list(nested(item["item"]))
                if inner:
                    yield {"linkId": item["linkId"], "item": inner}
            elif item["linkId"] in given:
                yield {"linkId": item["linkId"], "answer": given[item["linkId"]]}

    authored = datetime.now(UTC).isoformat(timespec="seconds")
    return draft | {"status": "completed", "authored": authored, "item": list(nested(form["item"]))}, opened


def _print_form(form: dict, draft: dict, out: TextIO) -> None:
    given = {item["linkId"]: item["answer"] for item in _walk(draft.get("item")) if "answer" in item}
    for item in _walk(form["item"]):
        link = item["linkId"]
        if link.endswith(".met"):
            criterion = link.removesuffix(".met")
            shown = {True: "yes (record)", False: "NO (record)"}.get(_value(given[link][0])) if link in given else "OPEN"
            evidence = _value(given[f"{criterion}.evidence"][0]) if f"{criterion}.evidence" in given else ""
            print(f"  {criterion:<12} {shown:<13} {evidence[:EVIDENCE_WIDTH]}", file=out)


def run(as_of: date, out: TextIO, wait: Callable[[str], None] | None = None) -> int:
    """The round trip, printed to ``out``; 0 when the completed form re-evaluates. ``wait(page_url)``
    is called while the servers still run (the demo's ``--serve-form``)."""
    with form_server(SCENARIO, as_of) as server, requests.Session() as http:
        http.trust_env = False
        fhir = server.url + "/fhir"
        answer = http.post(server.url + SERVICE_PATH, json=recorded_hook(SCENARIO), timeout=60).json()
        [info] = [{p["url"]: _value(p) for p in e["extension"] if _value(p) is not None} for a in answer["systemActions"]
                  for e in a["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
        print(f"1. order signed ({SCENARIO}): covered={info['covered']}, doc-needed={info['doc-needed']}, "
              f"doc-purpose={info['doc-purpose']}\n   questionnaire {info['questionnaire']}\n"
              f"   coverage-assertion-id {info['coverage-assertion-id']}", file=out)

        package = http.post(fhir + "/Questionnaire/$questionnaire-package", timeout=60, json={
            "resourceType": "Parameters", "parameter": [
                {"name": "coverage", "resource": server.launch["coverage"]},
                {"name": "context", "valueString": info["coverage-assertion-id"]}]}).json()
        bundle = next(p["resource"] for p in package["parameter"] if p["name"] == "PackageBundle")
        form, draft = (entry["resource"] for entry in bundle["entry"])
        print(f"2. package: {form['title']} (version {form['version']}), prefilled from the decision:", file=out)
        _print_form(form, draft, out)

        completed, opened = _completed(draft, form, server.launch["user"])
        print(f"3. the clinician answers the open questions Yes: {', '.join(opened)}", file=out)

        evaluated = http.post(fhir + "/QuestionnaireResponse/$evaluate", timeout=60, json={
            "resourceType": "Parameters", "parameter": [
                {"name": "context", "valueString": info["coverage-assertion-id"]},
                {"name": "questionnaireResponse", "resource": completed}]})
        if evaluated.status_code != 200:
            print(f"4. $evaluate refused ({evaluated.status_code}): {evaluated.text}", file=out)
            return 1
        parameters = evaluated.json()["parameter"]
        verdict = next(p["valueCode"] for p in parameters if p["name"] == "verdict")
        attested = [next(x["valueString"] for x in p["part"] if x["name"] == "id") for p in parameters
                    if p["name"] == "criterion" and any(x["name"] == "attested" for x in p["part"])]
        missing = [p["valueString"] for p in parameters if p["name"] == "missingDocumentation"]
        print(f"4. re-evaluated: {verdict}; met on attestation (prior authorization review): "
              f"{', '.join(attested) or 'none'}; still missing: {'; '.join(missing) or 'nothing'}", file=out)
        if wait is not None:
            if lforms_installed():
                wait(server.page)
            else:
                print("the form page needs LHC-Forms: run `npm ci` in sandbox/dtr_form", file=out)
    return 0

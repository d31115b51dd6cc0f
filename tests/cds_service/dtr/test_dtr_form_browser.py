"""The DTR form filler in a real browser: headless Chromium opens the page (sandbox/dtr_form) for a
documentation-incomplete sandbox scenario, LHC-Forms renders the package's form prefilled from the
hook's decision, the open questions are answered by clicking Yes, the exported response (with the DTR
elements LHC-Forms drops put back) goes to ``$evaluate``, and the re-evaluated verdict is shown.

Needs Debian's ``chromium`` and ``npm ci`` in sandbox/dtr_form (both in .ci/run); skipped, saying which
is missing, where they cannot be installed."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import urllib.request
from datetime import date

import orjson
import pytest

from sandbox.dtr_form.server import form_server, lforms_installed
from tests.dtr_checks import check_response, walk_items

ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.loopback_http,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not lforms_installed(), reason="LHC-Forms is not installed (npm ci in sandbox/dtr_form)"),
]


def rendered(url: str) -> str:
    """The page's DOM once its script has run (virtual time: no wall-clock wait)."""
    done = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def element_text(dom: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert found, f"no #{element_id} in the page"
    return html.unescape(found.group(1))


def origins(response: dict) -> dict[str, str]:
    return {item["linkId"]: next(p["valueCode"] for e in answer["extension"] if e["url"] == ORIGIN
                                 for p in e["extension"] if p["url"] == "source")
            for item, _ in walk_items(response["item"]) for answer in item.get("answer", ())}


def server_get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=30) as answer:  # noqa: S310 (loopback)
        return answer.read()


def test_a_clinician_completes_the_prefilled_form_in_lhc_forms_and_gets_the_re_evaluated_verdict():
    with form_server("missing-labs", date(2026, 11, 24)) as server:
        prefilled = rendered(server.page)
        dom = rendered(server.page + "?autofill")
        form = orjson.loads(server_get(server.url, "/fhir/Questionnaire/cp-phar-481"))

    assert re.search(r"prefilled from the record; [1-9]\d* question\(s\) left for you", element_text(prefilled, "status"))
    result = orjson.loads(element_text(dom, "result"))
    assert "error" not in result, result
    assert result["verdict"] == "meets-policy"
    assert result["clicked"] and set(result["attested"]) == {link.removesuffix(".met") for link in result["clicked"]}
    assert "meets-policy" in element_text(dom, "verdict")

    response = result["response"]
    check_response(response, form)  # the DTR profile rules, with the elements LHC-Forms drops put back
    assert response["identifier"]["value"] == server.launch["context"]
    assert response["questionnaire"] == f"{form['url']}|{form['version']}"
    sources = origins(response)
    assert {sources[link] for link in result["clicked"]} == {"manual"}
    assert {source for link, source in sources.items() if link not in result["clicked"]} == {"auto-server"}

"""``cart-cds demo --dtr``: the round trip a DTR app makes, printed step by step, over real HTTP."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from sandbox.demo import demo

pytestmark = pytest.mark.loopback_http


def test_the_dtr_demo_shows_package_prefill_answers_and_the_re_evaluated_verdict():
    result = CliRunner().invoke(demo, ["--dtr"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"1\. order signed \(missing-labs\): covered=conditional, doc-needed=clinical, doc-purpose=withpa",
                     out)
    assert re.search(r"questionnaire http://127\.0\.0\.1:\d+/fhir/Questionnaire/cp-phar-481", out)
    opened = re.findall(r"^  (\S+)\s+OPEN", out, re.MULTILINE)
    assert opened and re.search(r"^  I\.A\.1\s+yes \(record\)\s+Shown on the record", out, re.MULTILINE)
    [answered] = re.findall(r"3\. the clinician answers the open questions Yes: (.*)", out)
    assert answered.split(", ") == [f"{cid}.met" for cid in opened]
    [verdict, attested] = re.findall(r"4\. re-evaluated: (\S+); met on attestation \(prior authorization review\): "
                                     r"(.*); still missing: nothing", out)[0]
    assert verdict == "meets-policy" and attested.split(", ") == opened

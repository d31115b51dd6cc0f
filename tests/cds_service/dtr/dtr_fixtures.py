"""Shared DTR test data: the shipped policies, a tiny policy written here so that generation is shown
to be generic over the ``Policy`` model (an ``all`` group inside an ``any`` branch, an ``n_of`` group, a
group with a check of its own, an exclusion without documentation), and $questionnaire-package inputs."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType

from cds_service.dtr.context import DecisionContext
from policies.decision import ApprovalTerms
from policies.engine import evaluate
from policies.loader import shipped_policies
from policies.model import Criterion, Policy, Product, Referrals
from tests.dtr_checks import ORIGIN, walk_items
from tests.policies.policy_fakes import ABECMA_ORDER, AS_OF, NOT_SHOWN, FakeFacts

BASE = "https://payer.example/fhir"
ASSERTION = "0b7e1c9a4f2d4e8a9c3b5d6e7f8a9b0c"
COVERAGE = {"resourceType": "Coverage", "id": "cov1", "status": "active", "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"display": "Example Health Plan"}]}


def leaf(cid: str, text: str, check: str = "age_at_least", documentation: str | None = None, **params) -> Criterion:
    return Criterion(cid, text, f"/test/{cid}", check=check, params=MappingProxyType(params),
                     documentation=documentation)


def group(cid: str, text: str, logic: str, *children: Criterion, n: int | None = None, check: str | None = None,
          documentation: str | None = None) -> Criterion:
    return Criterion(cid, text, f"/test/{cid}", check=check, logic=logic, n=n, documentation=documentation,
                     children=children)


def tiny_policy() -> Policy:
    initial = group(
        "1", "Adult member with a qualifying finding (all of)", "all",
        leaf("1.a", "Member is at least 18", documentation="Date of birth", min_years=18),
        group("1.b", "One of (a or b)", "any",
              group("1.b.1", "Both findings", "all", leaf("1.b.1.x", "Finding X", "finding_x", "Report X"),
                    leaf("1.b.1.y", "Finding Y", "finding_y", "Report Y")),
              leaf("1.b.2", "Finding Z", "finding_z", "Report Z"),
              documentation="Reports X and Y, or report Z"),
        group("1.c", "Two prior treatments, two of p, q and r", "n_of",
              leaf("1.c.p", "Treatment P", "treated_p"), leaf("1.c.q", "Treatment Q", "treated_q"),
              leaf("1.c.r", "Treatment R", "treated_r"), n=2, check="two_prior", documentation="Treatment history"),
    )
    return Policy(
        id="TP-7", title="Tiny test policy", version="2030-01", effective="2030-01-01", last_review="2030-01",
        lines_of_business=("commercial",),
        product=Product("Product P", ("product p",), (), "product-p"),
        initial=initial,
        continued=leaf("2", "Continued therapy is not authorized", "no_prior_dose", "Treatment history"),
        exclusions=(leaf("3", "Indications not addressed here", "indication_in_scope"),),
        other_diagnoses=Referrals("1.B", "Other diagnoses", ()),
        continued_other_diagnoses=Referrals("2.B", "Other diagnoses", ()),
        referral_when_not_met="3",
        approval=ApprovalTerms(3, 1, 0, 0.0, False),
        tocilizumab=leaf("1.approval.extra", "Extra allowance", "extra_allowance"),
        source="tiny.yaml",
    )


def all_policies() -> tuple[Policy, ...]:
    return (*shipped_policies(), tiny_policy())


def parameters(*entries: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": "coverage", "resource": COVERAGE}, *entries]}


def context_param(value: str = ASSERTION) -> dict:
    return {"name": "context", "valueString": value}


def order_param(order: dict = ABECMA_ORDER) -> dict:
    return {"name": "order", "resource": order}


def form_and_draft(bundle: dict) -> tuple[dict, dict]:
    """The Questionnaire and the draft response of one package Bundle (``check_package`` checks it)."""
    resources = [entry["resource"] for entry in bundle["entry"]]
    return resources[0], next(r for r in resources if r["resourceType"] == "QuestionnaireResponse")


def stored_context(expires: datetime, facts: FakeFacts = FakeFacts(serum=NOT_SHOWN)) -> DecisionContext:
    """What the hook keeps for ABECMA_ORDER under Coverage/cov1: by default a documentation-incomplete
    decision (no serum result) made by the real engine."""
    decision = evaluate(shipped_policies()[0], facts, ABECMA_ORDER, AS_OF)
    return DecisionContext(ASSERTION, "Patient/p1", "Coverage/cov1", ("MedicationRequest/car-t-1",), (decision,),
                           expires)


MANUAL = {"url": ORIGIN, "extension": [
    {"url": "source", "valueCode": "manual"},
    {"url": "author", "extension": [{"url": "practitioner", "valueReference": {"reference": "Practitioner/dr-1"}}]}]}


def with_answers(draft: dict, form: dict, answers: dict[str, object]) -> dict:
    """``draft`` completed with the clinician's ``answers`` (``manual`` origin, replacing a prefilled
    answer), nested as the form nests them, status completed: what a form filler sends back."""
    given = {item["linkId"]: item["answer"] for item, _ in walk_items(draft.get("item")) if "answer" in item}
    for link, value in answers.items():
        given[link] = [{"valueBoolean" if isinstance(value, bool) else "valueString": value, "extension": [MANUAL]}]

    def items(form_items):
        for item in form_items:
            if item["type"] == "group":
                inner = list(items(item["item"]))
                if inner:
                    yield {"linkId": item["linkId"], "item": inner}
            elif item["linkId"] in given:
                yield {"linkId": item["linkId"], "answer": given[item["linkId"]]}

    return draft | {"status": "completed", "item": list(items(form["item"]))}

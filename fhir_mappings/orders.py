"""What a draft order asks for: product, CAR-T cell dose, tocilizumab dose and count, prescriber specialty.

EHRs name a product in several places, and all of them count: ``MedicationRequest.medicationCodeableConcept``
(codings in any order: Epic often sends only an SCD, Cerner an SBD plus a local code), a contained
(``#med1``) or referenced ``Medication`` (its ``code`` and ``ingredient[].itemCodeableConcept``), or
``ServiceRequest.code``; a product with no code yet (anito-cel) is recognised only by its text.
``ordered_product`` collects every coding and every name so that applicability can run before the
patient's record is retrieved. The same reading serves every resource that names a drug or procedure
(MedicationStatement, MedicationAdministration, Procedure, Condition), see ``therapy``.

The same order travels under several copies: the draft in ``context.draftOrders``, the EHR's stored copy
in the patient's MedicationRequest history (an order re-signed after an edit is already ``active``), a
ServiceRequest written for the same order. ``order_keys`` says what identifies an order across them: its
``Type/id``; each business identifier with both a ``system`` and a ``value`` (the placer order number);
and its content: the same type, ``authoredOn`` (the same string), requester and product codings (or, with
no coding, product text) are one order, since one prescriber does not write two orders for one product at
the same instant. An identifier without a system is not used, nor content with any of those missing: two
local numbers "1" from different systems are not the same order, and treating another order as this one
would hide history.

Units are UCUM and case-sensitive. A dose without a unit, or in a unit that cannot be converted, is an
unknown fact that carries the raw value: never a guess.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

from fhir_mappings.facts import (
    CellDose,
    Coded,
    Evidence,
    Fact,
    Observed,
    OrderedProduct,
    TocilizumabRequest,
    Unknown,
)
from fhir_mappings.references import (
    Resolver,
    contained,
    reference_string,
    resource_reference,
)
from fhir_mappings.terminology import coding_key, codings_of

UCUM = "http://unitsofmeasure.org"
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense")
DOSE_ELEMENT = "dosageInstruction[0].doseAndRate[0].doseQuantity"

# 10*6, 10*6{CAR+T cells}, 10*8/kg, 10*6{cells}/kg: powers of ten of cells, optionally per kg.
_CELL_UNIT = re.compile(r"^10\*(\d{1,2})(?:\{[^{}]*\})?(/kg)?$")
_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001}

def ordered_product(order: dict, resolve: Resolver | None = None) -> OrderedProduct:
    """Every coding and name of the product a resource names (see module docstring). ``resolve`` finds a
    referenced Medication (``Type/id`` or URL); contained Medications are found without it."""
    if not isinstance(order, dict):
        raise ValueError("order must be a FHIR resource (JSON object)")
    kind = _kind(order)
    codings, names = product_identity(order, resolve)
    return OrderedProduct(
        reference=resource_reference(order) or f"{kind}/(no id)",
        resource_type=kind,
        codings=codings,
        names=names,
        status=order.get("status") if isinstance(order.get("status"), str) else None,
        requester=reference_string(order.get("requester")),
    )


def product_identity(resource: dict, resolve: Resolver | None = None) -> tuple[tuple[Coded, ...], tuple[str, ...]]:
    """(codings, names) of the product a resource names: ``OrderedProduct.codings`` and ``.names`` of
    ``ordered_product``, for callers that identify many resources' drugs and need nothing else of them."""
    if not isinstance(resource, dict):
        raise ValueError("order must be a FHIR resource (JSON object)")
    concepts: list[Any] = []  # raw JSON values: non-objects are skipped below
    names: list[Any] = []  # raw JSON values: only non-blank strings are kept
    if _kind(resource) in MEDICATION_TYPES:
        concepts.append(resource.get("medicationCodeableConcept"))
        reference = resource.get("medicationReference")
        if isinstance(reference, dict):
            names.append(reference.get("display"))
            medication = _medication(resource, reference.get("reference"), resolve)
            if medication is not None:
                concepts.append(medication.get("code"))
                for ingredient in medication.get("ingredient") or ():
                    if isinstance(ingredient, dict):
                        concepts.append(ingredient.get("itemCodeableConcept"))
    else:
        concepts.append(resource.get("code"))
    codings: list[Coded] = []
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        names.append(concept.get("text"))
        for coding in codings_of(concept):
            if isinstance(coding.get("code"), str):
                system = coding.get("system") if isinstance(coding.get("system"), str) else None
                display = coding.get("display") if isinstance(coding.get("display"), str) else None
                codings.append(Coded(system, coding["code"].strip(), display))
                names.append(display)
    clean_names = tuple(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip()))
    return tuple(dict.fromkeys(codings)), clean_names


def order_keys(resource: dict, identity: tuple[tuple[Coded, ...], tuple[str, ...]] | None = None) -> frozenset[str]:
    """What identifies an order across its copies (see module docstring): ``Type/id``,
    ``identifier:system|value`` for each identifier with both, and ``content:...`` when it has an
    ``authoredOn``, a requester and a product. ``identity``: its ``product_identity``, if already known."""
    kind = _kind(resource)
    keys = set()
    if (own := resource_reference(resource)) is not None:
        keys.add(own)
    for identifier in _list(resource.get("identifier")):
        system, value = identifier.get("system"), identifier.get("value")
        if isinstance(system, str) and system.strip() and isinstance(value, str) and value.strip():
            keys.add(f"identifier:{system.strip()}|{value.strip()}")
    authored, requester = resource.get("authoredOn"), reference_string(resource.get("requester"))
    codings, names = identity or product_identity(resource)
    product = sorted({"|".join(k) for k in (coding_key(c.system, c.code) for c in codings) if k})
    product = product or sorted({n.lower() for n in names})
    if isinstance(authored, str) and authored.strip() and requester and product:
        keys.add(f"content:{kind}|{authored.strip()}|{requester}|{','.join(product)}")
    return frozenset(keys)


def cell_dose(record, order: dict) -> Fact[CellDose]:
    """CAR-positive T cells ordered, in 10^6 cells, from the first dose quantity of the order."""
    dose = _stated_dose(record, order)
    if isinstance(dose, Unknown):
        return dose
    value, unit, raw = dose
    match = _CELL_UNIT.match(unit or "")
    if match is None:
        why = "has no unit" if not unit else f"unit {unit!r} is not a UCUM count of cells (10*6)"
        return Unknown(f"the cell dose {why}", evidence=(raw,))
    millions = float(value) * 10 ** (int(match.group(1)) - 6)
    return Observed(CellDose(millions_of_cells=millions, per_kg=bool(match.group(2))), (raw,))


def tocilizumab_request(record, order: dict) -> Fact[TocilizumabRequest]:
    """Dose in mg per administration and number of doses of a tocilizumab order. The number of doses is
    ``timing.repeat.count``, else ``dispenseRequest.numberOfRepeatsAllowed`` + 1, else None (not stated).
    A weight-based dose (mg/kg) stays unknown: the record's weight is not used to convert it."""
    dose = _stated_dose(record, order)
    if isinstance(dose, Unknown):
        return dose
    value, unit, raw = dose
    if unit and unit.endswith("/kg"):
        return Unknown(f"weight-based dose ({value} {unit}): mg per administration depends on body weight", evidence=(raw,))
    if unit not in _MASS_TO_MG:
        why = "has no unit" if not unit else f"unit {unit!r} is not a UCUM mass unit"
        return Unknown(f"the tocilizumab dose {why}", evidence=(raw,))
    evidence = [raw]
    doses, count_element = _number_of_doses(order)
    if doses is not None:
        evidence.append(Evidence(raw.reference, count_element, str(doses)))
    request = TocilizumabRequest(dose_mg_per_administration=float(value) * _MASS_TO_MG[unit], number_of_doses=doses)
    return Observed(request, tuple(evidence))


def ordering_specialties(record, order: dict) -> Fact[tuple[Coded, ...]]:
    """Specialty codings of the order's requester: ``PractitionerRole.specialty`` (the requester itself,
    or any role in the record whose ``practitioner`` is the requesting Practitioner) and
    ``Practitioner.qualification[].code``. Every coding is returned (NUCC, SNOMED or local) plus text-only
    specialties as codings without system; the caller matches them against its value set."""
    requester = order.get("requester") if isinstance(order, dict) else None
    ref = reference_string(requester)
    if ref is None:
        return Unknown("the order names no requester")
    target = record.resolve(ref, context=order)
    if target is None:
        kind = "PractitionerRole" if "PractitionerRole" in ref else "Practitioner"
        outcome = record.retrieval(kind)
        if not outcome.usable_in_full:
            return Unknown(f"{kind} not retrieved completely ({outcome.reason or outcome.state.value})", retrieval_failed=True)
        return Unknown("the requester is not in the record")
    roles, practitioner = [], None
    if target.get("resourceType") == "PractitionerRole":
        roles.append(target)
        practitioner = record.resolve(reference_string(target.get("practitioner")), context=target)
    elif target.get("resourceType") == "Practitioner":
        practitioner = target
    if practitioner is not None:
        roles.extend(r for r in record.of_type("PractitionerRole") if r is not target and _role_of(record, r, practitioner))
    codes: list[Coded] = []
    evidence: list[Evidence] = []
    for role in roles:
        for i, concept in enumerate(role.get("specialty") or ()):
            _collect_codes(concept, record.reference_of(role), f"specialty[{i}]", codes, evidence)
    if practitioner is not None:
        for i, qualification in enumerate(practitioner.get("qualification") or ()):
            if isinstance(qualification, dict):
                _collect_codes(qualification.get("code"), record.reference_of(practitioner), f"qualification[{i}].code", codes, evidence)
    if not codes:
        return Unknown("the requester's specialty is not documented")
    return Observed(tuple(dict.fromkeys(codes)), tuple(evidence))


# ---------------------------------------------------------------------------------------- helpers


def _medication(order: dict, reference: Any, resolve: Resolver | None) -> dict | None:
    if not isinstance(reference, str) or not reference.strip():
        return None
    if reference.startswith("#"):
        return contained(order, reference)
    found = resolve(reference) if resolve is not None else None
    return found if isinstance(found, dict) and found.get("resourceType") == "Medication" else None


def _kind(resource: dict) -> str:
    kind = resource.get("resourceType")
    return kind if isinstance(kind, str) else "Resource"


def _stated_dose(record, order: dict) -> tuple[float, str | None, Evidence] | Unknown:
    """(value, UCUM unit, evidence of the raw quantity) of the order's first dose, or why there is none."""
    quantity, element = _dose_quantity(order)
    if quantity is None:
        return Unknown("the order states no dose quantity")
    value, unit = quantity.get("value"), _unit(quantity)
    raw = Evidence(record.reference_of(order), element, _text(value), unit)
    if not _positive_number(value):
        return Unknown("the dose quantity has no positive numeric value", evidence=(raw,))
    return float(value), unit, raw


def _dose_quantity(order: dict) -> tuple[dict | None, str]:
    """The first dosageInstruction doseAndRate doseQuantity, with its element path."""
    for i, dosage in enumerate(_list(order.get("dosageInstruction"))):
        for j, dose_rate in enumerate(_list(dosage.get("doseAndRate"))):
            quantity = dose_rate.get("doseQuantity")
            if isinstance(quantity, dict):
                return quantity, f"dosageInstruction[{i}].doseAndRate[{j}].doseQuantity"
    return None, DOSE_ELEMENT


def _unit(quantity: dict) -> str | None:
    """The UCUM code of a Quantity (``code`` when the system is UCUM or absent), else its ``unit`` only
    when that is itself written in UCUM; None when there is no unit at all."""
    code, system = quantity.get("code"), quantity.get("system")
    if isinstance(code, str) and code.strip() and system in (None, UCUM):
        return code.strip()
    unit = quantity.get("unit")
    return unit.strip() if isinstance(unit, str) and unit.strip() else None


def _number_of_doses(order: dict) -> tuple[int | None, str]:
    for i, dosage in enumerate(_list(order.get("dosageInstruction"))):
        repeat = (dosage.get("timing") or {}).get("repeat") if isinstance(dosage.get("timing"), dict) else None
        count = repeat.get("count") if isinstance(repeat, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return count, f"dosageInstruction[{i}].timing.repeat.count"
    dispense = order.get("dispenseRequest")
    repeats = dispense.get("numberOfRepeatsAllowed") if isinstance(dispense, dict) else None
    if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 0:
        return repeats + 1, "dispenseRequest.numberOfRepeatsAllowed"
    return None, ""


def _role_of(record, role: dict, practitioner: dict) -> bool:
    return record.resolve(reference_string(role.get("practitioner")), context=role) is practitioner


def _collect_codes(concept: Any, reference: str, element: str, codes: list[Coded], evidence: list[Evidence]) -> None:
    if not isinstance(concept, dict):
        return
    found = False
    for coding in codings_of(concept):
        if isinstance(coding.get("code"), str):
            codes.append(Coded(coding.get("system"), coding["code"].strip(), coding.get("display")))
            evidence.append(Evidence(reference, element, coding["code"].strip(), date=None))
            found = True
    text = concept.get("text")
    if not found and isinstance(text, str) and text.strip():
        codes.append(Coded(None, None, text.strip()))
        evidence.append(Evidence(reference, element, text.strip()))


def _list(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _positive_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

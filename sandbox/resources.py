"""Builders of the FHIR R4 resources a scenario is made of, each in the style of one kind of EHR.

Real EHRs send the same clinical fact in different shapes, and the service has to read all of them:

- ``epic``: several codings per concept (RxNorm brand + ingredient + local code, LOINC + local result code)
  plus a readable ``text``; oral drugs as MedicationRequests grouped by ``groupIdentifier``, infused drugs
  as MedicationAdministrations; timestamps in UTC.
- ``cerner``: the local code first and the standard code second; drugs as a contained ``Medication``
  referenced by ``#id``; timestamps with a local offset; the user is a PractitionerRole.
- ``hapi``: minimal resources as a FHIR test server holds them: one standard coding, no text, dates only,
  drug history as MedicationStatements.

Every resource carries the sandbox ``meta.tag`` so it can be found and removed on a shared server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox import catalog as c

STYLES = ("epic", "cerner", "hapi")
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


@dataclass
class Chart:
    """One scenario's resources under construction: hands out stable ids ``<scenario>-<kind>-<n>``."""

    scenario: str
    style: str
    resources: list[dict] = field(default_factory=list)
    _counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown EHR style {self.style!r}")

    @property
    def patient_id(self) -> str:
        return f"{self.scenario}-pt"

    @property
    def patient_ref(self) -> dict:
        return {"reference": f"Patient/{self.patient_id}"}

    def new_id(self, kind: str) -> str:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return f"{self.scenario}-{kind}-{self._counters[kind]}"

    def add(self, resource: dict) -> dict:
        self.resources.append(tagged(resource))
        return resource

    def when(self, day: str, hour: int = 9) -> str:
        """A clinically timed instant on ``day`` (ISO date) in this EHR's way of writing it."""
        if self.style == "hapi":
            return day
        if self.style == "cerner":
            return f"{day}T{hour:02d}:30:00-06:00"
        return f"{day}T{hour + 6:02d}:30:00Z"


def tagged(resource: dict) -> dict:
    """Add the sandbox tag (to contained resources too), keeping any other meta."""
    meta = resource.setdefault("meta", {})
    tags = meta.setdefault("tag", [])
    if c.SANDBOX_TAG not in tags:
        tags.append(dict(c.SANDBOX_TAG))
    for inner in resource.get("contained", ()):
        tagged(inner)
    return resource


def coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


# --------------------------------------------------------------------------------------------------
# People and coverage
# --------------------------------------------------------------------------------------------------


def patient(chart: Chart, given: str, gender: str, birth_date: str | None) -> str:
    resource = {"resourceType": "Patient", "id": chart.patient_id, "gender": gender}
    if chart.style != "hapi":
        resource["identifier"] = [{"system": f"{c.LOCAL}/mrn", "value": f"MRN-{chart.scenario}"}]
        resource["name"] = [{"use": "official", "family": "Sandbox", "given": [given]}]
    else:
        resource["name"] = [{"family": "Sandbox", "given": [given]}]
    if birth_date:
        resource["birthDate"] = birth_date
    chart.add(resource)
    return chart.patient_id


def coverage(chart: Chart, line_of_business: str) -> str:
    where, system, code, display = c.LINES_OF_BUSINESS[line_of_business]
    payer_id = f"{chart.scenario}-payer"
    payer_identifier = dict(zip(("system", "value"), c.SANDBOX_PAYER_IDENTIFIER, strict=True))
    chart.add({"resourceType": "Organization", "id": payer_id, "active": True, "identifier": [payer_identifier],
               "name": c.SANDBOX_PAYER_NAME})
    resource = {
        "resourceType": "Coverage",
        "id": f"{chart.scenario}-cov",
        "status": "active",
        "subscriberId": f"SBX-{chart.scenario}"[:40],
        "beneficiary": chart.patient_ref,
        "relationship": {
            "coding": [coding("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self")]
        },
        "period": {"start": "2026-01-01"},
        "payor": [{"reference": f"Organization/{payer_id}", "identifier": payer_identifier,
                   "display": c.SANDBOX_PAYER_NAME}],
    }
    if where == "type":
        resource["type"] = {"coding": [coding(system, code, display)], "text": display}
    else:
        plan = coding("http://terminology.hl7.org/CodeSystem/coverage-class", "plan", "Plan")
        resource["class"] = [{"type": {"coding": [plan]}, "value": code, "name": display}]
        resource["type"] = {"text": "Individual coverage HRA plan"}
    chart.add(resource)
    return f"Coverage/{resource['id']}"


def prescriber(chart: Chart, specialty: str | None) -> str:
    """The ordering clinician; returns the ``context.userId`` (``Practitioner/..`` or ``PractitionerRole/..``)."""
    prac_id = f"{chart.scenario}-prac"
    practitioner = {
        "resourceType": "Practitioner",
        "id": prac_id,
        "name": [{"family": "Oncall", "given": ["Sandbox"], "prefix": ["Dr."]}],
    }
    spec = c.SPECIALTIES[specialty] if specialty else None
    if chart.style == "cerner":
        chart.add(practitioner)
        role = {
            "resourceType": "PractitionerRole",
            "id": f"{chart.scenario}-role",
            "active": True,
            "practitioner": {"reference": f"Practitioner/{prac_id}"},
        }
        if spec:
            role["specialty"] = [{"coding": [coding(*spec)], "text": spec[2]}]
        chart.add(role)
        return f"PractitionerRole/{role['id']}"
    if spec:
        qualification = {"code": {"coding": [coding(*spec)]}}
        if chart.style == "epic":
            qualification["code"]["text"] = spec[2]
        practitioner["qualification"] = [qualification]
    chart.add(practitioner)
    return f"Practitioner/{prac_id}"


def encounter(chart: Chart, day: str) -> str:
    enc_id = f"{chart.scenario}-enc"
    chart.add(
        {
            "resourceType": "Encounter",
            "id": enc_id,
            "status": "in-progress",
            "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
            "subject": chart.patient_ref,
            "period": {"start": chart.when(day, 8)},
        }
    )
    return enc_id


# --------------------------------------------------------------------------------------------------
# Problems, procedures, labs
# --------------------------------------------------------------------------------------------------


def condition(chart: Chart, key: str, onset: str, clinical_status: str = "active") -> str:
    resource = {
        "resourceType": "Condition",
        "id": chart.new_id("cond"),
        "clinicalStatus": {"coding": [coding(c.CONDITION_CLINICAL, clinical_status)]},
        "verificationStatus": {"coding": [coding(c.CONDITION_VERIFICATION, "confirmed")]},
        "category": [
            {"coding": [coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")]}
        ],
        "code": condition_code(chart, key),
        "subject": chart.patient_ref,
        "onsetDateTime": onset,
    }
    if chart.style != "hapi":
        resource["recordedDate"] = chart.when(onset, 10)
    chart.add(resource)
    return f"Condition/{resource['id']}"


def condition_code(chart: Chart, key: str) -> dict:
    """The problem as this EHR codes it (ICD-10-CM, with SNOMED beside it outside HAPI), or in words only."""
    if key in c.CONDITION_TEXTS:
        return {"text": c.CONDITION_TEXTS[key]}
    icd, icd_display, snomed, snomed_display = c.CONDITIONS[key]
    icd_coding = coding(c.ICD10CM, icd, icd_display)
    codings = [icd_coding]
    if snomed and chart.style != "hapi":
        snomed_coding = coding(c.SNOMED, snomed, snomed_display)
        codings = [snomed_coding, icd_coding] if chart.style == "cerner" else [icd_coding, snomed_coding]
    code = {"coding": codings}
    if chart.style != "hapi":
        code["text"] = icd_display
    return code


def procedure_code(chart: Chart, key: str) -> dict:
    """The procedure as this EHR codes it, or in words only (``PROCEDURE_TEXTS``)."""
    codings = [coding(*cd) for cd in c.PROCEDURES[key]]
    if not codings:
        return {"text": c.PROCEDURE_TEXTS[key]}
    if chart.style == "hapi":
        return {"coding": codings[:1]}
    if chart.style == "cerner":
        codings = list(reversed(codings))
    return {"coding": codings, "text": codings[0]["display"]}


def procedure(chart: Chart, key: str, day: str) -> str:
    resource = {
        "resourceType": "Procedure",
        "id": chart.new_id("proc"),
        "status": "completed",
        "code": procedure_code(chart, key),
        "subject": chart.patient_ref,
        "performedDateTime": chart.when(day, 11),
    }
    chart.add(resource)
    return f"Procedure/{resource['id']}"


def observation(chart: Chart, lab: str, day: str, value: float | None, unit: str, status: str = "final",
                comparator: str | None = None, absent: str | None = None, **extra) -> dict:
    """A lab result. ``value`` None: no value, with ``absent`` as its dataAbsentReason when the lab
    states one (a registered or cancelled result often states none); ``comparator``: ``<``, ``>`` ...
    (a result beyond the assay's range). ``extra`` may carry ``referenceRange`` and ``interpretation``
    (a v3 code) and ``note`` (text)."""
    spec = c.LABS[lab]
    loinc = coding(c.LOINC, spec.loinc, spec.display)
    local = coding(f"{c.LOCAL}/lab-component", spec.local, spec.local)
    codings = {"epic": [loinc, local], "cerner": [local, loinc], "hapi": [loinc]}[chart.style]
    code = {"coding": codings}
    if chart.style != "hapi":
        code["text"] = spec.display.split(" [")[0]
    resource = {
        "resourceType": "Observation",
        "id": chart.new_id("obs"),
        "status": status,
        "category": [{"coding": [coding(c.OBSERVATION_CATEGORY, "laboratory", "Laboratory")]}],
        "code": code,
        "subject": chart.patient_ref,
        "effectiveDateTime": chart.when(day, 7),
    }
    if value is not None:
        quantity = {"value": value, "unit": c.UNIT_TEXT[unit], "system": c.UCUM, "code": unit}
        resource["valueQuantity"] = {"comparator": comparator, **quantity} if comparator else quantity
    elif absent:
        resource["dataAbsentReason"] = {"coding": [coding(DATA_ABSENT_REASON, absent)]}
    if extra.get("note"):
        resource["note"] = [{"text": extra["note"]}]
    if chart.style == "epic":
        resource["issued"] = f"{day}T18:05:00Z"
    if extra.get("referenceRange"):
        resource["referenceRange"] = extra["referenceRange"]
    if extra.get("interpretation"):
        resource["interpretation"] = [{"coding": [coding(c.INTERPRETATION, extra["interpretation"])]}]
    chart.add(resource)
    return resource


def disease_status(chart: Chart, day: str, status: str) -> dict:
    """A documented disease-status assessment (mCODE CancerDiseaseStatus shape)."""
    spec = c.LABS["status"]
    system, code, display, text = c.DISEASE_STATUS[status]
    resource = {
        "resourceType": "Observation",
        "id": chart.new_id("obs"),
        "status": "final",
        "code": {"coding": [coding(c.LOINC, spec.loinc, spec.display)]},
        "subject": chart.patient_ref,
        "effectiveDateTime": chart.when(day, 15),
        "valueCodeableConcept": {"coding": [coding(system, code, display)], "text": text},
    }
    chart.add(resource)
    return resource


# --------------------------------------------------------------------------------------------------
# Medications
# --------------------------------------------------------------------------------------------------


def medication_concept(chart: Chart, drug: c.Drug, with_text: bool = True) -> dict:
    """The drug as this EHR codes it (a CodeableConcept)."""
    rx_in = coding(c.RXNORM, drug.rxnorm_in, drug.ingredient) if drug.rxnorm_in else None
    rx_bn = coding(c.RXNORM, drug.rxnorm_bn, drug.brand) if drug.rxnorm_bn else None
    extra = [coding(*cd) for cd in drug.extra_codings]
    local = coding(f"{c.LOCAL}/medication", drug.ingredient.upper().replace(" ", "-"), drug.ingredient)
    if chart.style == "hapi":
        codings = [rx_in] if rx_in else extra[:1] or [local]
    elif chart.style == "cerner":
        codings = [local] + extra + [x for x in (rx_in,) if x]
    else:
        codings = extra + [x for x in (rx_bn, rx_in) if x] + [local]
    concept: dict = {"coding": codings}
    if with_text and chart.style != "hapi":
        brand = f" ({drug.brand.upper()})" if drug.brand else ""
        concept["text"] = f"{drug.ingredient}{brand} {drug.form_text}".strip()
    elif chart.style == "hapi" and not (drug.rxnorm_in or drug.extra_codings):
        concept["text"] = f"{drug.ingredient} {drug.form_text}".strip()
    return concept


def _medication_element(chart: Chart, resource: dict, drug: c.Drug) -> None:
    """Cerner: a contained Medication referenced by ``#med``; otherwise medicationCodeableConcept."""
    concept = medication_concept(chart, drug)
    if chart.style == "cerner":
        resource["contained"] = [{"resourceType": "Medication", "id": "med", "code": concept}]
        resource["medicationReference"] = {"reference": "#med", "display": concept.get("text")}
    else:
        resource["medicationCodeableConcept"] = concept


def drug_course(chart: Chart, ingredient: str, start: str, end: str, regimen: str, group: str,
                phase: str | None = None) -> list[str]:
    """One drug of a regimen given from ``start`` to ``end``: the resources an EHR of this style holds.
    ``phase`` (induction, consolidation, maintenance): the treatment phase the EHR labels the drug with,
    as a ``category`` in words (R4: a list on MedicationRequest, one CodeableConcept on the others)."""
    drug = c.DRUGS[ingredient]
    refs = []
    category = {"text": phase.capitalize()} if phase else None
    if chart.style == "hapi":
        resource = {
            "resourceType": "MedicationStatement",
            "id": chart.new_id("ms"),
            "status": "completed",
            "subject": chart.patient_ref,
            "effectivePeriod": {"start": start, "end": end},
            "note": [{"text": regimen}],
        }
        resource["medicationCodeableConcept"] = medication_concept(chart, drug)
        if category:
            resource["category"] = category
        chart.add(resource)
        return [f"MedicationStatement/{resource['id']}"]
    if drug.route == "oral":
        resource = {
            "resourceType": "MedicationRequest",
            "id": chart.new_id("mr"),
            "status": "completed",
            "intent": "order",
            "subject": chart.patient_ref,
            "authoredOn": chart.when(start, 10),
            "groupIdentifier": {"system": f"{c.LOCAL}/order-group", "value": group},
            "dosageInstruction": [{"text": regimen, "timing": {"repeat": {"boundsPeriod": {"start": start, "end": end}}}}],
            "dispenseRequest": {"validityPeriod": {"start": start, "end": end}},
        }
        _medication_element(chart, resource, drug)
        if category:
            resource["category"] = [category]
        chart.add(resource)
        return [f"MedicationRequest/{resource['id']}"]
    days = [start] if start == end else [start, end]
    for day in days:
        resource = {
            "resourceType": "MedicationAdministration",
            "id": chart.new_id("ma"),
            "status": "completed",
            "subject": chart.patient_ref,
            "effectiveDateTime": chart.when(day, 12),
            "note": [{"text": regimen}],
        }
        _medication_element(chart, resource, drug)
        if category:
            resource["category"] = category
        chart.add(resource)
        refs.append(f"MedicationAdministration/{resource['id']}")
    return refs


# --------------------------------------------------------------------------------------------------
# Draft orders (the hook's context.draftOrders; not stored in the patient bundle)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellDoseSpec:
    millions: float
    ucum: str = "10*6"


def car_t_order(
    chart: Chart,
    ingredient: str,
    authored: str,
    requester: str,
    reason: str | None,
    dose: CellDoseSpec | None,
    suffix: str = "cart",
    status: str = "draft",
) -> dict:
    """The CAR-T order. ``status``: ``draft`` as order-sign sends it, or ``active`` when the clinician
    re-signs an order already placed (the same order is then also in the patient's history)."""
    drug = c.DRUGS[ingredient]
    order = {
        "resourceType": "MedicationRequest",
        "id": f"{chart.scenario}-{suffix}",
        "status": status,
        "intent": "order",
        "subject": chart.patient_ref,
        "authoredOn": chart.when(authored, 14),
        "requester": {"reference": requester},
    }
    _medication_element(chart, order, drug)
    if reason:
        order["reasonReference"] = [{"reference": reason}]
    dosage: dict = {
        "text": "Single IV infusion",
        "timing": {"repeat": {"count": 1}},
        "route": {"coding": [coding(c.SNOMED, "47625008", "Intravenous route")]},
    }
    if dose is not None:
        quantity = {"value": dose.millions, "unit": "10^6 CAR-positive T cells", "system": c.UCUM, "code": dose.ucum}
        dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    order["dosageInstruction"] = [dosage]
    return tagged(order)


@dataclass(frozen=True)
class TocilizumabSpec:
    mg_per_dose: float
    doses: int
    via_repeats: bool = False  # state the count as dispenseRequest.numberOfRepeatsAllowed (+1) instead


def tocilizumab_order(chart: Chart, spec: TocilizumabSpec, authored: str, requester: str) -> dict:
    order = {
        "resourceType": "MedicationRequest",
        "id": f"{chart.scenario}-toci",
        "status": "draft",
        "intent": "order",
        "subject": chart.patient_ref,
        "authoredOn": chart.when(authored, 14),
        "requester": {"reference": requester},
        "medicationCodeableConcept": medication_concept(chart, c.DRUGS["tocilizumab"]),
    }
    dosage: dict = {
        "text": f"{spec.mg_per_dose:g} mg IV over 1 hour as needed for cytokine release syndrome",
        "asNeededCodeableConcept": {"text": "cytokine release syndrome"},
        "doseAndRate": [{"doseQuantity": {"value": spec.mg_per_dose, "unit": "mg", "system": c.UCUM, "code": "mg"}}],
    }
    if spec.via_repeats:
        order["dispenseRequest"] = {"numberOfRepeatsAllowed": spec.doses - 1}
    else:
        dosage["timing"] = {"repeat": {"count": spec.doses}}
    order["dosageInstruction"] = [dosage]
    return tagged(order)


def car_t_service_request(chart: Chart, ingredient: str, authored: str, requester: str, status: str = "active") -> dict:
    """Another CAR-T therapy ordered as a service (a ServiceRequest), stored in the patient's record."""
    system_code_display, text = c.CAR_T_SERVICES[ingredient]
    resource = {
        "resourceType": "ServiceRequest",
        "id": chart.new_id("sr"),
        "status": status,
        "intent": "order",
        "code": {"coding": [coding(*system_code_display)], "text": text},
        "subject": chart.patient_ref,
        "authoredOn": chart.when(authored, 9),
        "requester": {"reference": requester},
    }
    chart.add(resource)
    return resource

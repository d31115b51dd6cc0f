"""Builders for realistic FHIR R4 resources as Epic-, Cerner- and HAPI-style servers send them
(several codings, the interesting one not first, display text, timezones). Shared by the
record/labs/diagnoses tests."""

from __future__ import annotations

from datetime import date

AS_OF = date(2026, 11, 24)
PATIENT = "p1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

SERUM_M = ("33358-3", "Protein.monoclonal [Mass/volume] in Serum or Plasma by Electrophoresis")
URINE_24H = ("42482-0", "Protein.monoclonal [Mass/time] in 24 hour Urine by Electrophoresis")
KAPPA = ("36916-5", "Kappa light chains.free [Mass/volume] in Serum")
LAMBDA = ("33944-0", "Lambda light chains.free [Mass/volume] in Serum")
RATIO = ("48378-4", "Kappa light chains.free/Lambda light chains.free [Mass Ratio] in Serum")
BMPC = ("11118-7", "Plasma cells/100 cells in Bone marrow by Manual count")


def patient(birth_date="1958-03-14", pid=PATIENT):
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": "3", "lastUpdated": "2026-11-01T10:00:00Z"},
        "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", "value": "E1234"}],
        "name": [{"family": "Testpatient", "given": ["Ana"]}],
        "gender": "female",
        **({"birthDate": birth_date} if birth_date else {}),
    }


def lab(rid, loinc, value, unit=None, when="2026-11-10T08:30:00-05:00", *, code_key="code", status="final",
        subject=PATIENT, local_first=True, **extra):
    """An Observation with a local lab code first and LOINC second (as Epic sends), valueQuantity with
    ``unit`` as UCUM ``code`` (``code_key='code'``) or only as display text (``code_key='unit'``)."""
    code, display = loinc
    quantity = {"value": value}
    if unit is not None:
        if code_key == "code":
            quantity.update({"unit": unit, "system": UCUM, "code": unit})
        else:
            quantity["unit"] = unit
    codings = [{"system": LOINC, "code": code, "display": display}]
    if local_first:
        codings.insert(0, {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.768282", "code": f"LAB{code[:4]}", "display": "local"})
    obs = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": codings, "text": display},
        "subject": {"reference": f"Patient/{subject}", "display": "Testpatient, Ana"},
        "effectiveDateTime": when,
        "issued": "2026-11-11T14:02:11Z",
        "valueQuantity": quantity,
    }
    obs.update(extra)
    return obs


def condition(rid, codings=(), text=None, clinical="active", verification="confirmed", onset=None, subject=PATIENT, **extra):
    res = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": verification}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings], **({"text": text} if text else {})},
        "subject": {"reference": f"Patient/{subject}"},
        "recordedDate": "2023-02-01",
    }
    if clinical is None:
        del res["clinicalStatus"]
    if onset:
        res["onsetDateTime"] = onset
    res.update(extra)
    return res


def searchset(*resources, base="https://fhir.example.org/api/FHIR/R4"):
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{base}/Observation?patient={PATIENT}"}],
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r.get('id')}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }

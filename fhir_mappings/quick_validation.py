"""A conservative fast path for validating the elements facts read: accept the common well-formed shapes
without building ``fhir.resources`` models.

A typical chart has dozens of administrations of the same few drugs, each a handful of plain elements
(status, subject, a CodeableConcept, a dateTime). Building the R4B model of each costs about 70 us
(fhir.resources runs Python validators on every nested element); checking the same elements against the
FHIR datatype rules here costs a few microseconds.

The check is *sound for acceptance only*: ``well_formed`` returns True only for shapes it fully
understands and that the R4B models accept (the FHIR primitive regexes, real calendar dates, no nulls,
no empty strings, objects or arrays, only the listed properties of each datatype, the required elements
present). A contained Medication (how Epic-style orders and doses carry their product) is checked
whole, since the read set does not reduce it: its code, status, form and tags. Anything else
(extensions, other contained resources, an unusual datatype or element, any doubt) returns False, and ``parsing.validate`` then asks ``fhir.resources``, which has the final word and names
the failing elements. So this module can make validation faster, never more permissive; the test suite
checks that against ``fhir.resources`` on generated resources.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from fhir_mappings.references import is_fhir_id

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_DATE = _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_DATE_RE = re.compile(_DATE)
_DATETIME_RE = re.compile(_DATE + r"(T" + _TIME + r")?")
_INSTANT_RE = re.compile(_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + _TIME)
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")
_URI_RE = re.compile(r"\S+")

Check = Callable[[Any], bool]


def _real_day(value: str) -> bool:
    """The calendar date of a full date is one that exists (the regexes allow 2026-02-30)."""
    if len(value) < 10:
        return True
    try:
        date(int(value[:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def _string(value: Any) -> bool:
    return isinstance(value, str) and value != "" and value == value.strip()


def _code(value: Any) -> bool:
    return isinstance(value, str) and _CODE_RE.fullmatch(value) is not None


def _uri(value: Any) -> bool:
    return isinstance(value, str) and _URI_RE.fullmatch(value) is not None


def _date(value: Any) -> bool:
    return isinstance(value, str) and _DATE_RE.fullmatch(value) is not None and _real_day(value)


def _date_time(value: Any) -> bool:
    return isinstance(value, str) and _DATETIME_RE.fullmatch(value) is not None and _real_day(value)


def _instant(value: Any) -> bool:
    return isinstance(value, str) and _INSTANT_RE.fullmatch(value) is not None and _real_day(value)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _decimal(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unsigned_int(value: Any) -> bool:
    return _integer(value) and value >= 0


def _positive_int(value: Any) -> bool:
    return _integer(value) and value >= 1


def _complex(properties: dict[str, Check]) -> Check:
    """A datatype as a JSON object of only ``properties`` (at least one present, each well-formed)."""

    def check(value: Any) -> bool:
        if not isinstance(value, dict) or not value:
            return False
        for key, item in value.items():
            element = properties.get(key)
            if element is None or not element(item):
                return False
        return True

    return check


def _list_of(item: Check) -> Check:
    """A non-empty JSON array of well-formed items."""

    def check(value: Any) -> bool:
        if not isinstance(value, list) or not value:
            return False
        for element in value:
            if not item(element):
                return False
        return True

    return check


_CODING = _complex({"system": _uri, "version": _string, "code": _code, "display": _string, "userSelected": _boolean})
_CODEABLE_CONCEPT = _complex({"coding": _list_of(_CODING), "text": _string})
_REFERENCE = _complex({"reference": _string, "type": _uri, "display": _string})
_PERIOD = _complex({"start": _date_time, "end": _date_time})
_QUANTITY = _complex({"value": _decimal, "comparator": _code, "unit": _string, "system": _uri, "code": _code})
_SIMPLE_QUANTITY = _complex({"value": _decimal, "unit": _string, "system": _uri, "code": _code})
_IDENTIFIER = _complex({"use": _code, "system": _uri, "value": _string})
_TIMING = _complex({
    "repeat": _complex({"boundsPeriod": _PERIOD, "count": _positive_int, "frequency": _positive_int,
                        "period": _decimal, "periodUnit": _code}),
    "code": _CODEABLE_CONCEPT,
})
_DOSAGE = _complex({
    "sequence": _integer, "text": _string, "timing": _TIMING, "route": _CODEABLE_CONCEPT,
    "doseAndRate": _list_of(_complex({"type": _CODEABLE_CONCEPT, "doseQuantity": _SIMPLE_QUANTITY})),
})
_DISPENSE_REQUEST = _complex({"validityPeriod": _PERIOD, "numberOfRepeatsAllowed": _unsigned_int,
                              "quantity": _SIMPLE_QUANTITY})
_REFERENCE_RANGE = _complex({"low": _SIMPLE_QUANTITY, "high": _SIMPLE_QUANTITY, "type": _CODEABLE_CONCEPT,
                             "text": _string})
_CONCEPTS = _list_of(_CODEABLE_CONCEPT)
_REFERENCES = _list_of(_REFERENCE)
_MEDICATION = {"medicationCodeableConcept": _CODEABLE_CONCEPT, "medicationReference": _REFERENCE}
_META = _complex({"tag": _list_of(_CODING)})
_CONTAINED_MEDICATION = _complex({"id": is_fhir_id, "meta": _META, "code": _CODEABLE_CONCEPT, "status": _code,
                                  "form": _CODEABLE_CONCEPT})


def _contained_medication(value: Any) -> bool:
    """A contained Medication as Epic-style orders carry their product (``medicationReference: #med``):
    its code, status and form, with tags. ``read_elements`` does not reduce a contained resource, so the
    whole of it is checked here; anything else goes to the model."""
    return isinstance(value, dict) and value.get("resourceType") == "Medication" and _CONTAINED_MEDICATION(
        {key: item for key, item in value.items() if key != "resourceType"})


_CONTAINED = _list_of(_contained_medication)
_EFFECTIVE = {"effectiveDateTime": _date_time, "effectivePeriod": _PERIOD}

# Choice elements ([x]): at most one of the properties of each may be present.
_CHOICES = (tuple(_MEDICATION), ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
            ("valueQuantity", "valueCodeableConcept", "valueString"), ("onsetDateTime", "onsetPeriod"),
            ("abatementDateTime", "abatementPeriod", "abatementString"),
            ("performedDateTime", "performedPeriod"))
_CHOICE_OF = {name: choice for choice in _CHOICES for name in choice}  # property -> its choice element

# Per resource type: the elements understood here (JSON property -> check), and the required elements
# (each a tuple of the properties that can carry it: one for a plain element, several for a choice).
_RESOURCES: dict[str, tuple[dict[str, Check], tuple[tuple[str, ...], ...]]] = {
    "Patient": ({"birthDate": _date}, ()),
    "Observation": (
        {"status": _code, "code": _CODEABLE_CONCEPT, "subject": _REFERENCE, **_EFFECTIVE, "effectiveInstant": _instant,
         "issued": _instant, "valueQuantity": _QUANTITY, "valueCodeableConcept": _CODEABLE_CONCEPT,
         "valueString": _string, "interpretation": _CONCEPTS, "referenceRange": _list_of(_REFERENCE_RANGE),
         "specimen": _REFERENCE},
        (("status",), ("code",)),
    ),
    "Condition": (
        {"code": _CODEABLE_CONCEPT, "subject": _REFERENCE, "clinicalStatus": _CODEABLE_CONCEPT,
         "verificationStatus": _CODEABLE_CONCEPT, "onsetDateTime": _date_time, "onsetPeriod": _PERIOD,
         "abatementDateTime": _date_time, "abatementPeriod": _PERIOD, "abatementString": _string,
         "recordedDate": _date_time},
        (("subject",),),
    ),
    "Coverage": (
        {"status": _code, "beneficiary": _REFERENCE, "payor": _REFERENCES, "type": _CODEABLE_CONCEPT,
         "order": _positive_int},
        (("status",), ("beneficiary",), ("payor",)),
    ),
    "MedicationStatement": (
        {"status": _code, "subject": _REFERENCE, **_MEDICATION, **_EFFECTIVE, "basedOn": _REFERENCES,
         "partOf": _REFERENCES, "category": _CODEABLE_CONCEPT, "contained": _CONTAINED},
        (("status",), ("subject",), tuple(_MEDICATION)),
    ),
    "MedicationAdministration": (
        {"status": _code, "subject": _REFERENCE, **_MEDICATION, **_EFFECTIVE, "request": _REFERENCE,
         "partOf": _REFERENCES, "category": _CODEABLE_CONCEPT, "contained": _CONTAINED},
        (("status",), ("subject",), tuple(_MEDICATION), tuple(_EFFECTIVE)),
    ),
    "MedicationRequest": (
        {"status": _code, "intent": _code, "subject": _REFERENCE, **_MEDICATION, "authoredOn": _date_time,
         "dosageInstruction": _list_of(_DOSAGE), "dispenseRequest": _DISPENSE_REQUEST,
         "requester": _REFERENCE, "reasonCode": _CONCEPTS, "reasonReference": _REFERENCES, "basedOn": _REFERENCES,
         "groupIdentifier": _IDENTIFIER, "category": _CONCEPTS, "courseOfTherapyType": _CODEABLE_CONCEPT,
         "contained": _CONTAINED},
        (("status",), ("intent",), ("subject",), tuple(_MEDICATION)),
    ),
    "Procedure": (
        {"status": _code, "subject": _REFERENCE, "code": _CODEABLE_CONCEPT, "performedDateTime": _date_time,
         "performedPeriod": _PERIOD, "basedOn": _REFERENCES, "partOf": _REFERENCES, "category": _CODEABLE_CONCEPT},
        (("status",), ("subject",)),
    ),
}


def well_formed(resource: dict) -> bool:
    """True when every property of ``resource`` (already reduced to the elements facts read) is one this
    module understands and well-formed, and the type's required elements are there; False means "ask
    fhir.resources", not "malformed"."""
    kind = resource.get("resourceType")
    known = _RESOURCES.get(kind) if isinstance(kind, str) else None
    if known is None:
        return False
    elements, required = known
    choices_present: set[tuple[str, ...]] = set()
    for key, value in resource.items():
        if key == "resourceType":
            continue
        if key == "id":
            if not is_fhir_id(value):
                return False
            continue
        check = elements.get(key)
        if check is None or not check(value):
            return False
        choice = _CHOICE_OF.get(key)
        if choice is not None:
            if choice in choices_present:
                return False  # two properties of one choice element (valueQuantity and valueString)
            choices_present.add(choice)
    for element in required:
        if not any(name in resource for name in element):
            return False
    return True

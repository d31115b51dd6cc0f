"""The codes the synthetic patients are written with, taken from ``../shared/reference/terminology.md``.

Only codes listed there (status C or P) are used; the few that are not are marked ``# not in terminology.md``
with where they come from, and docs/sandbox.md lists them. Local ("EHR-internal") codes use our own
example.org systems, so no real local code system is imitated.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
NUCC = "http://nucc.org/provider-taxonomy"
SOPT = "https://nahdo.org/sopt"
LINE_OF_BUSINESS = "https://cart-cds.example.org/fhir/CodeSystem/line-of-business"
SANDBOX_TAG = {"system": "https://cart-cds.example.org/fhir/CodeSystem/sandbox", "code": "cart-cds-sandbox"}
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOCAL = "https://ehr.example.org/fhir/CodeSystem"  # local codes of the synthetic EHRs
# The sandbox payer's identifier (a fictional payer id): every sandbox Coverage names it, and the demo and
# the sandbox tests configure the service to serve it (CART_CDS_PAYER_IDENTIFIERS=system|value).
SANDBOX_PAYER_IDENTIFIER = ("https://payers.example.org/payer-id", "SANDBOX-HP")
SANDBOX_PAYER_NAME = "Sandbox Health Plan"


@dataclass(frozen=True)
class Drug:
    """An ingredient as EHRs code it: RxNorm ingredient (IN), brand (BN), how it is given, a display."""

    ingredient: str
    rxnorm_in: str | None
    brand: str | None = None
    rxnorm_bn: str | None = None
    route: str = "oral"  # oral | iv | sc
    form_text: str = ""  # how an EHR's medication text reads, e.g. "25 mg capsule"
    extra_codings: tuple[tuple[str, str, str], ...] = ()  # (system, code, display): SCD, HCPCS, ...


def _drugs(*drugs: Drug) -> dict[str, Drug]:
    return {d.ingredient: d for d in drugs}


DRUGS = _drugs(
    Drug("lenalidomide", "342369", "Revlimid", "337535", "oral", "10 mg capsule"),
    Drug("pomalidomide", "1369713", "Pomalyst", "1369719", "oral", "4 mg capsule"),
    Drug("thalidomide", "10432", "Thalomid", "220239", "oral", "100 mg capsule"),
    Drug("bortezomib", "358258", "Velcade", "356733", "sc", "3.5 mg injection"),
    Drug("carfilzomib", "1302966", "Kyprolis", "1302971", "iv", "60 mg injection"),
    Drug("ixazomib", "1723735", "Ninlaro", "1723758", "oral", "4 mg capsule"),
    Drug("daratumumab", "1721947", "Darzalex", "1721952", "iv", "20 mg/mL injection"),
    Drug(
        "daratumumab and hyaluronidase",
        None,
        "Darzalex Faspro",
        "2375137",
        "sc",
        "1800 mg / 30,000 units per 15 mL injection",
        ((RXNORM, "2372199", "daratumumab / hyaluronidase"), (RXNORM, "2375136", "daratumumab-fihj / hyaluronidase-fihj SCD")),
    ),
    Drug("isatuximab", "2282018", "Sarclisa", "2282024", "iv", "20 mg/mL injection"),
    Drug("elotuzumab", "1726104", "Empliciti", "1726111", "iv", "400 mg injection"),
    Drug("dexamethasone", "3264", None, None, "oral", "4 mg tablet"),
    Drug("cyclophosphamide", "3002", None, None, "oral", "50 mg capsule"),
    Drug("melphalan", "6718", "Evomela", "1745086", "iv", "50 mg injection"),
    Drug("selinexor", "2178390", "Xpovio", "2178397", "oral", "20 mg tablet"),
    Drug("teclistamab", "2619426", "Tecvayli", "2619434", "sc", "10 mg/mL injection"),
    Drug("belantamab mafodotin", "2387834", "Blenrep", "2387839", "iv", "100 mg injection"),
    Drug("talquetamab", "2644447", "Talvey", "2644454", "sc", "40 mg/mL injection"),
    Drug(
        "idecabtagene vicleucel",
        "2536430",
        "Abecma",
        "2536435",
        "iv",
        "suspension for IV infusion",
        ((RXNORM, "2536443", "idecabtagene vicleucel 70 mL suspension (SCD)"), (HCPCS, "Q2055", "Idecabtagene vicleucel")),
    ),
    Drug(
        "ciltacabtagene autoleucel",
        "2594775",
        "Carvykti",
        "2594782",
        "iv",
        "suspension for IV infusion",
        ((RXNORM, "2594780", "ciltacabtagene autoleucel suspension (SCD)"), (HCPCS, "Q2056", "Ciltacabtagene autoleucel")),
    ),
    # No RxNorm, HCPCS or ATC code exists (terminology.md §8): EHRs carry it by name and a local code.
    Drug("anitocabtagene autoleucel", None, None, None, "iv", "(KITE-772, anito-cel) suspension for IV infusion"),
    Drug("tocilizumab", "612865", "Actemra", "895761", "iv", "20 mg/mL injection"),
    # No code in terminology.md: EHRs carry these by a local code and their words only.
    Drug("fludarabine", None, None, None, "iv", "30 mg/m2 IV (lymphodepletion)"),
    Drug("investigational BCMA-directed CAR T", None, None, None, "iv", "cell suspension (clinical trial product)"),
)


@dataclass(frozen=True)
class Lab:
    loinc: str
    display: str
    local: str  # the synthetic EHR's own result-component code


LABS = {
    "spep": Lab("33358-3", "Protein.monoclonal [Mass/volume] in Serum or Plasma by Electrophoresis", "MSPIKE"),
    "upep24": Lab("42482-0", "Protein.monoclonal [Mass/time] in 24 hour Urine by Electrophoresis", "UMSPIKE24"),
    "kappa": Lab("36916-5", "Kappa light chains.free [Mass/volume] in Serum", "FKAPPA"),
    "lambda": Lab("33944-0", "Lambda light chains.free [Mass/volume] in Serum", "FLAMBDA"),
    "ratio": Lab("48378-4", "Kappa light chains.free/Lambda light chains.free [Mass Ratio] in Serum", "FKLRATIO"),
    "bmpc": Lab("11118-7", "Plasma cells/100 cells in Bone marrow (by Manual count)", "BMPC"),
    "status": Lab("97509-4", "Cancer disease progression", "MMSTATUS"),
}

# UCUM code -> the unit text EHRs print next to it.
UNIT_TEXT = {
    "g/dL": "g/dL",
    "g/L": "g/L",
    "mg/dL": "mg/dL",
    "mg/L": "mg/L",
    "mg/(24.h)": "mg/24 h",
    "{ratio}": "ratio",
    "g/dl": "g/dl",  # UCUM: "l" and "L" are both the litre, so these are valid UCUM as EHRs write them
    "mg/l": "mg/l",
    "%": "%",
}

# Disease-status answers (mCODE ConditionStatusTrendVS; SNOMED; not in terminology.md, see docs/sandbox.md).
DISEASE_STATUS = {
    "progression": (SNOMED, "271299001", "Patient's condition worsened", "Progressive disease"),
    "stable": (SNOMED, "359746009", "Patient's condition stable", "Stable disease"),
}

# Conditions: (ICD-10-CM code, display, SNOMED code or None, SNOMED display).
CONDITIONS = {
    "mm-relapse": ("C90.02", "Multiple myeloma in relapse", "109989006", "Multiple myeloma (disorder)"),
    "mm-not-in-remission": ("C90.00", "Multiple myeloma not having achieved remission", "109989006", "Multiple myeloma (disorder)"),
    "mm-remission": ("C90.01", "Multiple myeloma in remission", "109989006", "Multiple myeloma (disorder)"),
    "plasma-cell-leukemia": ("C90.10", "Plasma cell leukemia not having achieved remission", None, None),
    "seizure": ("R56.9", "Unspecified convulsions", "91175000", "Seizure (finding)"),
    "meningeal-myeloma": ("C79.32", "Secondary malignant neoplasm of cerebral meninges", None, None),
    "history-of-stroke": (
        "Z86.73",
        "Personal history of transient ischemic attack (TIA), and cerebral infarction without residual deficits",
        "429993008",
        "History of cerebrovascular accident without residual deficits (situation)",
    ),
    "asct-status": ("Z94.84", "Stem cells transplant status", None, None),
    "car-t-history": ("Z92.850", "Personal history of Chimeric Antigen Receptor T-cell therapy", None, None),
}

# Problems written in words only (no code), as problem lists often carry them.
CONDITION_TEXTS = {
    "seizure-in-words": "Seizure disorder, on levetiracetam",
    "cns-myeloma-in-words": "Myelomatous involvement of the central nervous system (MRI and CSF cytology)",
}

# Procedures: codings per code system (empty: recorded in words only, see PROCEDURE_TEXTS).
PROCEDURES = {
    "asct": (
        (CPT, "38241", "Hematopoietic progenitor cell (HPC); autologous transplantation"),
        (SNOMED, "425983008", "Autologous peripheral blood stem cell transplant"),
        (ICD10PCS, "30233Y0", "Transfusion of Autologous Hematopoietic Stem Cells into Peripheral Vein, Percutaneous Approach"),
    ),
    "abecma-infusion": ((ICD10PCS, "XW033K7", "Introduction of idecabtagene vicleucel immunotherapy into peripheral vein"),),
    "carvykti-infusion": ((ICD10PCS, "XW033A7", "Introduction of ciltacabtagene autoleucel into peripheral vein"),),
    "asct-icd10pcs": (
        (ICD10PCS, "30233Y0", "Transfusion of Autologous Hematopoietic Stem Cells into Peripheral Vein, Percutaneous Approach"),
    ),
    "sct-in-words": (),
}
PROCEDURE_TEXTS = {"sct-in-words": "Stem cell transplant"}

# Orders for a CAR-T product as a ServiceRequest (the therapy ordered as a service): codings and text.
CAR_T_SERVICES = {
    "ciltacabtagene autoleucel": ((HCPCS, "Q2056", "Ciltacabtagene autoleucel"), "Carvykti (ciltacabtagene autoleucel) CAR-T cell infusion"),
}

# Prescriber specialties (NUCC provider taxonomy).
SPECIALTIES = {
    "hematology-oncology": (NUCC, "207RH0003X", "Internal Medicine, Hematology & Oncology"),
    "medical-oncology": (NUCC, "207RX0202X", "Internal Medicine, Medical Oncology"),
    "hematology": (NUCC, "207RH0000X", "Internal Medicine, Hematology"),
    # not in terminology.md: the NUCC code of general Internal Medicine (see docs/sandbox.md).
    "internal-medicine": (NUCC, "207R00000X", "Internal Medicine"),
}

# Line of business as Coverage carries it: (where, system, code, display).
LINES_OF_BUSINESS = {
    "commercial": ("type", SOPT, "5", "PRIVATE HEALTH INSURANCE"),
    "medicaid": ("type", SOPT, "2", "MEDICAID"),
    "marketplace": ("type", LINE_OF_BUSINESS, "marketplace", "Health insurance marketplace"),
    "ichra": ("class", LINE_OF_BUSINESS, "ichra", "Individual coverage HRA"),
}

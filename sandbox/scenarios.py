"""The sandbox scenarios: compact clinical definitions and the expected decision for each.

Each scenario is a patient (problem list, treatment history as regimens of Appendix B, lab series in the
units real labs report) plus the draft order(s) signed on the decision date ``AS_OF``. ``sandbox.build``
turns them into FHIR transaction Bundles, CDS Hooks requests and recorded FHIR responses.

The expected decisions are written here by hand from the seed policies (CP.PHAR.481 for Abecma,
CP.PHAR.769 for KITE-772), not computed by the engine: they are the independent oracle the pipeline is
tested against. Conventions (docs/sandbox.md):

- a criterion is ``unknown`` when the record does not show it and ``not-met`` when the record contradicts it;
- a fully retrieved medication history is the patient's treatment history: two recorded lines contradict
  ">= 3 prior lines", no recorded anti-CD38 antibody contradicts I.A.5.c;
- the exclusions (I.A.6-I.A.8) are met only when the record was fully retrieved and shows nothing;
- a lab that was not measured in the window is unknown (not-met needs a result that misses the threshold);
- progressive disease (I.A.4.b) is unknown when no assessment shows it, and not-met only when a documented
  assessment in the window says the disease is not progressing;
- "prescribed by or in consultation with" an oncologist/hematologist is unknown (not contradicted) when the
  prescriber has another specialty: the consultation may exist outside the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sandbox.resources import CellDoseSpec, TocilizumabSpec

AS_OF = date(2026, 11, 24)

PRODUCTS = {
    "abecma": {"ingredient": "idecabtagene vicleucel", "policy": "CP.PHAR.481", "label": "Abecma"},
    "kite772": {"ingredient": "anitocabtagene autoleucel", "policy": "CP.PHAR.769", "label": "KITE-772"},
}


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regimen:
    label: str
    start: str
    end: str
    drugs: tuple[str, ...]
    phase: str | None = None  # the phase the EHR labels each drug with (induction, consolidation, maintenance)


@dataclass(frozen=True)
class Proc:
    key: str  # catalog.PROCEDURES key
    day: str


@dataclass(frozen=True)
class Dx:
    key: str  # catalog.CONDITIONS key
    onset: str
    clinical_status: str = "active"
    reason_for_order: bool = False  # the draft order's reasonReference


@dataclass(frozen=True)
class Lab:
    """One result. ``kind``: spep | upep24 | bmpc | status; FLC triples use ``Flc``. ``value`` None: a
    result without a value (``absent`` names its dataAbsentReason, if the lab gives one)."""

    kind: str
    day: str
    value: float | str | None
    unit: str = ""
    status: str = "final"
    comparator: str | None = None  # "<", ">": a result beyond the assay's range
    absent: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Flc:
    """Serum free light chains on one day; the ratio (and its interpretation) is derived like a lab does.
    A chain that is None was not resulted yet (``registered``, no value), and then neither is the ratio;
    ``status`` is that of the resulted ones; ``comparator`` qualifies kappa (and so the ratio)."""

    day: str
    kappa: float | None
    lambda_: float | None
    unit: str = "mg/L"
    status: str = "final"
    comparator: str | None = None


def spep(*points: tuple[str, float], unit: str = "g/dL") -> tuple[Lab, ...]:
    return tuple(Lab("spep", day, value, unit) for day, value in points)


def upep(*points: tuple[str, float]) -> tuple[Lab, ...]:
    return tuple(Lab("upep24", day, value, "mg/(24.h)") for day, value in points)


def status(day: str, value: str) -> Lab:
    return Lab("status", day, value)


@dataclass(frozen=True)
class Expected:
    verdict: str
    criteria: dict[str, str]
    rationale: str
    tocilizumab: dict | None = None  # {"verdict": .., "criteria": {..}} for the co-signed tocilizumab order
    referral: dict | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    product: str
    style: str
    line_of_business: str
    expected: Expected
    given: str = "Alex"
    gender: str = "female"
    birth_date: str | None = "1958-03-14"
    diagnoses: tuple[Dx, ...] = ()
    history: tuple[Regimen | Proc, ...] = ()
    labs: tuple[Lab | Flc, ...] = ()
    specialty: str | None = "hematology-oncology"
    dose: CellDoseSpec | None = None
    tocilizumab: TocilizumabSpec | None = None
    concurrent_product: str | None = None  # another CAR-T ingredient in the same draftOrders
    service_requests: tuple[str, ...] = ()  # CAR-T ingredients ordered as live ServiceRequests in the record
    order_status: str = "draft"  # "active": an order already placed, re-signed
    order_in_history: bool = False  # the order being signed is also in the patient's MedicationRequests
    failures: dict[str, int] = field(default_factory=dict)  # data-requirement key -> HTTP status recorded
    variants: tuple[str, ...] = ()  # extra hook files: "partial", "paginated"

    @property
    def policy(self) -> str:
        return PRODUCTS[self.product]["policy"]


# --------------------------------------------------------------------------------------------------
# Treatment histories (Appendix B regimens, realistic durations)
# --------------------------------------------------------------------------------------------------

DEX = "dexamethasone"


def vrd_asct_r_history(start_year: int = 2021) -> tuple[Regimen | Proc, ...]:
    """Line 1 as one planned programme: VRd induction, melphalan + autologous transplant, lenalidomide
    maintenance (policy footnote: induction + HSCT + maintenance is a single line)."""
    y = start_year
    return (
        Regimen("Line 1 induction: VRd (bortezomib/lenalidomide/dexamethasone)", f"{y}-03-01", f"{y}-06-21",
                ("bortezomib", "lenalidomide", DEX)),
        Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", f"{y}-07-26", f"{y}-07-26", ("melphalan",)),
        Proc("asct", f"{y}-07-28"),
        Regimen("Line 1 maintenance: lenalidomide 10 mg days 1-28", f"{y}-10-15", f"{y + 2}-04-20", ("lenalidomide",)),
    )


THREE_LINES = vrd_asct_r_history() + (
    Regimen("Line 2: DKd (daratumumab/carfilzomib/dexamethasone)", "2023-05-08", "2024-09-16",
            ("daratumumab", "carfilzomib", DEX)),
    Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2026-10-19",
            ("elotuzumab", "pomalidomide", DEX)),
)

# KRd + ASCT + R, then daratumumab SC (Faspro) + Pd, then selinexor-Vd.
THREE_LINES_B = (
    Regimen("Line 1 induction: KRd (carfilzomib/lenalidomide/dexamethasone)", "2020-06-01", "2020-11-16",
            ("carfilzomib", "lenalidomide", DEX)),
    Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", "2021-01-10", "2021-01-10", ("melphalan",)),
    Proc("asct", "2021-01-12"),
    Regimen("Line 1 maintenance: lenalidomide", "2021-03-01", "2022-08-30", ("lenalidomide",)),
    Regimen("Line 2: DPd (daratumumab SC/pomalidomide/dexamethasone)", "2022-09-12", "2024-05-20",
            ("daratumumab and hyaluronidase", "pomalidomide", DEX)),
    Regimen("Line 3: XVd (selinexor/bortezomib/dexamethasone)", "2024-06-03", "2026-10-12",
            ("selinexor", "bortezomib", DEX)),
)

TWO_LINES = (
    Regimen("Line 1: DRd (daratumumab/lenalidomide/dexamethasone), transplant-ineligible", "2022-01-10", "2024-11-04",
            ("daratumumab", "lenalidomide", DEX)),
    Regimen("Line 2: KPd (carfilzomib/pomalidomide/dexamethasone)", "2024-11-18", "2026-10-26",
            ("carfilzomib", "pomalidomide", DEX)),
)

MM = (Dx("mm-relapse", "2021-02-10", "relapse", reason_for_order=True), Dx("asct-status", "2021-07-28"))
MM_B = (Dx("mm-not-in-remission", "2020-05-04", "active", reason_for_order=True), Dx("asct-status", "2021-01-12"))
MM_NO_ASCT = (Dx("mm-relapse", "2021-12-02", "relapse", reason_for_order=True),)

# IgG-kappa disease rising on line 3 (EPd, last dose 2026-10-19): measurable by all three measures on 11-10.
MEASURABLE = spep(
    ("2024-09-20", 2.1), ("2025-03-10", 0.6), ("2025-09-15", 0.7), ("2026-08-10", 1.2), ("2026-10-05", 1.6),
    ("2026-11-10", 1.9),
) + upep(("2026-11-10", 310)) + (Flc("2026-11-10", 412, 8.1),)

# History B's labs: a lab reporting SPEP in g/L and free light chains in mg/dL (Mayo-style).
MEASURABLE_B = spep(("2024-06-01", 32), ("2025-01-20", 9), ("2026-07-14", 13), ("2026-11-12", 21), unit="g/L") + (
    Flc("2026-11-12", 45.2, 1.1, unit="mg/dL"),
)

TWO_LINES_LABS = spep(("2024-11-12", 2.4), ("2025-05-12", 0.4), ("2026-09-01", 1.1), ("2026-11-05", 1.6)) + (
    Flc("2026-11-05", 96, 10.2),
)

MAIN = ("I.A.1", "I.A.2", "I.A.3", "I.A.4", "I.A.5", "I.A.6", "I.A.7", "I.A.8", "I.A.9", "I.A.10")
ALL_MET = {**{cid: "met" for cid in MAIN}, "I.A.5.a": "met", "I.A.5.b": "met", "I.A.5.c": "met"}


def meets(rationale: str, **criteria: str) -> Expected:
    return Expected("meets-policy", {**ALL_MET, **_ids(criteria)}, rationale)


def fails(rationale: str, **criteria: str) -> Expected:
    return Expected("does-not-meet", _ids(criteria), rationale)


def incomplete(rationale: str, **criteria: str) -> Expected:
    return Expected("documentation-incomplete", {**ALL_MET, **_ids(criteria)}, rationale)


def indeterminate(rationale: str, **criteria: str) -> Expected:
    return Expected("indeterminate", _ids(criteria), rationale)


def _ids(criteria: dict[str, str]) -> dict[str, str]:
    """Keyword arguments name criteria with underscores: ``I_A_4_a_i`` -> ``I.A.4.a.i``."""
    return {key.replace("_", "."): value for key, value in criteria.items()}


MET, NOT_MET, UNKNOWN = "met", "not-met", "unknown"


def base(name: str, product: str, style: str, line_of_business: str, summary: str, expected: Expected, **kw) -> Scenario:
    """A relapsed/refractory patient after three lines with measurable disease, ordered by a
    hematologist-oncologist at a labelled dose; keyword arguments change what the scenario is about."""
    defaults = dict(
        diagnoses=MM,
        history=THREE_LINES,
        labs=MEASURABLE,
        dose=CellDoseSpec(450 if product == "abecma" else 115, "10*6{cells}" if style == "epic" else "10*6"),
    )
    defaults.update(kw)
    return Scenario(name, summary, product, style, line_of_business, expected, **defaults)


# --------------------------------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------------------------------


def _scenarios() -> tuple[Scenario, ...]:
    abecma, kite = "abecma", "kite772"
    return (
        # ---- meets policy -------------------------------------------------------------------------
        base("abecma-meets-all-criteria", abecma, "epic", "commercial",
             "RRMM after VRd-ASCT-R, DKd and EPd; rising IgG-kappa M-protein measurable by SPEP, UPEP and FLC",
             meets("Three prior lines with IMiD, PI and anti-CD38; SPEP 1.9 g/dL, UPEP 310 mg/24 h and involved "
                   "kappa 41.2 mg/dL (ratio 50.9) on 2026-11-10; 450 x10^6 cells <= 510.",
                   I_A_4_a_i=MET, I_A_4_a_ii=MET, I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Eleanor", variants=("partial", "paginated")),
        base("kite772-meets-all-criteria", kite, "cerner", "marketplace",
             "RRMM after KRd-ASCT-R, daratumumab SC-Pd and XVd; SPEP in g/L, FLC in mg/dL",
             meets("Three lines (induction+ASCT+maintenance counted once); SPEP 21 g/L = 2.1 g/dL >= 1.0 and "
                   "kappa 45.2 mg/dL with ratio 41 on 2026-11-12; 115 x10^6 cells does not exceed 115.",
                   I_A_4_a_i=MET, I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Marcus", gender="male", birth_date="1961-07-02", diagnoses=MM_B, history=THREE_LINES_B,
             labs=MEASURABLE_B, variants=("partial",)),
        base("abecma-ichra-member", abecma, "hapi", "ichra",
             "Minimal HAPI-style record of an ICHRA member (line of business on Coverage.class)",
             meets("Same clinical picture as abecma-meets-all-criteria, coded minimally; ICHRA is a line of "
                   "business of CP.PHAR.481.", I_A_4_a_i=MET),
             given="Priya", birth_date="1963-01-30", dose=CellDoseSpec(420)),
        base("kite772-medicaid-member", kite, "epic", "medicaid",
             "Medicaid member (SOPT 2) with the standard three-line history",
             meets("Medicaid is a line of business of CP.PHAR.769; SPEP 1.9 g/dL >= 1.0.", I_A_4_a_i=MET),
             given="Dolores", birth_date="1955-10-09"),
        base("abecma-two-prior-lines", abecma, "epic", "medicaid",
             "Transplant-ineligible patient after DRd then KPd: two lines, enough for CP.PHAR.481",
             meets("Two prior lines (DRd, KPd) with IMiD, PI and anti-CD38 meet 481's >= 2; SPEP 1.6 g/dL.",
                   I_A_4_a_i=MET),
             given="Walter", gender="male", birth_date="1949-05-21", diagnoses=MM_NO_ASCT, history=TWO_LINES,
             labs=TWO_LINES_LABS),
        base("abecma-serum-m-protein-0.7", abecma, "cerner", "commercial",
             "Plateau at SPEP 7 g/L on EPd, documented stable disease; 0.7 g/dL meets 481's 0.5 g/dL threshold",
             meets("SPEP 7 g/L = 0.7 g/dL >= 0.5 g/dL (CP.PHAR.481) on 2026-11-09.", I_A_4_a_i=MET, I_A_4_a=MET),
             given="Ruth", birth_date="1960-04-11", labs=SERUM_07_LABS),
        base("kite772-serum-m-protein-0.7", kite, "cerner", "commercial",
             "Same labs as abecma-serum-m-protein-0.7 on a KITE-772 order: 0.7 g/dL misses 769's 1.0 g/dL",
             fails("SPEP 0.7 g/dL < 1.0 g/dL; UPEP 40 mg/24 h < 200; FLC ratio 1.51 normal; documented stable "
                   "disease on 2026-11-09 (after the last EPd dose) contradicts progression.",
                   I_A_4_a_i=NOT_MET, I_A_4_a_ii=NOT_MET, I_A_4_a_iii=NOT_MET, I_A_4_a=NOT_MET, I_A_4_b=NOT_MET,
                   I_A_4=NOT_MET),
             given="Ruth", birth_date="1960-04-11", labs=SERUM_07_LABS),
        base("kite772-lambda-light-chain-measurable", kite, "epic", "marketplace",
             "Lambda light-chain myeloma: no serum M-spike, free lambda 256 mg/L with ratio 0.016",
             meets("Involved lambda 25.6 mg/dL >= 10 with abnormal ratio 0.016 (< 0.26) on 2026-11-16.",
                   I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Helen", birth_date="1966-08-19",
             labs=spep(("2026-11-16", 0.0)) + (Flc("2025-06-02", 31.0, 6.2), Flc("2026-11-16", 4.1, 256.0))),
        base("kite772-urine-m-protein-measurable", kite, "hapi", "medicaid",
             "Bence Jones (light-chain) disease followed by 24-hour urine: 480 mg/24 h",
             meets("UPEP 480 mg/24 h >= 200 on 2026-11-06.", I_A_4_a_ii=MET, I_A_4_a=MET),
             given="George", gender="male", birth_date="1957-02-27",
             labs=spep(("2026-11-06", 0.2)) + upep(("2025-07-01", 90), ("2026-11-06", 480))),
        base("progressive-disease-by-imwg-series", abecma, "cerner", "medicaid",
             "No labs in the last 30 days, but SPEP rose from a 0.3 g/dL nadir to 0.9 g/dL 23 days after the last "
             "dose: IMWG progression",
             meets("SPEP 0.9 g/dL on 2026-10-12 vs nadir 0.3 (+0.6 g/dL, +200%) = IMWG PD, assessed 23 days after "
                   "the last EPd dose (2026-09-19); no result within 30 days, so 4.a is unknown and 4.b decides.",
                   I_A_4_a=UNKNOWN, I_A_4_b=MET),
             given="Samuel", gender="male", birth_date="1959-12-01",
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2026-09-19",
                         ("elotuzumab", "pomalidomide", DEX)),),
             labs=spep(("2024-09-20", 1.8), ("2025-06-16", 0.3), ("2026-04-13", 0.35), ("2026-10-12", 0.9)),
             variants=("paginated",)),
        base("kite772-progressive-disease-documented-status", kite, "epic", "commercial",
             "Oncologist documented progressive disease 3 weeks after the last XVd dose; labs are older than 30 days",
             meets("Disease status 'progressive disease' on 2026-10-14, 23 days after the last dose (2026-09-21); "
                   "the last SPEP (2026-10-14) is 41 days old.", I_A_4_a=UNKNOWN, I_A_4_b=MET),
             given="Nora", birth_date="1962-03-05", diagnoses=MM_B,
             history=THREE_LINES_B[:-1] + (
                 Regimen("Line 3: XVd (selinexor/bortezomib/dexamethasone)", "2024-06-03", "2026-09-21",
                         ("selinexor", "bortezomib", DEX)),),
             labs=spep(("2026-10-14", 1.1)) + (status("2026-10-14", "progression"),)),
        base("prior-talquetamab-not-anti-bcma", abecma, "epic", "marketplace",
             "Fourth line talquetamab (a GPRC5D bispecific, not anti-BCMA) before the CAR-T referral",
             meets("Talquetamab targets GPRC5D, not BCMA, so I.A.7 is met.", I_A_7=MET),
             given="Irene", birth_date="1960-09-14",
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-11-03",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: talquetamab", "2025-11-17", "2026-10-19", ("talquetamab",)),)),
        # ---- measurable disease / progression not shown or contradicted -------------------------
        base("flc-high-ratio-normal", abecma, "hapi", "commercial",
             "CKD patient: free kappa 18.2 mg/dL (high) but ratio 1.41 is normal; SPEP 0.3 g/dL, UPEP 120 mg/24 h",
             incomplete("No measure reaches its threshold: SPEP 0.3 < 0.5, UPEP 120 < 200, and the involved-FLC "
                        "rule needs an abnormal ratio (1.41 is normal); progression is not documented, so I.A.4 is "
                        "unknown (4.b could still be shown).",
                        I_A_4_a_i=NOT_MET, I_A_4_a_ii=NOT_MET, I_A_4_a_iii=NOT_MET, I_A_4_a=NOT_MET,
                        I_A_4_b=UNKNOWN, I_A_4=UNKNOWN),
             given="Frank", gender="male", birth_date="1954-06-08",
             labs=spep(("2026-11-13", 0.3)) + upep(("2026-11-13", 120)) + (Flc("2026-11-13", 18.2, 12.9, "mg/dL"),)),
        base("stable-disease-below-measurable-thresholds", abecma, "epic", "commercial",
             "Near-complete response on EPd: SPEP 0.3 g/dL, UPEP 60 mg/24 h, normal FLC ratio, documented stable "
             "disease",
             fails("No measure reaches its threshold (SPEP 0.3 < 0.5, UPEP 60 < 200, ratio 1.05 normal) and the "
                   "documented status after the last dose is stable disease, not progression.",
                   I_A_4_a_i=NOT_MET, I_A_4_a_ii=NOT_MET, I_A_4_a_iii=NOT_MET, I_A_4_a=NOT_MET, I_A_4_b=NOT_MET,
                   I_A_4=NOT_MET),
             given="Louise", birth_date="1962-11-02",
             labs=spep(("2024-09-20", 1.6), ("2025-06-09", 0.3), ("2026-11-12", 0.3)) + upep(("2026-11-12", 60))
             + (Flc("2026-11-12", 16.8, 16.0), status("2026-11-12", "stable"))),
        base("urine-m-protein-spot-sample-only", abecma, "epic", "commercial",
             "Urine M-protein reported on a random (spot) sample in mg/dL: not convertible to mg/24 h",
             incomplete("The urine result (45 mg/dL, random urine) cannot be read as mg/24 h, so 4.a.ii is unknown; "
                        "SPEP 0.3 g/dL and involved kappa 3.8 mg/dL miss their thresholds.",
                        I_A_4_a_i=NOT_MET, I_A_4_a_ii=UNKNOWN, I_A_4_a_iii=NOT_MET, I_A_4_a=UNKNOWN, I_A_4=UNKNOWN),
             given="Lydia", birth_date="1964-02-17",
             labs=spep(("2026-11-12", 0.3)) + (Lab("upep24", "2026-11-12", 45, "mg/dL"), Flc("2026-11-12", 38, 12))),
        base("missing-labs", abecma, "hapi", "marketplace",
             "No myeloma labs in the record at all",
             incomplete("No serum/urine M-protein, FLC or disease-status result: I.A.4 cannot be shown.",
                        I_A_4_a_i=UNKNOWN, I_A_4_a_ii=UNKNOWN, I_A_4_a_iii=UNKNOWN, I_A_4_b=UNKNOWN, I_A_4=UNKNOWN),
             given="Oscar", gender="male", birth_date="1956-11-23", labs=()),
        base("kite772-labs-older-than-30-days", kite, "cerner", "commercial",
             "Measurable SPEP 1.5 g/dL, but drawn 47 days before the order (before the last dose)",
             incomplete("SPEP 15 g/L on 2026-10-08 is outside the 30-day window and precedes the last dose, so "
                        "neither 4.a nor 4.b can be shown.", I_A_4_a_i=UNKNOWN, I_A_4=UNKNOWN),
             given="Teresa", birth_date="1961-05-30", diagnoses=MM_B, history=THREE_LINES_B,
             labs=spep(("2026-10-08", 15), unit="g/L")),
        # ---- prior lines of therapy ------------------------------------------------------------
        base("kite772-two-prior-lines-only", kite, "epic", "commercial",
             "DRd then KPd: two prior lines meet 481's >= 2 but not 769's >= 3",
             fails("Two prior lines (DRd, KPd); CP.PHAR.769 requires >= 3. IMiD, PI and anti-CD38 all received.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Walter", gender="male", birth_date="1949-05-21", diagnoses=MM_NO_ASCT, history=TWO_LINES,
             labs=TWO_LINES_LABS, variants=("paginated",)),
        base("induction-asct-maintenance-counts-one-line", abecma, "epic", "commercial",
             "Isa-VRd induction, melphalan-ASCT, lenalidomide + isatuximab maintenance, relapse on maintenance: "
             "one line only",
             fails("Induction + ASCT + maintenance is a single line (policy footnote), so 1 prior line < 2 even "
                   "though IMiD, PI and anti-CD38 were all given.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Anita", birth_date="1965-12-12", diagnoses=(Dx("mm-relapse", "2023-01-09", "relapse", True),
                                                                Dx("asct-status", "2023-08-14")),
             history=(
                 Regimen("Line 1 induction: Isa-VRd (isatuximab/bortezomib/lenalidomide/dexamethasone)",
                         "2023-02-06", "2023-06-26", ("isatuximab", "bortezomib", "lenalidomide", DEX)),
                 Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", "2023-08-12", "2023-08-12", ("melphalan",)),
                 Proc("asct", "2023-08-14"),
                 Regimen("Line 1 maintenance: lenalidomide + isatuximab", "2023-11-06", "2026-10-05",
                         ("lenalidomide", "isatuximab")),
             ),
             labs=spep(("2025-02-03", 0.0), ("2026-09-28", 0.9), ("2026-11-09", 1.4))),
        base("no-anti-cd38-exposure", abecma, "cerner", "commercial",
             "Three lines (VRd-ASCT-R, KPd, EPd) without daratumumab or isatuximab",
             fails("No anti-CD38 antibody in a complete medication history.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=NOT_MET),
             given="Victor", gender="male", birth_date="1953-03-03",
             history=vrd_asct_r_history() + (
                 Regimen("Line 2: KPd (carfilzomib/pomalidomide/dexamethasone)", "2023-05-08", "2024-09-16",
                         ("carfilzomib", "pomalidomide", DEX)),
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2026-10-19",
                         ("elotuzumab", "pomalidomide", DEX)),)),
        base("kite772-no-imid-exposure", kite, "hapi", "commercial",
             "IMiD-intolerant patient: VCd-ASCT, DKd, XVd -- no lenalidomide, pomalidomide or thalidomide",
             fails("No immunomodulatory agent in a complete medication history.",
                   I_A_5=NOT_MET, I_A_5_a=NOT_MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Rosa", birth_date="1959-07-07",
             history=(
                 Regimen("Line 1 induction: VCd (bortezomib/cyclophosphamide/dexamethasone)", "2021-03-01",
                         "2021-06-21", ("bortezomib", "cyclophosphamide", DEX)),
                 Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", "2021-07-26", "2021-07-26", ("melphalan",)),
                 Proc("asct", "2021-07-28"),
                 Regimen("Line 2: DKd (daratumumab/carfilzomib/dexamethasone)", "2022-05-09", "2024-03-11",
                         ("daratumumab", "carfilzomib", DEX)),
                 Regimen("Line 3: XVd (selinexor/bortezomib/dexamethasone)", "2024-03-25", "2026-10-19",
                         ("selinexor", "bortezomib", DEX)),
             )),
        base("no-proteasome-inhibitor-exposure", abecma, "hapi", "medicaid",
             "Rd, then DPd, then cyclophosphamide-Pd: no proteasome inhibitor",
             fails("No proteasome inhibitor in a complete medication history.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=NOT_MET, I_A_5_c=MET),
             given="Hugo", gender="male", birth_date="1950-01-15", diagnoses=MM_NO_ASCT,
             history=(
                 Regimen("Line 1: Rd (lenalidomide/dexamethasone)", "2022-01-10", "2023-06-12", ("lenalidomide", DEX)),
                 Regimen("Line 2: DPd (daratumumab/pomalidomide/dexamethasone)", "2023-06-26", "2025-04-14",
                         ("daratumumab", "pomalidomide", DEX)),
                 Regimen("Line 3: pomalidomide/cyclophosphamide/dexamethasone", "2025-04-28", "2026-10-19",
                         ("pomalidomide", "cyclophosphamide", DEX)),
             )),
        # ---- exclusions --------------------------------------------------------------------------
        base("prior-teclistamab", abecma, "epic", "commercial",
             "Fourth line teclistamab (anti-BCMA bispecific) before the Abecma order",
             fails("Teclistamab (Tecvayli) is anti-BCMA targeted therapy.", I_A_7=NOT_MET),
             given="Carl", gender="male", birth_date="1957-09-09",
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-05-19",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: teclistamab", "2025-06-02", "2026-10-19", ("teclistamab",)),)),
        base("kite772-prior-belantamab", kite, "cerner", "medicaid",
             "Belantamab mafodotin (Blenrep, anti-BCMA ADC) as line 4",
             fails("Belantamab mafodotin (Blenrep) is anti-BCMA targeted therapy.", I_A_7=NOT_MET),
             given="Agnes", birth_date="1958-12-24", diagnoses=MM_B,
             history=THREE_LINES_B[:-1] + (
                 Regimen("Line 3: XVd (selinexor/bortezomib/dexamethasone)", "2024-06-03", "2025-04-21",
                         ("selinexor", "bortezomib", DEX)),
                 Regimen("Line 4: belantamab mafodotin", "2025-05-05", "2026-10-12", ("belantamab mafodotin",)),),
             labs=MEASURABLE_B),
        base("prior-carvykti", abecma, "cerner", "commercial",
             "Carvykti infused in 2025 (administration, ICD-10-PCS procedure and Z92.850), relapse after",
             fails("Ciltacabtagene autoleucel is both anti-BCMA therapy and CAR-T therapy.",
                   I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Henry", gender="male", birth_date="1955-04-04",
             diagnoses=MM + (Dx("car-t-history", "2025-03-18"),),
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-01-13",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: ciltacabtagene autoleucel (Carvykti) infusion", "2025-03-18", "2025-03-18",
                         ("ciltacabtagene autoleucel",)),
                 Proc("carvykti-infusion", "2025-03-18"),
                 Regimen("Line 5: selinexor/pomalidomide/dexamethasone", "2025-10-06", "2026-10-19",
                         ("selinexor", "pomalidomide", DEX)),)),
        base("kite772-prior-abecma", kite, "epic", "commercial",
             "Abecma infused in 2025; CP.PHAR.769 names Abecma among prior CAR-T therapies",
             fails("Idecabtagene vicleucel is anti-BCMA and CAR-T therapy (769 lists Abecma explicitly).",
                   I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Judith", birth_date="1960-02-02",
             diagnoses=MM + (Dx("car-t-history", "2025-04-22"),),
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-02-17",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: idecabtagene vicleucel (Abecma) infusion", "2025-04-22", "2025-04-22",
                         ("idecabtagene vicleucel",)),
                 Proc("abecma-infusion", "2025-04-22"),
                 Regimen("Line 5: selinexor/bortezomib/dexamethasone", "2025-11-03", "2026-10-19",
                         ("selinexor", "bortezomib", DEX)),)),
        base("repeat-abecma-infusion", abecma, "epic", "commercial",
             "A second Abecma infusion requested after an Abecma infusion in February 2026",
             fails("Abecma is dosed once (II.A.1); the earlier infusion is also prior anti-BCMA and CAR-T therapy.",
                   II_A_1=NOT_MET, I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Martha", birth_date="1956-06-16",
             diagnoses=MM + (Dx("car-t-history", "2026-02-10"),),
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-12-15",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: idecabtagene vicleucel (Abecma) infusion", "2026-02-10", "2026-02-10",
                         ("idecabtagene vicleucel",)),
                 Proc("abecma-infusion", "2026-02-10"),)),
        base("kite772-repeat-infusion-after-trial", kite, "hapi", "commercial",
             "Anito-cel given on the iMMagine-1 trial in 2025; now a commercial KITE-772 order",
             fails("KITE-772 is dosed once (II.A.1); the trial infusion is prior anti-BCMA and CAR-T therapy.",
                   II_A_1=NOT_MET, I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Oliver", gender="male", birth_date="1959-08-31",
             diagnoses=MM + (Dx("car-t-history", "2025-06-09"),),
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-04-07",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: anitocabtagene autoleucel (iMMagine-1 trial)", "2025-06-09", "2025-06-09",
                         ("anitocabtagene autoleucel",)),)),
        base("concurrent-car-t-order", abecma, "epic", "commercial",
             "Abecma and Carvykti signed in the same order session",
             fails("Another CAR-T product (Carvykti) is ordered concurrently.", I_A_9=NOT_MET),
             given="Elaine", birth_date="1962-10-10", concurrent_product="ciltacabtagene autoleucel"),
        base("kite772-concurrent-carvykti-order", kite, "cerner", "marketplace",
             "KITE-772 and Carvykti signed together",
             fails("Another CAR-T product (Carvykti) is ordered concurrently.", I_A_9=NOT_MET),
             given="Paul", gender="male", birth_date="1958-08-08", diagnoses=MM_B, history=THREE_LINES_B,
             labs=MEASURABLE_B, concurrent_product="ciltacabtagene autoleucel"),
        base("seizure-history", abecma, "epic", "commercial",
             "Seizure (R56.9 / SNOMED 91175000) in 2019, resolved: history of CNS pathology",
             fails("History of seizure is clinically relevant CNS pathology (I.A.6, III.B).",
                   I_A_6=NOT_MET, III_B=NOT_MET),
             given="Gloria", birth_date="1959-01-21",
             diagnoses=MM + (Dx("seizure", "2019-05-14", "resolved"),), variants=("partial",)),
        base("cns-involvement", abecma, "hapi", "commercial",
             "Leptomeningeal myeloma (C79.32) found on MRI/CSF in August 2026",
             fails("Known CNS involvement with myeloma (I.A.6, III.B).", I_A_6=NOT_MET, III_B=NOT_MET),
             given="Ivan", gender="male", birth_date="1963-03-27",
             diagnoses=MM + (Dx("meningeal-myeloma", "2026-08-20"),)),
        base("kite772-history-of-stroke", kite, "hapi", "medicaid",
             "History of cerebral infarction without residual deficit (Z86.73)",
             fails("Prior cerebrovascular ischemia is CNS pathology under CP.PHAR.769 I.A.6 and III.B.",
                   I_A_6=NOT_MET, III_B=NOT_MET),
             given="Edith", birth_date="1952-07-04",
             diagnoses=MM + (Dx("history-of-stroke", "2018-09-02", "resolved"),)),
        # ---- the order ---------------------------------------------------------------------------
        base("dose-above-limit", abecma, "epic", "commercial",
             "Abecma ordered at 600 x10^6 CAR-positive T cells",
             fails("600 x10^6 exceeds the 510 x10^6 maximum.", I_A_10=NOT_MET),
             given="Beatrice", birth_date="1961-11-11", dose=CellDoseSpec(600, "10*6{cells}")),
        base("kite772-dose-above-limit", kite, "cerner", "commercial",
             "KITE-772 ordered at 150 x10^6 CAR-positive viable T cells",
             fails("150 x10^6 exceeds the 115 x10^6 maximum.", I_A_10=NOT_MET),
             given="Leon", gender="male", birth_date="1960-10-30", diagnoses=MM_B, history=THREE_LINES_B,
             labs=MEASURABLE_B, dose=CellDoseSpec(150)),
        base("kite772-cell-dose-not-stated", kite, "epic", "commercial",
             "KITE-772 order without a cell dose",
             incomplete("The order states no cell dose, so I.A.10 cannot be shown.", I_A_10=UNKNOWN),
             given="Miriam", birth_date="1957-04-18", dose=None),
        base("tocilizumab-within-allowance", abecma, "epic", "commercial",
             "Abecma with tocilizumab 8 mg/kg (640 mg) x 4 doses for CRS",
             Expected("meets-policy", {**ALL_MET}, "CAR-T order meets; tocilizumab 640 mg x 4 <= 800 mg x 4.",
                      tocilizumab={"verdict": "meets-policy", "criteria": {"I.A.approval.tocilizumab": MET}}),
             given="Claire", birth_date="1964-05-05", tocilizumab=TocilizumabSpec(640, 4), variants=("partial",)),
        base("tocilizumab-beyond-allowance", abecma, "cerner", "medicaid",
             "Abecma with tocilizumab 800 mg and 5 refills (6 doses)",
             Expected("meets-policy", {**ALL_MET}, "CAR-T order meets; 6 tocilizumab doses exceed the 4 allowed.",
                      tocilizumab={"verdict": "does-not-meet", "criteria": {"I.A.approval.tocilizumab": NOT_MET}}),
             given="Arthur", gender="male", birth_date="1956-02-29",
             tocilizumab=TocilizumabSpec(800, 6, via_repeats=True)),
        base("kite772-tocilizumab-within-allowance", kite, "epic", "marketplace",
             "KITE-772 with tocilizumab 560 mg, 3 refills (4 doses)",
             Expected("meets-policy", {**ALL_MET}, "CAR-T order meets; tocilizumab 560 mg x 4 within the allowance.",
                      tocilizumab={"verdict": "meets-policy", "criteria": {"I.A.approval.tocilizumab": MET}}),
             given="Vera", birth_date="1963-09-23", tocilizumab=TocilizumabSpec(560, 4, via_repeats=True)),
        # ---- the member and the prescriber -------------------------------------------------------
        base("age-under-18-birthday-tomorrow", abecma, "hapi", "commercial",
             "Synthetic boundary case: the patient turns 18 the day after the decision date",
             fails("Born 2008-11-25: 17 years old on 2026-11-24.", I_A_3=NOT_MET),
             given="Kim", birth_date="2008-11-25"),
        base("kite772-age-17", kite, "cerner", "medicaid",
             "Synthetic boundary case: a 17-year-old (the policy requires age >= 18)",
             fails("Born 2009-06-01: 17 years old on 2026-11-24.", I_A_3=NOT_MET),
             given="Jordan", gender="male", birth_date="2009-06-01", diagnoses=MM_B, history=THREE_LINES_B,
             labs=MEASURABLE_B),
        base("kite772-birth-date-missing", kite, "hapi", "commercial",
             "Patient resource without birthDate",
             incomplete("Age cannot be computed without a birth date.", I_A_3=UNKNOWN),
             given="Sasha", birth_date=None),
        base("prescriber-not-oncologist", abecma, "epic", "commercial",
             "Order signed by an internist; no oncology consultation in the record",
             incomplete("The prescriber is not an oncologist/hematologist and no consultation is documented; "
                        "'in consultation with' cannot be ruled out, so I.A.2 is unknown.", I_A_2=UNKNOWN),
             given="Dorothy", birth_date="1958-07-17", specialty="internal-medicine"),
        base("kite772-prescriber-specialty-missing", kite, "hapi", "medicaid",
             "Practitioner without any qualification or specialty",
             incomplete("The prescriber's specialty is not recorded.", I_A_2=UNKNOWN),
             given="Felix", gender="male", birth_date="1955-12-05", specialty=None),
        # ---- diagnosis ---------------------------------------------------------------------------
        base("non-myeloma-plasma-cell-leukemia", abecma, "epic", "medicaid",
             "Abecma requested for plasma cell leukemia (C90.10), not multiple myeloma: off-label (I.B)",
             Expected("does-not-meet", {"I.A.1": NOT_MET, "III.A": NOT_MET},
                      "Plasma cell leukemia is not multiple myeloma (I.A.1) nor an FDA-approved indication (III.A); "
                      "the request is referred to the Medicaid off-label policy (CP.PMN.53) under I.B.",
                      referral={"lineOfBusiness": "medicaid"}),
             given="Raymond", gender="male", birth_date="1962-06-06",
             diagnoses=(Dx("plasma-cell-leukemia", "2025-08-04", "active", True),),
             history=(
                 Regimen("Line 1: DVd (daratumumab/bortezomib/dexamethasone)", "2025-08-11", "2026-03-02",
                         ("daratumumab", "bortezomib", DEX)),
                 Regimen("Line 2: KPd (carfilzomib/pomalidomide/dexamethasone)", "2026-03-16", "2026-10-19",
                         ("carfilzomib", "pomalidomide", DEX)),
             ),
             labs=spep(("2026-11-10", 1.2))),
        base("kite772-myeloma-in-remission", kite, "epic", "commercial",
             "Myeloma in remission (C90.01) on lenalidomide maintenance after one line",
             fails("Myeloma in remission is neither relapsed nor refractory; only one prior line.",
                   I_A_1=NOT_MET, I_A_5=NOT_MET),
             given="Lois", birth_date="1967-03-13",
             diagnoses=(Dx("mm-remission", "2024-01-15", "remission", True), Dx("asct-status", "2024-07-30")),
             history=(
                 Regimen("Line 1 induction: VRd (bortezomib/lenalidomide/dexamethasone)", "2024-02-05", "2024-06-10",
                         ("bortezomib", "lenalidomide", DEX)),
                 Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", "2024-07-28", "2024-07-28", ("melphalan",)),
                 Proc("asct", "2024-07-30"),
                 Regimen("Line 1 maintenance: lenalidomide 10 mg", "2024-10-07", "2026-11-16", ("lenalidomide",)),
             ),
             labs=spep(("2025-04-07", 0.0), ("2026-11-02", 0.0)) + (Flc("2026-11-02", 14.1, 11.8),)),
        base("diagnosis-not-coded", abecma, "hapi", "commercial",
             "Full myeloma treatment history but no diagnosis on the problem list",
             incomplete("No multiple myeloma Condition: the diagnosis must be documented.", I_A_1=UNKNOWN),
             given="Harold", gender="male", birth_date="1954-09-30", diagnoses=()),
        # ---- FHIR server failures (recorded error responses) -------------------------------------
        base("fhir-server-failure", abecma, "epic", "commercial",
             "The EHR's Observation search fails with HTTP 500",
             indeterminate("Labs could not be retrieved: I.A.4 is unknown for a technical reason, nothing else "
                           "is contradicted.", I_A_4=UNKNOWN),
             given="Norman", gender="male", birth_date="1959-04-25", failures={"observations": 500}),
        base("kite772-conditions-query-failed", kite, "hapi", "commercial",
             "The Condition search fails with HTTP 503",
             indeterminate("Conditions could not be retrieved: the diagnosis (I.A.1) and the CNS exclusion (I.A.6) "
                           "cannot be evaluated.", I_A_1=UNKNOWN, I_A_6=UNKNOWN),
             given="Ingrid", birth_date="1961-01-08", failures={"conditions": 503}),
        base("medication-history-query-failed", abecma, "epic", "commercial",
             "The MedicationAdministration search fails with HTTP 500 (infused drugs missing)",
             indeterminate("Without the administrations the PI and anti-CD38 exposures and the prior anti-BCMA/"
                           "CAR-T exclusions cannot be evaluated.", I_A_5=UNKNOWN, I_A_7=UNKNOWN, I_A_8=UNKNOWN),
             given="Bernard", gender="male", birth_date="1957-12-19", failures={"medicationAdministrations": 500}),
        *_real_world_records(),
    )


# I.A.4 not shown: serum M-protein and FLC miss their thresholds, no urine result, no progression shown.
SERUM_MISSED_NO_URINE_NO_PROGRESSION = {"I_A_4_a_i": NOT_MET, "I_A_4_a_ii": UNKNOWN, "I_A_4_a_iii": NOT_MET,
                                        "I_A_4_a": UNKNOWN, "I_A_4_b": UNKNOWN, "I_A_4": UNKNOWN}


def _real_world_records() -> tuple[Scenario, ...]:
    """Records as EHRs really write them (issue 14): one or more per class of record that once produced a
    wrong verdict. Expected decisions from the policy text, like every other scenario."""
    abecma, kite = "abecma", "kite772"
    return (
        # ---- 1. lab results as labs report them --------------------------------------------------
        base("spep-below-quantitation-comparator", abecma, "epic", "commercial",
             "A small M-spike the lab reports only as '<0.5 g/dL'; normal FLC ratio; no urine study",
             incomplete("'<0.5 g/dL' says the M-protein is below 0.5, so it contradicts >= 0.5 g/dL (4.a.i not "
                        "met); kappa 1.84 mg/dL with a normal ratio misses 4.a.iii; no urine result (4.a.ii) and "
                        "no progression assessment (4.b), so I.A.4 is not shown.",
                        **SERUM_MISSED_NO_URINE_NO_PROGRESSION),
             given="Rita", birth_date="1961-02-19",
             labs=(Lab("spep", "2026-11-12", 0.5, "g/dL", comparator="<"), Flc("2026-11-12", 18.4, 12.0))),
        base("kite772-flc-above-assay-range", kite, "hapi", "commercial",
             "Free kappa reported above the assay's range ('>150 mg/L', ratio '>23.077'); SPEP '<0.1 g/dL'",
             meets("Involved kappa > 150 mg/L = > 15 mg/dL clears 10 mg/dL and the ratio > 23 is abnormal (4.a.iii); "
                   "'<0.1 g/dL' contradicts 1.0 g/dL (4.a.i).",
                   I_A_4_a_i=NOT_MET, I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Tomas", gender="male", birth_date="1960-06-12",
             labs=(Lab("spep", "2026-11-16", 0.1, "g/dL", comparator="<"), Flc("2026-11-16", 150, 6.5, comparator=">"))),
        base("kite772-later-spep-without-value", kite, "epic", "commercial",
             "SPEP 1.4 g/dL on 2026-11-05; the repeat on 2026-11-19 has no value (hemolyzed, dataAbsentReason error)",
             meets("A result without a value does not hide the earlier final one: SPEP 1.4 g/dL on 2026-11-05 (19 "
                   "days before the order) meets >= 1.0 g/dL.", I_A_4_a_i=MET, I_A_4_a=MET),
             given="Wanda", birth_date="1959-09-03",
             labs=spep(("2024-09-20", 2.1), ("2025-03-10", 0.6), ("2026-08-10", 1.0), ("2026-11-05", 1.4))
             + (Lab("spep", "2026-11-19", None, "g/dL", absent="error", note="Specimen hemolyzed; recollection requested."),)),
        base("flc-later-draw-incomplete", abecma, "cerner", "commercial",
             "Complete FLC assay on 2026-11-03 (kappa 38.5 mg/dL, ratio 32); the 2026-11-20 draw has only a "
             "preliminary kappa, lambda and ratio not resulted",
             meets("The complete assay of 2026-11-03 decides: involved kappa 38.5 mg/dL >= 10 with ratio 32.1 "
                   "abnormal (4.a.iii); the later partial, preliminary draw does not hide it. SPEP 0.2 g/dL < 0.5.",
                   I_A_4_a_i=NOT_MET, I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Yvonne", birth_date="1958-12-01",
             labs=spep(("2026-11-03", 2), unit="g/L") + (
                 Flc("2026-11-03", 38.5, 1.2, unit="mg/dL"),
                 Flc("2026-11-20", 41.0, None, unit="mg/dL", status="preliminary"))),
        base("kite772-ucum-lower-case-litre", kite, "hapi", "medicaid",
             "A lab writing UCUM with a lower-case litre: SPEP in 'g/dl', free light chains in 'mg/l'",
             meets("UCUM defines 'l' and 'L' both as the litre: SPEP 1.8 g/dl >= 1.0 g/dL (4.a.i); kappa 312 mg/l "
                   "= 31.2 mg/dL with ratio 42 (4.a.iii).", I_A_4_a_i=MET, I_A_4_a_iii=MET, I_A_4_a=MET),
             given="Ursula", birth_date="1962-04-08",
             labs=spep(("2025-03-10", 0.6), ("2026-11-10", 1.8), unit="g/dl") + (Flc("2026-11-10", 312, 7.4, unit="mg/l"),)),
        # ---- 2. partial dates --------------------------------------------------------------------
        base("birth-year-only-adult", abecma, "hapi", "commercial",
             "Patient.birthDate '1957' (year only): 68 or 69 years old on the decision date",
             meets("Born some day of 1957: at least 68 on 2026-11-24, so age >= 18 whatever the day.", I_A_3=MET),
             given="Moira", birth_date="1957"),
        base("kite772-birth-year-month-adult", kite, "cerner", "marketplace",
             "Patient.birthDate '1961-07' (year and month only)",
             meets("Born in July 1961: 65 on 2026-11-24 whatever the day, so age >= 18.", I_A_3=MET),
             given="Ned", gender="male", birth_date="1961-07", diagnoses=MM_B, history=THREE_LINES_B, labs=MEASURABLE_B),
        base("birth-year-only-straddles-18", abecma, "hapi", "commercial",
             "Synthetic boundary case: birthDate '2008' only, so 17 or 18 on the decision date",
             incomplete("Born some day of 2008: 18 if born by 2008-11-24, else 17; the record cannot tell.",
                        I_A_3=UNKNOWN),
             given="Robin", birth_date="2008"),
        # ---- 3. IMWG progression against the last regimen's nadir --------------------------------
        base("kite772-rise-measured-from-earlier-line-nadir", kite, "epic", "commercial",
             "SPEP nadir 0.2 g/dL on line 2 (DKd); on line 3 (EPd) the nadir is 0.6 and the last value 0.7 g/dL",
             incomplete("Since the start of EPd (2024-10-01) the nadir is 0.6 g/dL and 0.7 is +0.1 g/dL: no IMWG "
                        "progression on the last regimen (the rise from line 2's nadir 0.2 was followed by a new "
                        "regimen). SPEP 0.7 < 1.0, ratio 1.59 normal, no urine result: I.A.4 not shown.",
                        **SERUM_MISSED_NO_URINE_NO_PROGRESSION),
             given="Bettina", birth_date="1963-10-27",
             labs=spep(("2023-05-01", 2.0), ("2024-03-11", 0.2), ("2024-09-09", 0.9), ("2025-04-14", 0.6),
                       ("2025-10-13", 0.65), ("2026-11-10", 0.7)) + (Flc("2026-11-10", 24.0, 15.1),)),
        # ---- 4. lines of therapy -----------------------------------------------------------------
        base("asct-coded-in-icd10-pcs-one-line", abecma, "cerner", "commercial",
             "D-KRd induction, autologous transplant coded only in ICD-10-PCS (30233Y0), lenalidomide "
             "maintenance, relapse on maintenance: one line",
             fails("Induction + HSCT + maintenance is a single line whatever code the transplant carries: 1 prior "
                   "line < 2, though IMiD, PI and anti-CD38 were all given.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Clement", gender="male", birth_date="1964-01-16",
             diagnoses=(Dx("mm-relapse", "2023-01-09", "relapse", True),),
             history=(
                 Regimen("Line 1 induction: D-KRd (daratumumab/carfilzomib/lenalidomide/dexamethasone)",
                         "2023-02-06", "2023-06-26", ("daratumumab", "carfilzomib", "lenalidomide", DEX)),
                 Regimen("Line 1 ASCT conditioning: melphalan 200 mg/m2", "2023-08-12", "2023-08-12", ("melphalan",)),
                 Proc("asct-icd10pcs", "2023-08-14"),
                 Regimen("Line 1 maintenance: lenalidomide", "2023-11-06", "2026-10-05", ("lenalidomide",)),
             ),
             labs=spep(("2025-02-03", 0.0), ("2026-09-28", 9), ("2026-11-09", 14), unit="g/L")),
        base("kite772-transplant-in-words-two-lines", kite, "hapi", "commercial",
             "VRd, a transplant recorded only as 'Stem cell transplant', lenalidomide maintenance, then DKd: "
             "two lines",
             fails("Induction + transplant + maintenance is one line, DKd the second: 2 prior lines < 3.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Percy", gender="male", birth_date="1958-11-30", diagnoses=MM_NO_ASCT,
             history=(
                 Regimen("Induction: VRd (bortezomib/lenalidomide/dexamethasone)", "2021-03-01", "2021-06-21",
                         ("bortezomib", "lenalidomide", DEX)),
                 Regimen("Transplant conditioning: melphalan 200 mg/m2", "2021-07-26", "2021-07-26", ("melphalan",)),
                 Proc("sct-in-words", "2021-07-28"),
                 Regimen("Maintenance: lenalidomide 10 mg", "2021-10-15", "2023-04-20", ("lenalidomide",)),
                 Regimen("DKd (daratumumab/carfilzomib/dexamethasone)", "2023-05-08", "2026-10-19",
                         ("daratumumab", "carfilzomib", DEX)),
             )),
        base("kite772-late-maintenance-same-line", kite, "epic", "commercial",
             "Lenalidomide labelled maintenance (category) starting 10 months after the transplant, then DKd: "
             "two lines",
             fails("A regimen labelled maintenance belongs to the induction-transplant line however late it starts: "
                   "2 prior lines < 3.", I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET),
             given="Greta", birth_date="1957-05-05",
             history=(
                 Regimen("VRd (bortezomib/lenalidomide/dexamethasone)", "2021-03-01", "2021-06-21",
                         ("bortezomib", "lenalidomide", DEX), phase="induction"),
                 Regimen("Melphalan 200 mg/m2", "2021-07-26", "2021-07-26", ("melphalan",)),
                 Proc("asct", "2021-07-28"),
                 Regimen("Lenalidomide 10 mg days 1-28", "2022-06-13", "2024-02-12", ("lenalidomide",),
                         phase="maintenance"),
                 Regimen("DKd (daratumumab/carfilzomib/dexamethasone)", "2024-03-04", "2026-10-19",
                         ("daratumumab", "carfilzomib", DEX)),
             )),
        base("kite772-lymphodepletion-before-prior-car-t", kite, "epic", "commercial",
             "Dara-VRd, then fludarabine/cyclophosphamide lymphodepletion and a Carvykti infusion: two lines, "
             "and prior anti-BCMA CAR-T",
             fails("Lymphodepleting conditioning is not a line: Dara-VRd and cilta-cel are 2 lines < 3; cilta-cel is "
                   "prior anti-BCMA and CAR-T therapy.",
                   I_A_5=NOT_MET, I_A_5_a=MET, I_A_5_b=MET, I_A_5_c=MET, I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Hilda", birth_date="1956-03-23", diagnoses=MM_NO_ASCT + (Dx("car-t-history", "2025-03-17"),),
             history=(
                 Regimen("Dara-VRd (daratumumab/bortezomib/lenalidomide/dexamethasone)", "2022-01-10", "2024-12-09",
                         ("daratumumab", "bortezomib", "lenalidomide", DEX)),
                 Regimen("Lymphodepleting chemotherapy before CAR-T: fludarabine/cyclophosphamide", "2025-03-12",
                         "2025-03-14", ("fludarabine", "cyclophosphamide")),
                 Regimen("Ciltacabtagene autoleucel (Carvykti) infusion", "2025-03-17", "2025-03-17",
                         ("ciltacabtagene autoleucel",)),
                 Proc("carvykti-infusion", "2025-03-17"),
             )),
        # ---- 5. conditions in words --------------------------------------------------------------
        base("cns-involvement-in-words", abecma, "hapi", "commercial",
             "Problem list entry in words only: 'Myelomatous involvement of the central nervous system'",
             fails("Known CNS involvement with myeloma, written in words, is evidence like a code (I.A.6, III.B).",
                   I_A_6=NOT_MET, III_B=NOT_MET),
             given="Silas", gender="male", birth_date="1961-08-14",
             diagnoses=MM + (Dx("cns-myeloma-in-words", "2026-08-20"),)),
        base("kite772-seizure-in-words", kite, "cerner", "commercial",
             "Problem list entry in words only: 'Seizure disorder, on levetiracetam'",
             fails("A seizure disorder is CNS pathology (I.A.6) and prior CNS involvement (III.B), coded or not.",
                   I_A_6=NOT_MET, III_B=NOT_MET),
             given="Mabel", birth_date="1960-12-12", diagnoses=MM_B + (Dx("seizure-in-words", "2019-05-14"),),
             history=THREE_LINES_B, labs=MEASURABLE_B),
        base("remission-code-with-progressing-labs", abecma, "epic", "commercial",
             "Problem list still codes C90.01 (in remission) while the M-protein rises from 0.6 to 1.9 g/dL on EPd",
             meets("A stale 'in remission' code does not contradict relapse the labs show: SPEP 0.6 -> 1.9 g/dL "
                   "after the start of EPd is IMWG progression, so the myeloma is relapsed/refractory.",
                   I_A_1=MET, I_A_4_a_i=MET),
             given="Opal", birth_date="1959-07-21",
             diagnoses=(Dx("mm-remission", "2021-02-10", "active", True), Dx("asct-status", "2021-07-28"))),
        # ---- 6. prior anti-BCMA / CAR-T however recorded -----------------------------------------
        base("prior-anti-bcma-trial-in-words", abecma, "epic", "commercial",
             "An investigational BCMA-directed CAR T given on a trial in 2025, recorded by a local code and words",
             fails("A BCMA-directed CAR T is anti-BCMA therapy (I.A.7) and CAR T-cell therapy (I.A.8), investigational "
                   "or not.", I_A_7=NOT_MET, I_A_8=NOT_MET),
             given="Ruben", gender="male", birth_date="1958-02-08",
             history=THREE_LINES[:-1] + (
                 Regimen("Line 3: EPd (elotuzumab/pomalidomide/dexamethasone)", "2024-10-01", "2025-02-17",
                         ("elotuzumab", "pomalidomide", DEX)),
                 Regimen("Line 4: investigational BCMA-directed CAR T (clinical trial)", "2025-04-22", "2025-04-22",
                         ("investigational BCMA-directed CAR T",)),
                 Regimen("Line 5: selinexor/bortezomib/dexamethasone", "2025-11-03", "2026-10-19",
                         ("selinexor", "bortezomib", DEX)),)),
        # ---- 7. concurrent CAR-T orders ----------------------------------------------------------
        base("concurrent-car-t-service-request", abecma, "epic", "commercial",
             "A live (active) ServiceRequest for a Carvykti infusion is in the record when Abecma is signed",
             fails("Another CAR-T product (Carvykti) is ordered and the order is live: concurrent CAR-T therapy.",
                   I_A_9=NOT_MET),
             given="Lorna", birth_date="1962-05-30", service_requests=("ciltacabtagene autoleucel",)),
        # ---- 8. the order being signed is not history --------------------------------------------
        base("order-signed-active-in-history", abecma, "epic", "commercial",
             "The Abecma order is re-signed with status 'active' and is also in the MedicationRequest history",
             meets("The order being signed is neither prior CAR-T/anti-BCMA therapy nor a second dose: every "
                   "criterion is met as for abecma-meets-all-criteria."),
             given="Iris", birth_date="1960-01-09", order_status="active", order_in_history=True),
    )


# Plateau on EPd at 7 g/L with a normal FLC ratio and a small urine spike; stable disease documented.
SERUM_07_LABS = spep(
    ("2024-09-20", 14), ("2025-03-12", 8), ("2025-09-10", 7), ("2026-03-09", 7), ("2026-08-31", 8), ("2026-11-09", 7),
    unit="g/L",
) + upep(("2026-11-09", 40)) + (Flc("2026-11-09", 21.5, 14.2), status("2026-11-09", "stable"))


SCENARIOS: tuple[Scenario, ...] = _scenarios()


def scenario(name: str) -> Scenario:
    for sc in SCENARIOS:
        if sc.name == name:
            return sc
    raise KeyError(name)

"""Anti-myeloma therapy history: drug exposures, transplant and CAR-T procedures, concurrent orders.

Where therapy shows up in an R4 record, and what counts as an exposure (``exposures``, the line-of-therapy
count; the prior-therapy criteria ask for more, see below):
- ``MedicationStatement`` (active, completed, stopped), ``MedicationAdministration`` (completed, stopped,
  in-progress: the drug was given) and ``MedicationRequest`` (active, completed, stopped; intents
  ``proposal``/``plan``/``option`` are not treatment). Drafts, cancelled and entered-in-error records are
  not exposures.
- ``Procedure`` (completed, in-progress, stopped) for autologous HSCT and CAR-T infusion, and the CAR-T
  history codes on a ``Condition`` (Z92.850) or ``Procedure`` (ICD-10-PCS XW033*/XW043*, CPT 38228).

A drug is identified by any coding in any position (RxNorm IN, PIN, MIN, SCD, SBD, BN or pack, rolled up
to its ingredient by the static value-set data), by a contained or referenced Medication, or by its text
(ingredient or brand name). Dates come from ``effective[x]``, ``performed[x]``, the dosage
``boundsPeriod``, else ``authoredOn``; partial dates keep their uncertainty (``TimedExposure``) so the
line-of-therapy count can widen instead of guessing.

Therapy written only in words. Trial and investigational products often have no code and no name a value
set knows ("BCMA CAR-T (investigational)", "anti-BCMA bispecific, study drug"). A product with no code and
no known name is identified by the generic terms of the value sets (``generic_terms``: "CAR T", "chimeric
antigen receptor", "BCMA", matched as whole words, hyphen or space alike), but only where the text does
not say the therapy is not (yet) given: a clause (text between ``.``, ``,``, ``;`` or line breaks) with a
word of preparation ("evaluation", "referral", "candidate", "planned", "leukapheresis", "lymphodepleting"...)
identifies nothing, and what follows a negation or a deferral ("no prior CAR-T", "prior to CAR-T") is cut
off ("teclistamab without response" still names teclistamab). These words only ever remove a reading of
free text; codes are never discarded. A drug that is identified otherwise (tocilizumab "for CAR-T CRS",
cyclophosphamide "for CAR-T lymphodepletion") stays that drug. Procedures, Conditions and ServiceRequests
describe an act, not a product, so for prior and concurrent therapy even a product's name counts there only
in such an affirmative clause ("Leukapheresis for ide-cel manufacturing" is not an ide-cel infusion).

The order being signed is not history. A client may sign an order that is already ``active`` (re-signed
after an edit), and the EHR's MedicationRequest history then holds the same order. Every resource that is
one of the hook's orders (``record.orders_being_signed``, matched by ``orders.order_keys``: same
``Type/id``, the same placer identifier, or the same content) is left out of the history: it is never an
exposure, never prior therapy and never a concurrent order of itself. What was written to carry it out
(``basedOn``, ``request``, ``authorizingPrescription``, ``derivedFrom``) is its own fulfilment, not
history, unless it shows the product given: an administration or procedure counts as usual, a completed
statement of use is received, a completed dispense is unknown at most, an active or intended statement
(Epic lists an active order as one) or a dispense in progress is nothing.

Prior therapy (I.A.7 anti-BCMA, I.A.8 CAR-T, II.A.1 continued therapy: "has not previously received")
needs evidence that the product was received: an administration (completed, in-progress, on-hold or
stopped: a CAR-T infusion stopped part-way was received), a statement of use (active, completed, on-hold,
stopped), a completed dispense, a procedure (completed, in-progress, on-hold, stopped) or a history
Condition (Z92.850, or a Condition naming the product). Such evidence is a contradiction (not met). An
order is not evidence of receipt: a MedicationRequest or ServiceRequest (active, on-hold, completed,
stopped), an ``intended`` statement, a dispense not handed over, a procedure in preparation, an
unconfirmed history Condition, or a mention in a note or reason text only suggests the product may have
been given. A careful reviewer reading an older completed or stopped CAR-T order with no administration
would ask for the infusion record before either approving or denying: ordered, perhaps given, perhaps
cancelled after leukapheresis or a failed manufacture. Such a suggestion makes the criterion unknown
(documentation to submit), never met and never not met.

Concurrent orders (I.A.9): another order for a product of the value sets that is still live (draft,
active, on-hold), a MedicationRequest or a ServiceRequest, among the hook's other draft orders or the
patient's record. An order for another named product, or for a trial or investigational product ("BCMA
CAR-T, investigational, NCT04181827"), contradicts the criterion. An order for the same product that is not
the same order (a duplicate, or a second dose?) and an order that names no product ("CAR-T cell infusion",
perhaps the nursing order for the product being signed) are doubts, not contradictions: unknown.

Completeness: a fact that needs a resource type whose retrieval was not complete is
``Unknown(retrieval_failed=True)`` unless the data present already decides it (see each function).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from fhir_mappings.facts import Coded, Evidence, Exposure, Fact, Observed, Unknown
from fhir_mappings.orders import order_keys, ordered_product, product_identity
from fhir_mappings.parsing import DateSpan, parse_date
from fhir_mappings.references import parse_reference, reference_string
from fhir_mappings.terminology import (
    coding_key,
    codings_of,
    value_set,
    value_set_files,
    value_sets_containing,
    value_sets_named_in,
)

MEDICATION_TYPES = ("MedicationStatement", "MedicationAdministration", "MedicationRequest")
EXPOSURE_TYPES = MEDICATION_TYPES + ("Procedure",)
HISTORY_TYPES = EXPOSURE_TYPES + ("Condition",)
ORDER_KINDS = ("MedicationRequest", "ServiceRequest")
# What the prior-therapy criteria read: the history, dispenses and ServiceRequests.
PRIOR_TYPES = HISTORY_TYPES + ("MedicationDispense", "ServiceRequest")
LIVE_ORDER_STATUS = frozenset({"draft", "active", "on-hold"})
# Statuses that show the product was received (see the module docstring); Conditions by verification.
RECEIVED_STATUS: dict[Any, frozenset[str]] = {  # looked up by a resource's raw resourceType
    "MedicationAdministration": frozenset({"completed", "in-progress", "on-hold", "stopped"}),
    "MedicationStatement": frozenset({"active", "completed", "on-hold", "stopped"}),
    "MedicationDispense": frozenset({"completed"}),
    "Procedure": frozenset({"completed", "in-progress", "on-hold", "stopped"}),
}
NOT_EVIDENCE_STATUS = frozenset({"draft", "declined"})  # never signed, or refused by the pharmacy
UNCONFIRMED = frozenset({"unconfirmed", "provisional", "differential"})
RECEIVED, POSSIBLE = "received", "possible"
USABLE_STATUS = {
    "MedicationStatement": frozenset({"active", "completed", "stopped"}),
    "MedicationAdministration": frozenset({"completed", "stopped", "in-progress"}),
    "MedicationRequest": frozenset({"active", "completed", "stopped"}),
    "Procedure": frozenset({"completed", "in-progress", "stopped"}),
}
NOT_TREATMENT_INTENTS = frozenset({"proposal", "plan", "option"})

CAR_T_PRODUCTS = (
    "idecabtagene-vicleucel",
    "ciltacabtagene-autoleucel",
    "anitocabtagene-autoleucel",
    "tisagenlecleucel",
    "axicabtagene-ciloleucel",
    "brexucabtagene-autoleucel",
    "lisocabtagene-maraleucel",
    "obecabtagene-autoleucel",
)
# Every class an exposure is labelled with (``Exposure.classes`` holds the ids that match).
CLASS_IDS = (
    "anti-myeloma-agents",
    "imid",
    "proteasome-inhibitor",
    "anti-cd38",
    "anti-bcma",
    "car-t-products",
    "car-t-history",
    "autologous-hsct",
    "allogeneic-hsct",
    "hsct-type-not-stated",
    "stem-cell-collection",
    "fludarabine",
    "tocilizumab",
) + CAR_T_PRODUCTS
# What ``exposures`` reports: anti-myeloma drugs, any CAR-T product or infusion, autologous HSCT.
TRACKED = ("anti-myeloma-agents", "car-t-products", "car-t-history", "autologous-hsct")
# Phase words (``_marker``): the phase a regimen belongs to, said in words by the EHR. ``conditioning``
# covers every step that prepares a cell infusion: transplant conditioning, lymphodepletion before CAR-T,
# stem-cell mobilisation and collection ("maintenance dose" is a pharmacological phrase, not a phase);
# ``supportive`` a purpose that is not treating the myeloma.
MARKERS = {
    "maintenance": re.compile(r"\bmaintenance\b(?!\s+dos)"),
    "consolidation": re.compile(r"\bconsolidat"),
    "induction": re.compile(r"(?<!post-)(?<!post )(?<!after )(?<!following )induction\b"),  # not "post-induction"
    "conditioning": re.compile(
        r"\bconditioning\b|lympho-?\s?deplet|\bmobili[sz]|\bharvest|\bapheresis\b|stem[- ]cell collection"),
    # a supportive purpose (of a steroid given alone): premedication, antiemesis, CRS/ICANS, prophylaxis
    "supportive": re.compile(
        r"premedicat|\bpre-?med\b|antiemet|\bnausea|\bvomiting|cytokine release|\bcrs\b|\bicans\b|neurotoxicity"
        r"|infusion[- ]related reaction|infusion reaction|prophyla"),
}


@dataclass(frozen=True)
class TimedExposure:
    """An exposure with what the line-of-therapy rules need beyond ``Exposure``: the latest possible start
    (partial dates), the last documented dose day, whether it is still running without an end, and the
    phase (a ``MARKERS`` key) stated in words by the resource, its request or its CarePlan."""

    exposure: Exposure
    start_latest: date | None
    last_dose: date | None
    ongoing: bool
    marker: str | None = None


# ------------------------------------------------------------------------------------ public facts


def exposures(record, as_of: date) -> Fact[tuple[Exposure, ...]]:
    """Anti-myeloma drug exposures, CAR-T products and infusions and autologous HSCT started on or before
    ``as_of`` (or undated). Unknown when a needed resource type was not retrieved completely."""
    timed = timed_exposures(record, as_of)
    found = tuple(t.exposure for t in timed)
    failed = incomplete(record, EXPOSURE_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True, evidence=_evidence(found))
    return Observed(found, _evidence(found))


def prior_exposures(record, value_sets: tuple[str, ...], as_of: date) -> Fact[tuple[Exposure, ...]]:
    """Prior therapy in any of ``value_sets`` on or before ``as_of`` (see the module docstring): Observed
    with the exposures that show the product was received (a contradiction of "has not received"), or
    Observed(()) when the history was retrieved in full and shows nothing. Unknown when only orders, plans
    or mentions suggest it (with them as evidence), or when part of the history was not retrieved and
    nothing received was found: one received exposure is enough to decide, missing data cannot undo it."""
    received, possible = _prior(record, as_of, tuple(dict.fromkeys(value_sets)))
    if received:
        return Observed(tuple(e for e, _ in received), _evidence(received))
    failed = incomplete(record, PRIOR_TYPES)
    if failed:
        return Unknown(failed, retrieval_failed=True, evidence=_evidence(possible))
    if possible:
        named = "; ".join(dict.fromkeys(f"{e.reference} ({basis})" for e, basis in possible))
        return Unknown(f"the record suggests it but documents no administration: {named}", evidence=_evidence(possible))
    return Observed((), ())


def concurrent_requests(
    record, value_sets: tuple[str, ...], order: dict, draft_orders: tuple[dict, ...]
) -> Fact[tuple[Exposure, ...]]:
    """Other live orders (draft, active, on-hold) for products in ``value_sets``: the other draft orders of
    the same hook and the patient's MedicationRequests and ServiceRequests, never ``order`` itself (any
    copy of it, ``orders.order_keys``). Observed with the orders for another named product; Unknown when
    the only ones are for the same product or name no product (see the module docstring), or when the
    requests were not retrieved in full and nothing was found."""
    wanted = tuple(dict.fromkeys(value_sets))
    asked = tuple(dict.fromkeys(wanted + CLASS_IDS))  # an exposure is labelled with every class it is in
    own = _drug(record, *_identity(record, order))
    seen = set(order_keys(order))
    others: list[Exposure] = []
    unclear: list[Exposure] = []
    for resource in _live_orders(record, order, draft_orders):
        keys = order_keys(resource)
        if keys & seen:
            continue  # the order itself, or a draft also present in the record
        seen |= keys
        codings, names = _identity(record, resource)
        drug = _drug(record, codings, names)
        classes = drug.classes(asked)
        if not classes & set(wanted):
            continue
        start = parse_date(resource.get("authoredOn"))
        exposure = Exposure(ordered_product(resource).reference, drug.ingredient, classes,
                            start.earliest if start else None, None)
        another = drug.ingredient != own.ingredient if drug.named else _investigational(names)
        (others if another else unclear).append(exposure)
    if others:
        return Observed(tuple(others), _evidence(others))
    failed = incomplete(record, ORDER_KINDS)
    if failed:
        return Unknown(failed, retrieval_failed=True, evidence=_evidence(unclear))
    if unclear:
        listed = "; ".join(f"{e.reference} ({e.ingredient})" for e in unclear)
        return Unknown("another live order for the same product (a duplicate, or a second dose?) or for a "
                       f"product it does not name: {listed}", evidence=_evidence(unclear, "live order"))
    return Observed((), ())


# An order that names no product but says it is a trial or investigational product is for another product
# than the one being signed (a commercial order), not the companion order of it.
_INVESTIGATIONAL = re.compile(r"(?<![a-z0-9])(?:investigational|trial|study drug|study product|nct\d{8})(?![a-z0-9])")


def _investigational(names: tuple[str, ...]) -> bool:
    return any(_INVESTIGATIONAL.search(_normalised(name)) for name in names)


def _live_orders(record, order: dict, draft_orders: tuple[dict, ...]) -> Iterable[dict]:
    """The hook's other draft orders, then the record's live treatment orders (MedicationRequest and
    ServiceRequest, draft/active/on-hold, not a proposal, plan or option)."""
    yield from (o for o in draft_orders if isinstance(o, dict) and o is not order)
    for kind in ORDER_KINDS:
        for resource in record.of_type(kind):
            if resource.get("status") in LIVE_ORDER_STATUS and resource.get("intent") not in NOT_TREATMENT_INTENTS:
                yield resource


# ------------------------------------------------------------------------------ identification


class _Drug:
    """One distinct product (codings and names): its ingredient, and the value sets it belongs to (a
    coding in the value set, or a name holding one of its text terms), looked up once for all value sets.
    ``named``: the ingredient comes from the static roll-up (a known code or name), not from a guess. A
    product neither coded nor named in any value set is identified by generic terms, if any."""

    def __init__(self, codings: tuple[Coded, ...], names: tuple[str, ...]):
        self.ingredient, self.named = _ingredient(codings, names)
        self._member = value_sets_containing(codings).union(*(value_sets_named_in(name.lower()) for name in names))
        if not self._member and not self.named:
            self._member = frozenset().union(*(_generic_classes(clause) for clause in _affirmed(names)))
        self._classes: dict[tuple[str, ...], frozenset[str]] = {}

    def classes(self, asked: tuple[str, ...]) -> frozenset[str]:
        """The value sets of ``asked`` this product belongs to (an unknown value set id is a KeyError)."""
        if asked not in self._classes:
            for vs in asked:
                value_set(vs)  # an unknown id fails here as it does when the value set itself is asked
            self._classes[asked] = self._member.intersection(asked)
        return self._classes[asked]


@cache
def _ingredient_index() -> tuple[dict[tuple[str, str], str], tuple[tuple[str, str], ...]]:
    """(code -> ingredient, (term, ingredient) longest term first) from the value-set files whose codes
    carry an ``ingredient`` (the static RxNorm roll-up)."""
    by_code: dict[tuple[str, str], str] = {}
    terms: dict[str, str] = {}
    for _, data in value_set_files():
        for code in data.get("codes", ()):
            key = coding_key(code["system"], code["code"])
            if code.get("ingredient") and key is not None:
                by_code[key] = code["ingredient"]
        for ingredient, names in (data.get("ingredients") or {}).items():
            for name in names:
                terms.setdefault(name.lower(), ingredient)
    ordered = tuple(sorted(terms.items(), key=lambda item: -len(item[0])))
    return by_code, ordered


def _ingredient(codings: tuple[Coded, ...], names: tuple[str, ...]) -> tuple[str, bool]:
    """(ingredient, known) of a product's codings (the static roll-up), else the one its names hold
    (longest term first); not known: its first name, else its first code."""
    by_code, terms = _ingredient_index()
    for coding in codings:
        key = coding_key(coding.system, coding.code)  # an RxNorm code sent with its OID too
        hit = by_code.get(key) if key is not None else None
        if hit:
            return hit, True
    for name in names:
        lowered = name.lower()
        for term, ingredient in terms:
            if term in lowered:
                return ingredient, True
    if names:
        return names[0].lower(), False
    return next((c.code for c in codings if c.code), "unnamed"), False


# ------------------------------------------------------------------------------ therapy in words

# Words (of the normalised text: lower case, hyphens and slashes as spaces) that say a clause is about
# preparing, considering or calling off the therapy, not giving it: the whole clause affirms nothing.
_PREPARATION = re.compile(
    r"(?<![a-z0-9])(?:candidate|candidacy|evaluation|evaluate|evaluated|eval|consult|consultation|referral|"
    r"referred|refer|screening|eligibility|eligible|ineligible|education|discussed|discussion|consider|"
    r"considered|considering|plan|planned|planning|scheduled|pending|awaiting|declined|refused|collection|"
    r"collected|apheresis|leukapheresis|harvest|manufacturing|manufacture|lymphodepletion|lymphodepleting|"
    r"conditioning|ld|bridging|work ?up|cancelled|canceled|deferred|postponed|"
    r"(?:not|never) (?:given|received|administered|infused|started))(?![a-z0-9])"
)
# Words that negate or put off what follows them ("no prior CAR-T", "prior to CAR-T"): a clause affirms
# only what comes before the first of them ("teclistamab without response" still names teclistamab).
_NEGATION = re.compile(r"(?<![a-z0-9])(?:no|not|never|without|denies|denied|negative|prior to|before|pre)(?![a-z0-9])")
_CLAUSES = re.compile(r"[.;,\n]+")


def _normalised(text: str) -> str:
    """Lower case with hyphens, underscores and slashes as spaces, character for character (so a position
    in it is the same position in the lower-cased text)."""
    return re.sub(r"[-_/]", " ", text.lower())


def _affirmed(texts: Iterable[str]) -> tuple[str, ...]:
    """The lower-cased clauses of ``texts`` that affirm a therapy: clauses without a word of preparation,
    each cut at its first negation."""
    out = []
    for text in texts:
        for clause in _CLAUSES.split(text) if isinstance(text, str) else ():
            normalised = _normalised(clause)
            if _PREPARATION.search(normalised):
                continue
            negation = _NEGATION.search(normalised)
            affirmed = clause[:negation.start() if negation else len(clause)].strip().lower()
            if affirmed:
                out.append(affirmed)
    return tuple(out)


@cache
def _generic_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """(value set id, whole-word pattern of its ``generic_terms``) for each value set that has some."""
    out = []
    for _, data in value_set_files():
        terms = [_normalised(t).split() for t in data.get("generic_terms", ())]
        if terms:
            words = "|".join(r"\s+".join(map(re.escape, t)) for t in sorted(terms, key=len, reverse=True))
            out.append((data["id"], re.compile(rf"(?<![a-z0-9])(?:{words})(?![a-z0-9])")))
    return tuple(out)


def _generic_classes(clause: str) -> frozenset[str]:
    """Value sets whose generic terms a clause holds (as whole words, hyphen or space alike)."""
    normalised = _normalised(clause)
    return frozenset(vs_id for vs_id, pattern in _generic_patterns() if pattern.search(normalised))


def _mentioned(record, resource: dict, names: tuple[str, ...]) -> frozenset[str]:
    """Value sets that the resource's names, notes and reason texts mention in an affirmative clause (a
    product name or a generic term): what a reader of the text would take as a sign of that therapy.
    Memoised by the texts: a chart repeats the same few drug names and notes."""
    texts: list[Any] = list(names)  # with raw JSON values from the notes: only strings are read
    texts += [n.get("text") for n in resource.get("note") or () if isinstance(n, dict)]
    texts += [c.get("text") for c in resource.get("reasonCode") or () if isinstance(c, dict)]
    key = tuple(t for t in texts if isinstance(t, str))

    def compute():
        found: set[str] = set()
        for clause in _affirmed(key):
            found |= value_sets_named_in(clause) | _generic_classes(clause)
        return frozenset(found)

    return record.memo(("therapy.mentioned", key), compute)


# ------------------------------------------------------------------------------ collection


def timed_exposures(record, as_of: date, wanted: tuple[str, ...] = TRACKED, doubtful: bool = False) -> tuple[TimedExposure, ...]:
    """Every exposure in the value sets ``wanted`` (default ``TRACKED``) with timing detail, started on or
    before ``as_of`` or undated. With ``doubtful``, also the records whose status is ``unknown`` (the
    drug may or may not have been given): a reader that must not lean either way reads the record both
    ways (``lines_of_therapy``)."""
    return _collect(record, as_of, wanted, EXPOSURE_TYPES, doubtful)


def _collect(record, as_of: date, wanted: tuple[str, ...], kinds: tuple[str, ...], doubtful: bool = False) -> tuple[TimedExposure, ...]:
    """Memoised per record: the engine asks for the same exposures many times per hook."""
    return record.memo(("therapy.collect", as_of, wanted, kinds, doubtful),
                       lambda: _collect_now(record, as_of, wanted, kinds, doubtful))


def _collect_now(record, as_of: date, wanted: tuple[str, ...], kinds: tuple[str, ...], doubtful: bool) -> tuple[TimedExposure, ...]:
    extra = tuple(vs for vs in dict.fromkeys(wanted) if vs not in CLASS_IDS)  # policies name CLASS_IDS so far
    wanted_set = frozenset(wanted)
    identified = _identified(record, doubtful)
    out: list[TimedExposure] = []
    for kind in kinds:
        for resource, ingredient, classes in identified.get(kind, ()):
            if extra:
                classes = classes | _drug_identity(record, resource, extra)[1]
            if not classes & wanted_set or not record.well_formed(resource):
                continue
            timed = _timed(record, resource, (ingredient, classes), as_of)
            if timed is not None:
                out.append(timed)
    return tuple(out)


def _identified(record, doubtful: bool = False) -> dict[str, list[tuple[dict, str, frozenset[str]]]]:
    """Per resource type, every usable therapy-history resource with its product identified against all
    ``CLASS_IDS`` (ingredient, classes), in record order, without the orders being signed: done once per
    record, since the engine collects exposures for several value sets and a chart repeats the same few
    drugs over many resources. With ``doubtful``, status ``unknown`` records are kept too."""

    def identify_all():
        out: dict[str, list[tuple[dict, str, frozenset[str]]]] = {}
        for kind in HISTORY_TYPES:
            for resource in record.of_type(kind):
                usable = _usable(resource) or (doubtful and _usable(resource, doubtful=True))
                if usable and not _being_signed(record, resource) and not _own_fulfilment(record, resource):
                    out.setdefault(kind, []).append((resource, *_drug_identity(record, resource, CLASS_IDS)))
        return out

    return record.memo(("therapy.identified", doubtful), identify_all)


def _prior(record, as_of: date, wanted: tuple[str, ...]) -> tuple[list[tuple[Exposure, str]], list[tuple[Exposure, str]]]:
    """(received, possible): the exposures in ``wanted`` that show the product was received, and those
    that only suggest it, each with the basis of the evidence (see the module docstring). Memoised."""

    def compute():
        asked = tuple(dict.fromkeys(CLASS_IDS + wanted))
        wanted_set = frozenset(wanted)
        received: list[tuple[Exposure, str]] = []
        possible: list[tuple[Exposure, str]] = []
        for resource, level, drug, mentioned in _prior_candidates(record):
            classes = drug.classes(asked) & wanted_set
            hinted = mentioned & wanted_set - classes
            if not (classes or hinted) or not record.well_formed(resource):
                continue
            timed = _timed(record, resource, (drug.ingredient, drug.classes(asked) | hinted), as_of)
            if timed is None:
                continue
            what = f"{resource['resourceType']} {resource.get('status') or 'recorded'}"
            if classes and level == RECEIVED:
                received.append((timed.exposure, f"received ({what})"))
            elif classes:
                possible.append((timed.exposure, f"{what}: administration not documented"))
            else:
                possible.append((timed.exposure, "mentioned in the record's text"))
        return received, possible

    return record.memo(("therapy.prior", as_of, wanted), compute)


def _prior_candidates(record) -> list[tuple[dict, str, _Drug, frozenset[str]]]:
    """(resource, evidence level, product, value sets its texts mention) of every resource that may show
    prior therapy, not an order being signed: identified once per record for every value set asked."""

    def compute():
        out = []
        for kind in PRIOR_TYPES:
            for resource in record.of_type(kind):
                level = _prior_level(record, resource)
                if level is None or _being_signed(record, resource):
                    continue
                codings, names = _identity(record, resource)
                out.append((resource, level, _drug(record, codings, names), _mentioned(record, resource, names)))
        return out

    return record.memo("therapy.prior-candidates", compute)


# A resource written to carry out an order being signed (its ``basedOn``, ``request``,
# ``authorizingPrescription`` or ``derivedFrom``) is that order's own fulfilment, not history, unless it
# shows the product given: an administration, a procedure, a statement the product was taken. Epic, for
# one, lists an active order as an active MedicationStatement; a dispense handed over for this order is
# not an infusion (unknown at most).
GIVEN_TYPES = ("MedicationAdministration", "Procedure")
_FULFILMENT_LEVEL: dict[tuple[Any, Any], str] = {  # looked up by a resource's raw (resourceType, status)
    ("MedicationStatement", "completed"): RECEIVED,
    ("MedicationStatement", "stopped"): RECEIVED,
    ("MedicationDispense", "completed"): POSSIBLE,
}
FULFILMENT_LINKS = ("basedOn", "request", "authorizingPrescription", "derivedFrom")


def _fulfils_signed_order(record, resource: dict) -> bool:
    """Whether the resource refers (see ``FULFILMENT_LINKS``) to one of the orders being signed."""
    if not record.orders_being_signed:
        return False
    for name in FULFILMENT_LINKS:
        links = resource.get(name)
        for link in links if isinstance(links, list) else [links]:
            if _link_keys(record, resource, link) & _signed_keys(record):
                return True
    return False


def _link_keys(record, resource: dict, link) -> frozenset[str]:
    """``orders.order_keys`` of the resource a reference points to, or its ``Type/id`` when not in the record."""
    target = record.resolve(link, context=resource)
    if target is not None:
        return order_keys(target)
    parsed = parse_reference(reference_string(link))
    return frozenset({f"{parsed[0]}/{parsed[1]}"}) if parsed else frozenset()


def _own_fulfilment(record, resource: dict) -> bool:
    """Whether the resource carries out an order being signed without showing the product given (so it is
    not history: not an exposure either)."""
    kind, status = resource.get("resourceType"), resource.get("status")
    if kind in GIVEN_TYPES or _FULFILMENT_LEVEL.get((kind, status)) == RECEIVED:
        return False
    return _fulfils_signed_order(record, resource)


def _prior_level(record, resource: dict) -> str | None:
    """``RECEIVED``, ``POSSIBLE`` or None (no evidence at all) for prior therapy: by type and status, and for
    the fulfilment of an order being signed by what it shows (see ``_FULFILMENT_LEVEL``)."""
    level = _status_level(resource)
    if level is None or not _own_fulfilment(record, resource):
        return level
    return _FULFILMENT_LEVEL.get((resource.get("resourceType"), resource.get("status")))


def _status_level(resource: dict) -> str | None:
    """``RECEIVED``, ``POSSIBLE`` or None (no evidence at all) for prior therapy, by type and status."""
    kind, status = resource.get("resourceType"), resource.get("status")
    if kind == "Condition":
        verification = {c.get("code") for c in codings_of(resource.get("verificationStatus"))}
        return POSSIBLE if verification & UNCONFIRMED else RECEIVED
    if status in RECEIVED_STATUS.get(kind, ()):
        return RECEIVED
    if status in NOT_EVIDENCE_STATUS or (kind in ORDER_KINDS and resource.get("intent") in NOT_TREATMENT_INTENTS):
        return None
    return POSSIBLE


def _being_signed(record, resource: dict) -> bool:
    """Whether an order the record holds is one of the hook's orders (``orders.order_keys``), worked out
    once per resource. Only orders are compared: an administration sharing the order's number is evidence
    the order was carried out."""
    if resource.get("resourceType") not in ORDER_KINDS or not record.orders_being_signed:
        return False
    return record.memo(("therapy.being-signed", id(resource)),
                       lambda: bool(_signed_keys(record) & order_keys(resource, _product(record, resource))))


def _signed_keys(record) -> frozenset[str]:
    """Every ``orders.order_keys`` of the orders being signed."""
    return record.memo("therapy.signed", lambda: frozenset().union(*map(order_keys, record.orders_being_signed)))


# Resources that describe an act (a procedure, a problem, a service order), not a product: for prior and
# concurrent CAR-T/anti-BCMA therapy a name counts only in an affirmative clause there (module docstring).
ACT_TYPES = ("Procedure", "Condition", "ServiceRequest")


def _identity(record, resource: dict) -> tuple[tuple[Coded, ...], tuple[str, ...]]:
    """(codings, names) that identify the resource's product as prior or concurrent therapy; for an act,
    only its affirmative clauses."""
    codings, names = _product(record, resource)
    return codings, _affirmed(names) if resource.get("resourceType") in ACT_TYPES else names


def _product(record, resource: dict) -> tuple[tuple[Coded, ...], tuple[str, ...]]:
    """``orders.product_identity`` of the resource; memoised by identity for resources the record holds
    (the record keeps them alive), which the exposures and the prior-therapy facts both read."""

    def compute():
        return product_identity(resource, _resolver(record, resource))

    if record.resolve(record.reference_of(resource)) is not resource:
        return compute()  # a draft order passed in, not (this copy) in the record
    return record.memo(("therapy.product", id(resource)), compute)


def _drug_identity(record, resource: dict, asked: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """(ingredient, the value sets of ``asked`` it belongs to) of the resource's product; memberships and
    ingredient are worked out once per distinct drug (codings and names) of the record."""
    drug = _drug(record, *_product(record, resource))
    return drug.ingredient, drug.classes(asked)


def _drug(record, codings: tuple[Coded, ...], names: tuple[str, ...]) -> _Drug:
    """The record's one ``_Drug`` for these codings and names: a chart repeats the same few drugs."""
    return record.memo(("therapy.drug", codings, names), lambda: _Drug(codings, names))


def _usable(resource: dict, doubtful: bool = False) -> bool:
    """Whether a history resource is an exposure for the line-of-therapy count (see module docstring);
    with ``doubtful``, a record of status ``unknown`` is one too."""
    kind = resource.get("resourceType")
    status = resource.get("status")
    if kind in USABLE_STATUS and status not in USABLE_STATUS[kind] and not (doubtful and status == "unknown"):
        return False
    return not (kind == "MedicationRequest" and resource.get("intent") in NOT_TREATMENT_INTENTS)


def _timed(record, resource: dict, identity: tuple[str, frozenset[str]], as_of: date) -> TimedExposure | None:
    timing = record.memo(("therapy.timing", id(resource), as_of), lambda: _timing(record, resource, as_of))
    if timing is None:
        return None
    start, start_latest, end_day, last_dose, ongoing, group, marker = timing
    exposure = Exposure(
        reference=record.reference_of(resource),
        ingredient=identity[0],
        classes=identity[1],
        start=start,
        end=end_day,
        group=group,
    )
    return TimedExposure(exposure, start_latest, last_dose, ongoing, marker)


def _timing(record, resource: dict, as_of: date) -> tuple | None:
    """When and how the resource's exposure happened, whatever drug classes are asked: (start, latest
    possible start, end, last dose day, ongoing, regimen key, phase marker); None when it starts after
    ``as_of`` (e.g. a future-dated active order)."""
    start, end = _period(resource)
    if start is not None and start.earliest > as_of:
        return None
    end_day = min(end.latest, as_of) if end is not None else None
    kind = resource["resourceType"]
    status = resource.get("status")
    given = kind in ("MedicationAdministration", "Procedure") or (kind == "MedicationStatement" and status != "active")
    last_dose = end_day if end_day else (start.latest if start and given else None)
    ongoing = status in ("active", "in-progress") and end is None and kind != "Procedure"
    group, marker = _grouping(record, resource)
    return (start.earliest if start else None, start.latest if start else None, end_day, last_dose, ongoing,
            group, marker)


def _period(resource: dict) -> tuple[DateSpan | None, DateSpan | None]:
    """(start, end) of an exposure: a point in time is both its start and end."""
    for key in ("effectiveDateTime", "performedDateTime", "onsetDateTime"):
        span = parse_date(resource.get(key))
        if span:
            return span, span
    for key in ("effectivePeriod", "performedPeriod", "onsetPeriod"):
        period = resource.get(key)
        if isinstance(period, dict):
            start, end = parse_date(period.get("start")), parse_date(period.get("end"))
            if start or end:
                return start or end, end
    for dosage in resource.get("dosageInstruction") or ():
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        if isinstance(bounds, dict) and parse_date(bounds.get("start")):
            return parse_date(bounds.get("start")), parse_date(bounds.get("end"))
    return parse_date(resource.get("authoredOn")), None


def _grouping(record, resource: dict) -> tuple[str | None, str | None]:
    """(explicit regimen key, phase marker). The key is the nearest CarePlan/RequestGroup reached through
    ``basedOn``/``partOf`` (an administration first goes to its ``request``), climbing through grouping
    requests; else the last grouping request reached; else ``groupIdentifier``."""
    marker = _marker(resource)
    current = resource
    if resource.get("resourceType") == "MedicationAdministration":
        request = record.resolve(resource.get("request"), context=resource)
        if request is not None:
            current, marker = request, marker or _marker(request)
    key = None
    for _ in range(5):  # bounded: references may form cycles in hostile input
        link = _group_link(record, current)
        if link is None:
            break
        key, target = link
        if target is None:
            break
        marker = marker or _marker(target)
        if target.get("resourceType") in PLAN_TYPES:
            break
        current = target
    if key is None:
        ident = current.get("groupIdentifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            key = f"groupIdentifier:{ident.get('system', '')}|{ident['value']}"
    return key, marker


PLAN_TYPES = ("CarePlan", "RequestGroup")
GROUPING_TYPES = PLAN_TYPES + ("ServiceRequest", "MedicationRequest")


def _group_link(record, resource: dict) -> tuple[str, dict | None] | None:
    """(normalised reference, resolved target or None) of the first basedOn/partOf pointing at a plan or
    a request."""
    for link in list(resource.get("basedOn") or ()) + list(resource.get("partOf") or ()):
        target = record.resolve(link, context=resource)
        if target is not None:
            if target.get("resourceType") in GROUPING_TYPES:
                return record.reference_of(target), target
            continue
        parsed = parse_reference(reference_string(link))
        if parsed and parsed[0] in GROUPING_TYPES:
            return f"{parsed[0]}/{parsed[1]}", None
    return None


def _marker(resource: dict) -> str | None:
    """The phase (a ``MARKERS`` key) the resource states in words: its title, description, category (a list,
    or one CodeableConcept as in MedicationStatement), course of therapy, reasons, notes, dosage text, the
    text of its drug or procedure, and its narrative. None when it names no phase, or names several
    ("induction, then maintenance after ASCT"): an unclear label leaves the decision to the dates."""
    lowered = " ".join(_phase_texts(resource)).lower()
    found = [phase for phase, pattern in MARKERS.items() if pattern.search(lowered)]
    return found[0] if len(found) == 1 else None


def _phase_texts(resource: dict) -> list[str]:
    texts = [resource.get(key) for key in ("title", "description")]
    category = resource.get("category")
    concepts = [category] if isinstance(category, dict) else list(category) if isinstance(category, list) else []
    concepts += [resource.get(key) for key in ("courseOfTherapyType", "medicationCodeableConcept", "code")]
    concepts += _listed(resource.get("reasonCode"))
    for concept in concepts:
        if isinstance(concept, dict):
            texts.append(concept.get("text"))
            texts.extend(c.get("display") for c in codings_of(concept))
    for key in ("note", "reasonReference", "dosageInstruction", "dosage"):
        items = [item for item in _listed(resource.get(key)) if isinstance(item, dict)]
        texts.extend(item.get("text") or item.get("display") for item in items)
    narrative = resource.get("text")
    if isinstance(narrative, dict) and isinstance(narrative.get("div"), str):
        texts.append(re.sub(r"<[^>]*>", " ", narrative["div"]))
    return [t for t in texts if isinstance(t, str)]


def _listed(value) -> list:
    """An element as a list: R4 has one object for some (``MedicationAdministration.dosage``)."""
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


# ------------------------------------------------------------------------------ shared helpers


def incomplete(record, kinds: Iterable[str]) -> str | None:
    """A retrieval reason naming the resource types not obtained completely, or None when all were."""
    failed = []
    for kind in kinds:
        outcome = record.retrieval(kind)
        if not outcome.usable_in_full:
            failed.append(f"{kind} {outcome.state.value}" + (f" ({outcome.reason})" if outcome.reason else ""))
    return ("not retrieved completely: " + ", ".join(failed)) if failed else None


def _resolver(record, resource: dict):
    return lambda reference: record.resolve(reference, context=resource)


def _evidence(found: Iterable[Exposure | tuple[Exposure, str]], basis: str = "exposure") -> tuple[Evidence, ...]:
    """One Evidence per exposure; an (exposure, basis) pair names its own basis (the evidence element)."""
    out = []
    for item in found:
        exposure, element = item if isinstance(item, tuple) else (item, basis)
        out.append(Evidence(exposure.reference, element, exposure.ingredient,
                            date=exposure.start.isoformat() if exposure.start else None))
    return tuple(out)

"""Value sets as data: load ``value_sets/*.json`` once and answer "is this coding in value set X?".

Each value-set file names its codes with system, display, source and confidence (C confirmed,
P probable; see ``../shared/reference/terminology.md``), and may list ``prefixes`` for code families
such as ICD-10-CM ``G40`` (all epilepsy codes). Matching is exact on system and code (codes are never
fuzzy-matched: ``33944-8`` is not ``33944-0``); ICD-10 codes are compared without their dot, since EHRs
send both ``C90.02`` and ``C9002``.

Text terms are lower-case substrings ("brain metasta" names metastasis and metastases). Words are free
in order and distance, so a term may be a *proximity term*: parts joined by `` ... ``
("involvement ... central nervous system") match when the parts occur in that order in one sentence
and clause with at most ``PROXIMITY_GAP`` characters between them, none of them a denial ("myeloma,
no CNS involvement" and "myeloma without CNS disease" do not join "myeloma ... cns": the denial must
stay before the term, where ``fhir_mappings.assertions`` reads it). One such term names a concept however a
clinician words it ("involvement of the central nervous system", "involvement of his central nervous
system") without listing each wording, and the sentence bound keeps two unrelated statements of a
problem-list text from being read as one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fhir_mappings.facts import Coded

ICD10_SYSTEMS = frozenset(
    {
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://hl7.org/fhir/sid/icd-10",
        "http://www.cms.gov/Medicare/Coding/ICD10",
    }
)


# Well-known HL7 OIDs that some EHRs send instead of the canonical FHIR URIs.
SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
}


def canonical_system(system: str) -> str:
    """The FHIR URI of a code system sent as a known OID (or with stray whitespace); else unchanged."""
    system = system.strip()
    return SYSTEM_ALIASES.get(system, system)


_STRING_MEMBERS = ("system", "version", "code", "display")  # Coding members FHIR types as strings


def codings_of(concept: Any) -> list[dict]:
    """The codings of a CodeableConcept as EHRs actually send it: only the JSON objects of a list, so a
    malformed ``coding`` (a string, ``true``, a list of junk) yields nothing instead of an exception.

    A member FHIR types as a string (``system``, ``version``, ``code``, ``display``) but sent as another
    JSON type (``"code": {...}``, ``"display": ["..."]``) is left out of the coding returned: it is not
    a code, so the coding cannot match a value set (the fact stays unknown, never met), and no caller
    formats, hashes or joins a value of the wrong type (issue 17: such codings reached card text)."""
    coding = concept.get("coding") if isinstance(concept, dict) else None
    return [_typed(c) for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []


def _typed(coding: dict) -> dict:
    if all(isinstance(coding.get(member, ""), str) for member in _STRING_MEMBERS):
        return coding  # the usual case: no copy
    return {k: v for k, v in coding.items() if k not in _STRING_MEMBERS or isinstance(v, str)}


def concept_text(concept: Any) -> str | None:
    """A CodeableConcept's ``text`` when it is a string (the human wording a card may show)."""
    text = concept.get("text") if isinstance(concept, dict) else None
    return text if isinstance(text, str) else None


def coding_key(system: Any, code: Any) -> tuple[str, str] | None:
    """(canonical system, normalised code): how value sets and the ingredient roll-up compare a coding,
    so ``urn:oid:2.16.840.1.113883.6.88|602910`` is RxNorm 602910. None without a system and a code."""
    if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
        return None
    system = canonical_system(system)
    return system, _normalise(system, code)


def _normalise(system: str, code: str) -> str:
    code = code.strip()
    if system in ICD10_SYSTEMS:
        return code.replace(".", "").upper()
    return code


PROXIMITY = " ... "  # joins the parts of a proximity term
PROXIMITY_GAP = 60  # characters allowed between two parts of a proximity term (same sentence)


_GAP = rf"(?:(?!\b(?:no|not|without|negative|denies|denied|free of|absence|excluded)\b)[^.;,\n]){{0,{PROXIMITY_GAP}}}?"
TermEntry = tuple[str, str, "re.Pattern | None"]  # (first part, value set id, whole pattern of a proximity term)


def term_pattern(term: str) -> str:
    """The regular expression of one text term: its parts in order, within one clause, no denial between."""
    return _GAP.join(map(re.escape, term.split(PROXIMITY)))


@dataclass(frozen=True)
class ValueSet:
    id: str
    title: str
    codes: frozenset[tuple[str, str]]  # (system, normalised code)
    prefixes: frozenset[tuple[str, str]]  # (system, normalised code prefix)
    text_terms: tuple[str, ...]  # lower-case names that identify a concept carried as text only
    # derived from the above (see ``_load``): the code systems named, and one search for all text terms
    systems: frozenset[str] = frozenset()
    text_pattern: re.Pattern | None = None

    def contains(self, system: str | None, code: str | None) -> bool:
        key = coding_key(system, code)
        if key is None or key[0] not in self.systems:
            return False  # most codings on a chart are of other systems (local codes, LOINC vs RxNorm)
        system, norm = key
        if key in self.codes:
            return True
        return any(system == s and norm.startswith(p) for s, p in self.prefixes)

    def match(self, codeable_concept: dict | None) -> Coded | None:
        """The first coding of a CodeableConcept (any position) in this value set, or, when no coding
        matches, a text-only match on ``text_terms`` (returned with system and code None)."""
        if not isinstance(codeable_concept, dict):
            return None
        for coding in codings_of(codeable_concept):
            if self.contains(coding.get("system"), coding.get("code")):
                return Coded(coding.get("system"), coding.get("code"), coding.get("display"))
        return self.match_text(codeable_concept.get("text"))

    def match_text(self, text: str | None) -> Coded | None:
        if not isinstance(text, str) or self.text_pattern is None:
            return None
        if self.text_pattern.search(text.lower()):  # any term as a substring, in one pass over the text
            return Coded(None, None, text)
        return None

    def codes_for(self, system: str) -> tuple[str, ...]:
        return tuple(sorted(code for s, code in self.codes if s == system))


def _load(data: dict) -> ValueSet:
    codes = frozenset((c["system"], _normalise(c["system"], c["code"])) for c in data.get("codes", ()))
    prefixes = frozenset((p["system"], _normalise(p["system"], p["prefix"])) for p in data.get("prefixes", ()))
    terms = tuple(t.lower() for t in data.get("text_terms", ()))
    return ValueSet(
        id=data["id"], title=data["title"], codes=codes, prefixes=prefixes, text_terms=terms,
        systems=frozenset(s for s, _ in codes | prefixes),
        text_pattern=re.compile("|".join(map(term_pattern, terms))) if terms else None,
    )


_EXTRA_FOLDER: list[Path] = []  # the payer's value-set directory, when one is configured


def use_value_set_directory(directory: Path | None) -> None:
    """Read value sets from ``directory`` as well as the shipped ones (None: shipped only).

    Process-wide, like the value sets themselves: the service calls it once at start-up, before any
    fact is computed (indexes built from the value sets elsewhere are built on first use). A directory
    value set whose id is a shipped one replaces it (the payer's revision of that value set); file
    format problems are found by the caller (``policies.loader`` validates the directory first)."""
    wanted = [Path(directory)] if directory is not None else []
    if wanted != _EXTRA_FOLDER:
        _EXTRA_FOLDER[:] = wanted
        for cached in (value_set_files, all_value_sets, _code_index, _term_index):
            cached.cache_clear()


def _json_files(folder) -> list[tuple[str, dict]]:
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)
    return [(entry.name, json.loads(entry.read_text(encoding="utf-8"))) for entry in entries]


@cache
def value_set_files() -> tuple[tuple[str, dict], ...]:
    """(file name, parsed JSON) of every file in ``fhir_mappings/value_sets``, by name, read once per
    process: the value sets here, and the data other modules keep in the same files (the ingredient
    roll-up of ``therapy``); then those of the configured directory, which replace shipped ones by id."""
    files = _json_files(resources.files("fhir_mappings") / "value_sets")
    for folder in _EXTRA_FOLDER:
        extra = _json_files(folder)
        replaced = {data.get("id") for _, data in extra}
        files = [f for f in files if f[1].get("id") not in replaced] + extra
    return tuple(files)


@cache
def all_value_sets() -> dict[str, ValueSet]:
    """Every value set shipped in ``fhir_mappings/value_sets``, keyed by id (loaded once per process)."""
    out: dict[str, ValueSet] = {}
    for name, data in value_set_files():
        vs = _load(data)
        if vs.id in out:
            raise ValueError(f"duplicate value set id {vs.id!r} in {name}")
        out[vs.id] = vs
    return out


@cache
def _code_index() -> tuple[dict[tuple[str, str], frozenset[str]], dict[str, tuple[tuple[str, str], ...]]]:
    """(system, normalised code) -> ids of the value sets listing it; and per code system, the
    (normalised prefix, value set id) of every value set naming a prefix in that system."""
    index: dict[tuple[str, str], set[str]] = {}
    prefixes: dict[str, list[tuple[str, str]]] = {}
    for vs in all_value_sets().values():
        for key in vs.codes:
            index.setdefault(key, set()).add(vs.id)
        for system, prefix in vs.prefixes:
            prefixes.setdefault(system, []).append((prefix, vs.id))
    return {key: frozenset(ids) for key, ids in index.items()}, {s: tuple(p) for s, p in prefixes.items()}


def value_sets_containing(codings: Iterable[Coded]) -> frozenset[str]:
    """Ids of every value set that contains any of ``codings`` (``ValueSet.contains`` of each), found with
    one lookup per coding instead of asking each value set in turn."""
    index, prefixes_by_system = _code_index()
    found: set[str] = set()
    for coding in codings:
        key = coding_key(coding.system, coding.code)
        if key is None:
            continue
        system, norm = key
        found.update(index.get(key, ()))
        found.update(vs_id for prefix, vs_id in prefixes_by_system.get(system, ()) if norm.startswith(prefix))
    return frozenset(found)


_KEY = 3  # characters of a text term that index it


@cache
def _term_index() -> tuple[dict[str, tuple[TermEntry, ...]], tuple[TermEntry, ...]]:
    """Every (text term, value set id), by the term's first ``_KEY`` characters; and the shorter terms.
    A proximity term is indexed by its first part and kept with its compiled pattern."""
    index: dict[str, list[TermEntry]] = {}
    short: list[TermEntry] = []
    for vs in all_value_sets().values():
        for term in vs.text_terms:
            first = term.split(PROXIMITY)[0]
            entry = (first, vs.id, re.compile(term_pattern(term)) if PROXIMITY in term else None)
            if len(first) < _KEY:
                short.append(entry)
            else:
                index.setdefault(first[:_KEY], []).append(entry)
    return {key: tuple(terms) for key, terms in index.items()}, tuple(short)


def value_sets_named_in(lowered: str) -> frozenset[str]:
    """Ids of every value set with a text term in an already lower-cased text: the value sets whose
    ``match_text`` matches it (a term anywhere as a substring), for a caller that asks about many value
    sets. Each position of the text is looked up once, and only the terms starting there are tried."""
    index, short = _term_index()
    found = {vs_id for first, vs_id, whole in short if (whole.search(lowered) if whole else first in lowered)}
    for start in range(len(lowered) - _KEY + 1):
        for first, vs_id, whole in index.get(lowered[start:start + _KEY], ()):
            if lowered.startswith(first, start) and (whole is None or whole.match(lowered, start)):
                found.add(vs_id)
    return frozenset(found)


def value_set(value_set_id: str) -> ValueSet:
    try:
        return all_value_sets()[value_set_id]
    except KeyError:
        raise KeyError(f"unknown value set {value_set_id!r}") from None


_NEGATION = re.compile(
    r"\b(no|not|non|without|denies|denied|negative|absent|ruled out|rule out|r/o|free of|resolved|smoldering|smouldering)\b"
)


def affirmative_match(value_set_id: str, codeable_concept: dict | None) -> Coded | None:
    """Like ``ValueSet.match``, but a text-only hit is refused when the text negates or qualifies the
    concept ("no evidence of progression", "rule out CNS involvement", "smoldering myeloma"): free text
    is only trusted when it plainly asserts the concept. Coded matches are returned as they are."""
    hit = value_set(value_set_id).match(codeable_concept)
    if hit is None or hit.code is not None:
        return hit
    return None if _NEGATION.search((hit.display or "").lower()) else hit

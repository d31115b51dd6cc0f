"""What a problem-list entry asserts about a concept: present, historical, uncertain, or negated.

Problem lists often carry a condition in words only (``Condition.code.text``, a coding with a display
and no code, or a local or SNOMED CT code no value set lists, with its display). A recognised text is
evidence like a code, but words can deny or hedge what they name, which a code cannot: "No CNS
involvement", "Rule out leptomeningeal disease", "History of seizure". Reading such a text as the
concept being present would turn a denial into a contradiction, and reading a hedge as absent would
turn doubt into "meets policy". So each text hit is classified, in the manner of NegEx (cue words
before or after the term, in the same sentence):

- ``negated`` -- the text denies the concept ("no", "denies", "negative for", "without", "ruled
  out" before it in the same clause, "non-" on it; "ruled out", "excluded", "absent", "not present"
  after it, or a form's answer "CNS involvement: none"). The entry is not evidence of the concept. A
  negation cue elsewhere ("Epilepsy, not intractable, without status epilepticus") qualifies another
  word and changes nothing, and a denial reaches back only to the last comma or "but" ("No CNS
  involvement, epilepsy since childhood" still records epilepsy): a denial misread clears an
  exclusion, a hedge or an assertion misread at worst leaves it unknown or not met.
- ``uncertain`` -- the text hedges ("rule out", "r/o", "possible", "probable", "suspected", "query",
  "concern for", "cannot exclude", "screening for", "risk of", "?"). The concept is neither shown nor denied: unknown.
- ``historical`` -- the text places the concept in the past ("history of", "h/o", "prior", "status
  post", "resolved"). It counts wherever history counts, and leaves "is it active?" unanswered.
- ``present`` -- anything else.

A condition of someone else ("Family history of epilepsy", "FH: myeloma (father)") is ``negated``: it is
not the patient's (FHIR has FamilyMemberHistory for it, but problem lists carry it in words). Like a
denial, the relative must be named before the term in its clause ("Seizure disorder, like her mother"
is the patient's).

A coded match is ``present`` unless the entry's own verificationStatus hedges it (provisional,
differential, unconfirmed: ``uncertain``) or its text denies or hedges it (a code with the text
"no brain metastases" contradicts itself: ``uncertain``); its text may also make it ``historical``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_mappings.facts import Coded
from fhir_mappings.terminology import codings_of, value_set, value_set_files

PRESENT = "present"
HISTORICAL = "historical"
UNCERTAIN = "uncertain"
NEGATED = "negated"

HEDGED_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})

_SENTENCE = re.compile(r"[.;\n]")  # a cue reaches its term only within one sentence or list item
_CLAUSE = re.compile(r",|\b(?:but|however|although|except|and|with)\b")  # a denial reaches no further back
_NEGATED_BEFORE = re.compile(
    r"\b(no|not|never|without|denies|denied|negative for|free of|absence of|ruled out|excluded)\b"
)
# Someone else's condition ("Family history of epilepsy", "FH: myeloma (father)") is not the patient's.
_OTHER_PERSON = re.compile(
    r"\b(family history|family hx|fh|fhx|mother|father|sister|brother|sibling|parent|son|daughter|"
    r"grandmother|grandfather|aunt|uncle|cousin)\b"
)
# After the term only unambiguous denials count: "Seizure disorder, EEG negative" or "Seizures: none
# since 2019" still record a seizure history, and a denial misread would clear an exclusion.
_NEGATED_AFTER = re.compile(r"\b(ruled out|excluded|absent|not present)\b")
_UNCERTAIN = re.compile(
    r"(\b(rule out|r/o|possible|possibly|probable|probably|suspected|suspect|suspicious|suspicion|"
    r"questionable|query|presumed|likely|unlikely|concern for|concerning for|cannot exclude|cannot be excluded|"
    r"not excluded|to be excluded|evaluate for|evaluation for|differential|versus|vs|screening|screen for|"
    r"work-up|workup|risk of|risk for|at risk|"
    # not a doubt but a qualifier that leaves the concept open: psychogenic non-epileptic "seizures"
    r"psychogenic|non-epileptic|nonepileptic|pseudoseizure)\b|\?)"
)
_NEGATED_ANSWER = re.compile(r"^\s*[:=-]\s*(none|no|negative|absent|not present)\b")  # "CNS involvement: none"
_NEGATING_PREFIX = re.compile(r"\bnon[- ]?$")  # "non-psychotic", "nonepileptic": the term itself is denied
_LEADING_NEGATION = re.compile(r"^\W*(no|not|denies|denied|negative for|without|free of|absence of)\b")
_HISTORICAL = re.compile(r"\b(history of|hx of|hx|h/o|prior|previous|past|status post|s/p|resolved|remote)\b")


@dataclass(frozen=True)
class Match:
    """A concept's match against a value set, with what the entry asserts about it."""

    coded: Coded  # the matching coding, or (system None, code None, the text) for a text match
    assertion: str  # PRESENT | HISTORICAL | UNCERTAIN (a NEGATED text is no match)


def _clause_of(text: str, start: int, end: int) -> str:
    """The clause around the term at ``start``..``end`` ("febrile seizure", not "febrile neutropenia,
    seizure disorder")."""
    before = _CLAUSE.split(_SENTENCE.split(text[:start])[-1])[-1]
    after = _CLAUSE.split(_SENTENCE.split(text[end:])[0])[0]
    return before + text[start:end] + after


def classify(text: str, start: int, end: int) -> str:
    """What ``text`` (lower case) asserts about the term found at ``start``..``end``."""
    before = _SENTENCE.split(text[:start])[-1]
    after = _SENTENCE.split(text[end:])[0]
    clause = _CLAUSE.split(before)[-1]
    if _OTHER_PERSON.search(clause):
        return NEGATED
    if _UNCERTAIN.search(before) or _UNCERTAIN.search(after):
        return UNCERTAIN
    if (_NEGATED_BEFORE.search(clause) or _NEGATING_PREFIX.search(clause) or _NEGATED_AFTER.search(after)
            or _NEGATED_ANSWER.match(after)):
        return NEGATED
    if _HISTORICAL.search(before) or _HISTORICAL.search(after):
        return HISTORICAL
    return PRESENT


def _words(concept: dict) -> list[str]:
    """The words a CodeableConcept carries for a reader: its text and the display of every coding. A
    display is read even beside a code: a value set lists codes, not every descendant (a SNOMED CT
    child of a listed concept, a local code), so the words are the only way to see those. A variant a
    value set leaves out on purpose (R56.0- febrile convulsions) is left out in words too, by its
    ``text_exclusions``."""
    texts = [concept.get("text")] + [c.get("display") for c in codings_of(concept)]
    return [t for t in texts if isinstance(t, str) and t.strip()]


@cache
def _exclusions() -> dict[str, re.Pattern]:
    """Per value set id, its ``text_exclusions``: words naming a variant the value set leaves out on
    purpose, as it leaves out its codes ("febrile" seizure: R56.0-; "concussion": S06.0-)."""
    return {data["id"]: re.compile("|".join(map(re.escape, (t.lower() for t in data["text_exclusions"]))))
            for _, data in value_set_files() if data.get("text_exclusions")}


def _text_assertion(value_set_id: str, text: str, coded: bool) -> str | None:
    """What ``text`` asserts about the value set's concept: the most affirmative reading of any of its
    terms found ("No seizures in 2020. Seizure disorder since 2021" is present); None when it names
    none, or only a variant the value set excludes (an excluded word in the term's clause). Beside a
    matching code (``coded``) a text naming no term still speaks for the code when a cue opens it ("No
    brain metastases") or stands in its first sentence."""
    pattern = value_set(value_set_id).text_pattern
    lowered = text.lower()
    found = list(pattern.finditer(lowered)) if pattern is not None else []
    excluded = _exclusions().get(value_set_id)
    kept = [f for f in found if excluded is None or not excluded.search(_clause_of(lowered, f.start(), f.end()))]
    if kept:
        return _most_affirmative(classify(lowered, f.start(), f.end()) for f in kept)
    if found or not coded:
        return None
    return NEGATED if _LEADING_NEGATION.match(lowered) else classify(lowered, 0, 0)


_RANK = {PRESENT: 0, HISTORICAL: 1, UNCERTAIN: 2, NEGATED: 3}


def _most_affirmative(assertions: Iterable[str]) -> str:
    return min(assertions, key=_RANK.__getitem__)


def match(value_set_id: str, concept: Any, verification: str | None = None) -> Match | None:
    """The concept's match against the value set (a code in it, else a recognised term in its words),
    with its assertion; None when nothing matches or the words only deny the concept. Of several
    texts the most affirmative one decides (a denial in one text does not undo another's assertion)."""
    if not isinstance(concept, dict):
        return None
    wanted = value_set(value_set_id)
    coded = next((Coded(c.get("system"), c.get("code"), c.get("display")) for c in codings_of(concept)
                  if wanted.contains(c.get("system"), c.get("code"))), None)
    if coded is not None:
        said = [_text_assertion(value_set_id, t, True) for t in _words(concept)]
        if verification in HEDGED_VERIFICATION or UNCERTAIN in said or NEGATED in said:
            return Match(coded, UNCERTAIN)
        return Match(coded, HISTORICAL if HISTORICAL in said else PRESENT)
    hits = [(a, t) for t in _words(concept) if (a := _text_assertion(value_set_id, t, False)) is not None]
    if not hits:
        return None
    assertion = _most_affirmative(a for a, _ in hits)
    text = next(t for a, t in hits if a == assertion)
    if assertion == NEGATED:
        return None
    if verification in HEDGED_VERIFICATION:
        assertion = UNCERTAIN
    return Match(Coded(None, None, text), assertion)


"""Hostile input limits: each refusal names the field, 413 for too many/too long, 400 for too deep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.input_limits import InputLimitError, InputLimits, check_limits, check_tree, within_tree_limits
from tests.hypothesis_budget import examples

LIMITS = InputLimits(max_draft_orders=3, max_prefetch_keys=4, max_prefetch_entries=10, max_array_items=50,
                     max_string_length=100, max_depth=12)


def request_with(draft_entries=1, prefetch=None, note="ok"):
    return {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/1", "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "MedicationRequest", "id": f"m{i}", "note": [{"text": note}]}}
                for i in range(draft_entries)]},
        },
        "prefetch": prefetch or {},
    }


def refusal(body) -> InputLimitError:
    with pytest.raises(InputLimitError) as caught:
        check_limits(body, LIMITS)
    return caught.value


def test_a_realistic_request_passes():
    check_limits(request_with(3, {"patient": {"resourceType": "Patient", "id": "p1"},
                                  "observations": {"resourceType": "Bundle", "entry": [{}] * 10}}), LIMITS)


def test_too_many_draft_orders():
    error = refusal(request_with(4))
    assert (error.status, error.path) == (413, "context.draftOrders.entry")


def test_too_many_prefetch_keys():
    error = refusal(request_with(prefetch={f"k{i}": None for i in range(5)}))
    assert (error.status, error.path) == (413, "prefetch")


def test_too_many_prefetch_entries_over_all_keys():
    bundle = {"resourceType": "Bundle", "entry": [{}] * 6}
    error = refusal(request_with(prefetch={"a": bundle, "b": bundle}))
    assert (error.status, error.path) == (413, "prefetch")


def test_long_string_is_named_by_its_path():
    error = refusal(request_with(2, note="x" * 101))
    assert error.status == 413
    assert error.path in {"context.draftOrders.entry[0].resource.note[0].text",
                          "context.draftOrders.entry[1].resource.note[0].text"}


def test_long_array_anywhere():
    body = request_with()
    body["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "a"}] * 51
    error = refusal(body)
    assert (error.status, error.path) == (413, "context.draftOrders.entry[0].resource.note")


def test_deep_nesting_is_refused_without_recursion():
    deep: object = "leaf"
    for _ in range(100_000):  # far beyond Python's recursion limit: the check must be iterative
        deep = [deep]
    body = request_with()
    body["extension"] = deep
    error = refusal(body)
    assert error.status == 400 and error.path.startswith("extension[0]")


def test_long_object_key_is_refused():
    body = request_with()
    body["context"]["k" * 101] = 1
    assert refusal(body).path == "context"


def test_non_object_bodies_only_get_the_tree_checks():
    check_limits([1, 2, 3], LIMITS)
    check_limits("short", LIMITS)
    assert refusal("x" * 101).path == "$"


def test_a_long_key_is_refused_whatever_its_value_and_a_short_body_skips_string_checks():
    long_key = "k" * (LIMITS.max_string_length + 1)
    for value in ({"nested": 1}, [1], "x", 1):
        assert refusal({"context": {long_key: value}}).status == 413
    body = {"context": {"a": "x" * (LIMITS.max_string_length + 1)}}
    with pytest.raises(InputLimitError):  # the raw size is unknown or large: strings are checked
        check_limits(body, LIMITS, body_bytes=LIMITS.max_string_length + 100)


# Small limits so that generated JSON breaks each of them often.
TIGHT = InputLimits(max_array_items=3, max_string_length=4, max_depth=3)
# Each size reaches one past its limit.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=examples(500), deadline=None)
@given(json_values, st.booleans())
def test_the_quick_tree_check_passes_exactly_what_the_path_naming_walk_passes(body, check_strings):
    # check_limits runs the quick check on every request and the walk that names the path only when the
    # quick check fails: both must draw the line in the same place.
    try:
        check_tree(body, TIGHT, check_strings)
        refused = False
    except InputLimitError:
        refused = True

    assert within_tree_limits(body, TIGHT, check_strings) is not refused

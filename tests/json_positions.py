"""Where a test can change a JSON value: shared by the hypothesis tests that mutate FHIR records."""

from __future__ import annotations

from collections.abc import Iterator


def json_positions(value, prefix: tuple = ()) -> Iterator[tuple]:
    """Every position inside a JSON value, as the path of keys and list indexes that leads to it
    (parents before their children)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield prefix + (key,)
            yield from json_positions(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield prefix + (index,)
            yield from json_positions(child, prefix + (index,))

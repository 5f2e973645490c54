"""The batch's shortcuts agree with the reference checks on any input.

``quick_request_data`` (one item) and ``quick_batch_data`` (a batch, a column at a time) either
build the same RouteRequests as ``parse_request_data`` or decline (and the reference then
answers, error included); the lean handler's depth check on the raw bytes agrees with
``json_depth_exceeds`` on the parsed body.
"""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moe_project.json_api import json_depth_exceeds, nests_deeper
from routing.validation import (
    DATA_KEYS,
    FieldErrors,
    parse_request_data,
    quick_batch_data,
    quick_request_data,
)

MAX_STRING = 4096

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 0.0, 0.5, 1.0, 1.5, -0.0, True, False]),
    st.text(max_size=80),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.lists(st.text(min_size=0, max_size=70), max_size=34),
    st.text(min_size=60, max_size=300),
)


def around(limit: int, **kwargs):
    """Short strings, and strings of about ``limit`` characters (either side of it)."""
    return st.one_of(st.text(max_size=8, **kwargs), st.text(min_size=limit - 4, max_size=limit + 4))


capability = st.one_of(around(64, min_size=1), st.just(""))
valid_fields = {
    "type": around(64),
    "priority": st.floats(0, 1),
    "complexity": st.one_of(st.floats(0, 1), st.sampled_from([0, 1])),
    "anomaly_score": st.floats(0, 1),
    "capabilities": st.one_of(
        st.lists(capability, max_size=3), st.lists(capability, min_size=30, max_size=34)
    ),
    "key": st.one_of(around(256), st.integers(-(2**63), 2**63 - 1), st.floats()),
    "data": json_values,
}
# Just outside what each field allows, and anything at all.
off_values = st.one_of(
    st.sampled_from([-1, -0.001, 1.000001, 1.5, 2, 10, "0.5", None, True, [], {}, ""]),
    st.text(min_size=63, max_size=70),
    st.lists(st.text(max_size=66), min_size=1, max_size=34),
    field_values,
)
# Mostly valid objects, then one field (or an unknown one) given any value: what makes the two
# parsers disagree if they ever do.
near_valid = st.fixed_dictionaries({}, optional=valid_fields).flatmap(
    lambda valid: st.one_of(
        st.just(valid),
        st.tuples(st.sampled_from([*sorted(DATA_KEYS), "colour"]), off_values).map(
            lambda change: {**valid, change[0]: change[1]}
        ),
    )
)
data_objects = st.one_of(
    near_valid,
    st.dictionaries(
        st.one_of(st.sampled_from(sorted(DATA_KEYS)), st.text(max_size=8)),
        field_values,
        max_size=7,
    ),
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(data_objects, json_values))
def test_the_quick_parse_builds_what_the_reference_builds_or_declines(data):
    assert_quick_agrees(data)


def assert_quick_agrees(data) -> None:
    """The quick parse declines (None) whatever the reference refuses, and otherwise builds
    the same request or declines."""
    quick = quick_request_data(data, MAX_STRING)
    try:
        reference = parse_request_data(data)
    except FieldErrors:
        assert quick is None
        return
    assert quick is None or quick == reference


BASE = {
    "type": "inference",
    "priority": 0.5,
    "complexity": 0.25,
    "anomaly_score": 0.1,
    "capabilities": ["a", "b"],
    "key": "user-1",
    "data": {"x": 1},
}
EDGES = [
    *(-1, -0.001, 0, 0.0, 1, 1.0, 1.000001, 1.5, 2, 10, float("inf"), float("nan")),
    *(True, False, None, "", "0.5", "x" * 64, "x" * 65, "x" * 256, "x" * 257, [], {}),
    *(["a"] * 32, ["a"] * 33, ["x" * 64], ["x" * 65], [""], [1], ["a", None], 2**53, -7),
    *([{}], ["a", ["b"]]),  # unhashable items in a list
    "x" * (4096 * 64 + 1),
    # payloads whose keys (the tokens) are cut: a key too long, too many keys
    {"k" * 65: 1},
    {f"k{i}": i for i in range(33)},
]


@pytest.mark.parametrize("field", [*sorted(DATA_KEYS), "colour"])
@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:20])
def test_each_field_at_its_edges_parses_alike(field, value):
    assert_quick_agrees({**BASE, field: value})


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "inference", "priority": 1, "complexity": 0.0, "anomaly_score": 0.25},
        {"capabilities": ["a", "b", "a"], "key": 42, "data": {"x": [1, 2]}},
        {"key": 1.5, "data": "some words to tokenise"},
    ],
)
def test_the_quick_parse_takes_the_usual_bodies(data):
    assert quick_request_data(data, MAX_STRING) == parse_request_data(data)


def as_json(requests: list) -> bytes:
    """Requests as JSON: field names and values, number types included."""
    return orjson.dumps([r._asdict() for r in requests])


def assert_column_parse_agrees(items: list) -> None:
    """The column parse declines whatever the reference refuses in any item, and otherwise
    builds the same requests, down to the number types (1 and 1.0 are equal, but the history
    and the answers would show them differently), or declines."""
    quick = quick_batch_data(items, MAX_STRING)
    try:
        reference = [parse_request_data(item) for item in items]
    except FieldErrors:
        assert quick is None
        return
    assert quick is None or as_json(quick) == as_json(reference)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(near_valid, near_valid, data_objects, json_values), max_size=6))
def test_the_column_parse_builds_what_the_reference_builds_or_declines(items):
    assert_column_parse_agrees(items)


@pytest.mark.parametrize("field", [*sorted(DATA_KEYS), "colour"])
@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:20])
def test_each_field_at_its_edges_parses_alike_in_a_column(field, value):
    # the value first, last and alone: min/max and a sum see it in every position
    assert_column_parse_agrees([{**BASE, field: value}, BASE, {"type": "x"}])
    assert_column_parse_agrees([BASE, {"key": 7}, {**BASE, field: value}])
    assert_column_parse_agrees([{**BASE, field: value}])


def test_the_column_parse_takes_usual_batches():
    from tests.performance.bench_load import batch_body

    mixed = [
        {},
        {"type": "inference", "priority": 1, "complexity": 0.0, "anomaly_score": 0.25},
        {"capabilities": ["a", "b", "a"], "key": 42, "data": {"x": [1, 2]}},
        {"key": 1.5, "data": "some words to tokenise"},
        {"data": None, "capabilities": [], "anomaly_score": 1},
    ]
    for items in (mixed, orjson.loads(batch_body(300))["requests"]):
        quick = quick_batch_data(items, MAX_STRING)
        assert quick is not None
        assert as_json(quick) == as_json([parse_request_data(i) for i in items])


def deep_values(alphabet: str):
    return st.recursive(
        st.one_of(st.integers(-1000, 1000), st.text(alphabet=alphabet, max_size=8)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(alphabet=alphabet, max_size=4), inner, max_size=3),
        ),
        max_leaves=40,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(deep_values("[]{} ab"), deep_values('[]{}"\\ ab')),
    st.integers(min_value=1, max_value=8),
    st.sampled_from([0, 5000]),
)
def test_the_depth_check_on_bytes_agrees_with_the_walk(value, limit, padding):
    body = {"requests": [value], "pad": "x" * padding}  # long bodies take the byte scan
    raw = orjson.dumps(body)

    assert nests_deeper(raw, body, limit) == json_depth_exceeds(body, limit)

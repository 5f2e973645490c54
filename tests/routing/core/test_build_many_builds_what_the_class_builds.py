"""``build_many`` (the batch path's constructor for requests, decisions and routed records)
builds exactly what the class builds, item by item; and requests and decisions stay
immutable values."""

from __future__ import annotations

from itertools import repeat

import pytest

from routing.core.types import Decision, RouteRequest, build_many
from routing.runtime import Routed


def test_requests_built_from_columns_equal_the_ones_built_one_by_one():
    rows = [
        ("inference", 0.1, 0.9, ("gpu",), "user-1", 0.3, 42, ("text",), {"t": 1}),
        ("", 0.5, 0.5, (), None, None, 0, (), None),
    ]
    built = build_many(RouteRequest, *zip(*rows, strict=True))

    assert built == [RouteRequest(*row) for row in rows]
    assert all(type(r) is RouteRequest for r in built)
    assert built[0].capabilities == ("gpu",) and built[1].key is None


def test_decisions_and_routed_records_from_columns():
    args = (("a",), {"a": 0.5}, 0.5, "top_k", "adaptive", "why", False, 0.1, 0.9, ("a", "b"), True)
    (decision,) = build_many(Decision, *([value] for value in args))
    assert decision == Decision(*args) and type(decision) is Decision
    assert decision.propensity == 0.9 and decision.candidates == ("a", "b") and decision.panic

    routed = build_many(Routed, ["r1", "r2"], [decision, decision], repeat(None, 2), repeat(1, 2))
    assert routed == [Routed("r1", decision, None, 1), Routed("r2", decision, None, 1)]


def test_every_field_is_required_and_columns_must_be_as_long():
    with pytest.raises(ValueError):
        build_many(Routed, ["r1", "r2"], ["d1"], [None, None], [1, 1])


def test_the_class_defaults_still_apply_one_by_one():
    d = Decision(("a",), {"a": 0.5}, 0.5, "top_k", "adaptive", "why")
    assert (d.propensity, d.candidates, d.no_eligible_service, d.latency_ms, d.panic) == (
        None,
        (),
        False,
        0.0,
        False,
    )
    assert RouteRequest() == RouteRequest("", 0.5, 0.5, (), None, None, 0, (), None)


def test_values_are_immutable():
    request = RouteRequest("inference")
    with pytest.raises(AttributeError):
        request.complexity = 0.9  # type: ignore[misc]
    assert request._replace(complexity=0.9).complexity == 0.9 and request.complexity == 0.5

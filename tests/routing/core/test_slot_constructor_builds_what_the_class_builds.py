"""``slot_constructor`` (the batch path's constructor for requests and decisions) builds
exactly what the dataclass's own ``__init__`` builds, defaults included."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from routing.core.types import Decision, RouteRequest, slot_constructor


def test_a_request_is_the_same_with_every_field_given_or_none():
    new = slot_constructor(RouteRequest)
    args = ("inference", 0.1, 0.9, ("gpu",), "user-1", 0.3, 42, ("text",), {"t": 1})

    assert new(*args) == RouteRequest(*args)
    assert new() == RouteRequest()
    assert new("batch") == RouteRequest("batch")


def test_a_decision_takes_the_class_defaults():
    new = slot_constructor(Decision)
    args = (("a",), {"a": 0.5}, 0.5, "top_k", "adaptive", "why")

    built = new(*args)

    assert built == Decision(*args)
    assert (built.propensity, built.candidates, built.no_eligible_service) == (None, (), False)
    assert new(*args, True, 0.1, 0.9, ("a", "b")) == Decision(*args, True, 0.1, 0.9, ("a", "b"))


def test_what_it_builds_stays_frozen():
    decision = slot_constructor(Decision)(("a",), {}, 0.5, "s", "s", "r")

    with pytest.raises(AttributeError):
        decision.reason = "changed"  # type: ignore[misc]


def test_a_default_factory_is_refused():
    @dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list = field(default_factory=list)

    with pytest.raises(TypeError, match="default_factory"):
        slot_constructor(WithFactory)

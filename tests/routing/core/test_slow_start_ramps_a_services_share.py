"""Slow start in the engine: a ramping service is left out of a request's candidates with
probability 1 - ramp, so its share grows with the ramp; it is never left out when it is the
request's only candidate."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.types import FleetSnapshot, RouteRequest
from tests.routing.core.fleets import service, view


@pytest.mark.parametrize("path", ["single", "batch"])
def test_a_quarter_ramp_gives_about_a_quarter_of_the_share(path):
    snapshot = FleetSnapshot.build([service("a"), service("b")])
    ramped = replace(view(2), ramp=np.array([0.25, 1.0]))
    engine = RoutingEngine(EngineConfig(p2c_seed=3))
    if path == "single":
        picks = [
            engine.route(RouteRequest(), snapshot, ramped, "power_of_two").selected[0]
            for _ in range(4000)
        ]
    else:  # one draw per batch: many small batches
        picks = [
            engine.route_batch([RouteRequest()] * 2, snapshot, ramped, "power_of_two")[0].selected[
                0
            ]
            for _ in range(4000)
        ]
    share = Counter(picks)["a"] / len(picks)
    # Without the ramp "a" takes half; eligible a quarter of the time, it takes an eighth.
    assert share == pytest.approx(0.125, abs=0.03)


def test_the_only_candidate_is_never_left_out():
    snapshot = FleetSnapshot.build([service("a", "inference"), service("b", "storage")])
    ramped = replace(view(2), ramp=np.array([0.05, 1.0]))
    engine = RoutingEngine(EngineConfig(p2c_seed=1))
    decisions = [
        engine.route(RouteRequest(request_type="inference"), snapshot, ramped, "semantic")
        for _ in range(200)
    ]
    assert all(d.selected == ("a",) for d in decisions)

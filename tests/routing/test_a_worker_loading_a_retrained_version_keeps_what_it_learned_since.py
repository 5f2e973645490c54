"""A worker that loads a retrained version starts from that version's evaluated learner, plus
the outcomes it observed after the version's training began: they are replayed on top, not
dropped (before, every activation forgot what was learned while training ran)."""

import time

import orjson
import pytest

from routing.core.learning import OutcomeLearner
from routing.models import GateModel
from routing.training import MIN_EXAMPLES, activate_gate_version, retrain_gate


def test_a_loaded_state_is_brought_up_to_date_with_what_was_observed_since():
    live = OutcomeLearner(seed=0)
    trained = OutcomeLearner(seed=0)
    for i in range(100):
        live.observe("a", "analysis", i / 100, 0.9)
        trained.observe("a", "analysis", i / 100, 0.9)
    time.sleep(0.002)
    through = time.time()
    blob = trained.to_bytes(through=through)
    # given: after training began, the live learner sees a second service do badly
    for i in range(30):
        live.observe("b", "analysis", i / 30, 0.2)

    # when
    replayed = live.load_bytes(blob)

    # then: the version's statistics plus those 30 outcomes
    assert replayed == 30
    assert live.outcomes == 130
    mean, evidence = live.estimates("analysis", 0.5, ["a", "b"])
    assert mean[0] == pytest.approx(0.9, abs=0.02)
    assert mean[1] == pytest.approx(0.2, abs=0.05)
    assert evidence[1] > 5
    # A state saved without a time (an older version) is loaded as it is.
    assert live.load_bytes(trained.to_bytes()) == 0
    assert live.estimates("analysis", 0.5, ["b"])[1][0] == 0


@pytest.mark.django_db
def test_outcomes_reported_while_a_version_was_trained_survive_its_activation(
    operator_api, fleet, django_capture_on_commit_callbacks
):
    from routing.runtime import get_router

    def route() -> dict:
        body = {"data": {"type": "inference"}, "routing_strategy": "switch_transformer"}
        response = operator_api.post("/api/v1/route", body, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    def report(routed: dict) -> None:
        sid = routed["selected_services"][0]
        body = {"service_id": sid, "success": True, "latency_ms": 20.0}
        url = f"/api/v1/route/{routed['request_id']}/outcome"
        assert operator_api.post(url, body, format="json").status_code == 200

    late = 15
    routed = [route() for _ in range(MIN_EXAMPLES + 10 + late)]
    for r in routed[:-late]:
        report(r)
    # (on commit, activation tells this process's router to reload: the test's transaction
    # never commits, so run those callbacks as a commit would)
    with django_capture_on_commit_callbacks(execute=True):
        result = retrain_gate()
        assert result["trained"] is True, result
        if not result["activated"]:
            activate_gate_version(result["version"])
    # given: outcomes reported after the retrain, before this worker reloads
    for r in routed[-late:]:
        report(r)
    learner = get_router().engine.learner
    assert learner.outcomes == MIN_EXAMPLES + 10 + late

    # when: the next request finds the new version and loads it
    route()

    # then: the version's learner, and the late outcomes on top of it
    router = get_router()
    assert router.gate_version == result["version"]
    row = GateModel.objects.get(version=result["version"])
    stored = orjson.loads(bytes(row.policy_weights))["outcomes"]
    assert stored <= MIN_EXAMPLES + 10  # what it was trained on (the late ones came after)
    assert router.engine.learner.outcomes == stored + late

"""The retrain's evaluation protocol (routing/training.py): the candidate and the reward model
DR uses are fitted on the older 80% of the outcomes by decision time, the newest 20% are held
out; only the outcomes of the service a decision's propensity is about count off-policy (a
top-k decision's other services, or a primary replaced at dispatch, do not); the stored
evaluation says which baseline it was compared with; and a held-out set with nothing usable,
or too small, is refused with a reason that says so, never a crash."""

import datetime as dt
import random

import pytest
from django.utils import timezone

from registry.services import register_service
from routing import training
from routing.core import gate as gate_lib
from routing.core.learning import OutcomeLearner
from routing.core.objective import Objective
from routing.core.types import Decision, RouteRequest
from routing.history.flush import apply_records
from routing.history.records import amend_record, decision_record, outcome_record
from routing.models import GateModel, RoutingDecision

pytestmark = pytest.mark.django_db(transaction=True)

SERVICES = ("fast", "slow", "flaky")
START = timezone.now() - dt.timedelta(hours=1)


@pytest.fixture
def fleet():
    for sid in SERVICES:
        register_service(
            {
                "service_id": sid,
                "service_type": "inference",
                "endpoint": "http://127.0.0.1:9999",
                "capabilities": ["inference"],
                "max_capacity": 10_000,
            }
        )


def store(i, service="fast", propensity=1 / 3, candidates=SERVICES, success=True):
    """Decision ``i`` (decided ``i`` seconds after START; its complexity names it)."""
    features = {"complexity": i / 1000, "priority": 0.5, "capabilities": []}
    if candidates is not None:
        features["candidates"] = list(candidates)
    RoutingDecision.objects.create(
        request_id=f"req-{i}",
        request_type="vision",
        features=features,
        requested_strategy="power_of_two",
        strategy="power_of_two",
        selected_services=[service],
        primary_service=service,
        propensity=propensity,
        decided_at=START + dt.timedelta(seconds=i),
        success=success,
        outcome_service=service,
        latency_ms=10.0,
    )


@pytest.fixture
def captured(monkeypatch):
    """What retrain_gate passes to evaluate_candidate."""
    seen = {}
    real = training.evaluate_candidate

    def spy(candidate, active, held_out, *args):
        seen.update(candidate=candidate, active=active, held_out=held_out)
        return real(candidate, active, held_out, *args)

    monkeypatch.setattr(training, "evaluate_candidate", spy)
    return seen


def test_the_candidate_learns_from_the_older_80_percent_and_is_judged_on_the_newest(
    fleet, captured
):
    order = list(range(100))
    random.Random(0).shuffle(order)  # stored out of time order
    for i in order:
        store(i, service=SERVICES[i % 3])

    result = training.retrain_gate()

    assert result["trained"]
    held_out = captured["held_out"]
    assert sorted(round(ex.request.complexity * 1000) for ex in held_out) == list(range(80, 100))
    # the candidate (whose estimates are DR's reward model) saw only the 80 older outcomes
    assert captured["candidate"].outcomes == 80
    stored = GateModel.objects.get(version=result["version"])
    assert stored.training_metrics["examples"] == 80
    assert stored.evaluation["held_out"] == 20


def record(request_id, selected, propensity=0.4, candidates=SERVICES):
    decision = Decision(
        selected=tuple(selected),
        scores={s: 0.5 for s in selected},
        confidence=propensity,
        strategy="top_k",
        requested_strategy="top_k",
        reason="learned top-2 of 3",
        propensity=propensity,
        candidates=tuple(candidates),
    )
    return decision_record(request_id, decision, RouteRequest(request_type="vision"), None)


def test_only_an_outcome_of_the_service_the_propensity_is_about_keeps_it():
    apply_records(
        [
            # the primary reported: its propensity stands
            record("primary", ["fast", "slow"]),
            outcome_record("primary", "fast", True, 10.0, 200),
            # only the second service of a top-k decision reported
            record("secondary", ["fast", "slow"]),
            outcome_record("secondary", "slow", True, 10.0, 200, primary=False),
            # the primary was refused at dispatch (another worker's breaker): the second one
            # took its place and reported as the primary
            record("amended", ["fast", "slow"]),
            amend_record(
                "amended",
                ["slow"],
                "learned top-2 of 3; breaker refused fast at dispatch",
                primary_replaced=True,
            ),
            # only the second service was refused: the first pick's propensity stands
            record("second-refused", ["fast", "slow"]),
            amend_record(
                "second-refused", ["fast"], "learned top-2 of 3; breaker refused slow at dispatch"
            ),
            outcome_record("second-refused", "fast", True, 10.0, 200),
            outcome_record("amended", "slow", True, 10.0, 200),
            # candidates not logged (an old record)
            record("no-candidates", ["fast"], candidates=()),
            outcome_record("no-candidates", "fast", True, 10.0, 200),
        ]
    )
    amended = RoutingDecision.objects.get(request_id="amended")
    assert amended.primary_service == "slow" and amended.propensity is None  # not fast's

    examples = training._examples(100, Objective())

    by_id = {
        rid: ex
        for rid, ex in zip(
            RoutingDecision.objects.order_by("decided_at").values_list("request_id", flat=True),
            examples,
            strict=True,
        )
    }
    assert by_id["primary"].propensity == 0.4
    assert by_id["secondary"].propensity is None
    assert by_id["amended"].propensity is None  # not slow's probability
    assert by_id["second-refused"].propensity == 0.4
    assert by_id["no-candidates"].candidates == ()
    # all five still teach the learner; off-policy evaluation can use only "primary" and
    # "second-refused"
    assert [ex.service_id for ex in by_id.values()] == ["fast", "slow", "slow", "fast", "fast"]
    learner = OutcomeLearner()
    verdict = training.evaluate_candidate(learner, None, examples, 0.95, 30)
    assert verdict["usable"] == 2
    assert not verdict["better"]


def test_with_an_active_version_whose_learner_cannot_be_read_the_evaluation_says_so(fleet):
    for i in range(100):
        store(i, service=SERVICES[i % 3])
    GateModel.objects.create(
        version=7,
        weights=gate_lib.gate_to_bytes(gate_lib.Gate()),
        policy_weights=b"not a learner",
        active=True,
    )

    result = training.retrain_gate()

    evaluation = result["evaluation"]
    assert evaluation["against"] == "cold start (active version 7 has no usable learner)"
    assert evaluation["baseline_version"] is None


def test_with_an_active_version_the_evaluation_names_it(fleet):
    for i in range(100):
        store(i, service=SERVICES[i % 3])
    learner = OutcomeLearner()
    learner.observe("fast", "vision", 0.5, 1.0)
    GateModel.objects.create(
        version=3,
        weights=gate_lib.gate_to_bytes(gate_lib.Gate()),
        policy_weights=learner.to_bytes(),
        active=True,
    )

    evaluation = training.retrain_gate()["evaluation"]

    assert evaluation["against"] == "active version"
    assert evaluation["baseline_version"] == 3


def test_a_held_out_set_with_only_zero_propensities_is_refused_and_says_why(fleet):
    for i in range(100):
        store(i, service=SERVICES[i % 3], propensity=0.0)

    result = training.retrain_gate()

    assert result["trained"] and not result["activated"]
    assert result["evaluation"]["usable"] == 0
    assert "0 of 20 held out usable" in result["reason"]
    assert "20 with a zero one" in result["reason"]
    assert not GateModel.objects.filter(active=True).exists()


def test_a_tiny_held_out_set_is_refused_for_too_little_support(fleet):
    for i in range(training.MIN_EXAMPLES):  # the least that trains: 10 held out
        store(i, service=SERVICES[i % 3])

    result = training.retrain_gate()

    assert result["trained"] and not result["activated"]
    assert result["evaluation"]["usable"] == 10
    assert "too little support" in result["reason"]


def test_an_amendment_flushed_after_its_decision_voids_the_stored_propensity():
    apply_records([record("stored-first", ["fast", "slow"])])
    assert RoutingDecision.objects.get(request_id="stored-first").propensity == 0.4

    apply_records(
        [
            amend_record(
                "stored-first",
                ["slow"],
                "learned top-2 of 3; breaker refused fast at dispatch",
                primary_replaced=True,
            )
        ]
    )

    row = RoutingDecision.objects.get(request_id="stored-first")
    assert row.primary_service == "slow" and row.propensity is None

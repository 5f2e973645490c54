"""The rebalance job's anomaly scores reach routers in other processes through the database.

In the embedded default the Celery worker's live-state store is its own: what it learns must
go through the database. Here a router built by ``reset_router()`` stands for the web process
(it never saw the job's ``set_anomaly`` calls).
"""

import inspect

import pytest
from django.conf import settings

from registry.services import current_registry_version, register_service
from routing.core.types import RouteRequest
from routing.runtime import Router, get_router, reset_router
from telemetry.models import ServiceAnomaly
from telemetry.services import (
    _record_anomaly_scores,
    apply_recorded_anomalies,
    rebalance_weights,
)

pytestmark = pytest.mark.django_db

NORMAL = ("b-normal", "c-normal", "d-normal", "e-normal")
OUTLIER = "a-outlier"  # first in snapshot order: tda_aware's tie-break picks it while it is fine


def router_applies_recorded_anomalies() -> bool:
    """Router._reload calls telemetry.services.apply_recorded_anomalies (see issue 10)."""
    return "apply_recorded_anomalies" in inspect.getsource(Router._reload)


@pytest.fixture
def fleet():
    for sid in (OUTLIER, *NORMAL):
        register_service(
            {
                "service_id": sid,
                "service_type": "inference",
                "endpoint": "http://127.0.0.1:9",
                "capabilities": ["tda"],
                "max_capacity": 100,
            }
        )


def _job_sees_a_latency_outlier() -> None:
    store = get_router().store
    for i in range(20):
        for sid in NORMAL:
            store.record_outcome(f"{sid}{i}", sid, True, 10.0 + i % 3)
        store.record_outcome(f"o{i}", OUTLIER, True, 900.0)


def _tda_choice() -> str:
    routed = get_router().route(RouteRequest(capabilities=("tda",)), "tda_aware", None)
    selected = routed.decision.selected[0]
    get_router().report_outcome(routed.request_id, selected, True, 10.0, 200)
    return selected


def test_rebalance_stores_the_scores(fleet):
    # given
    _job_sees_a_latency_outlier()

    # when
    result = rebalance_weights()

    # then
    stored = dict(ServiceAnomaly.objects.values_list("service__service_id", "score"))
    assert stored[OUTLIER] > 0.8
    assert result["anomalies"][OUTLIER] == round(stored[OUTLIER], 3)
    assert all(stored.get(sid, 0.0) == 0.0 for sid in NORMAL)


def test_a_changed_score_bumps_the_registry_version_and_an_unchanged_one_does_not(fleet):
    # given
    before = current_registry_version()

    # when / then: a new score makes routers reload
    assert _record_anomaly_scores({OUTLIER: 0.9, NORMAL[0]: 0.0})
    assert current_registry_version() == before + 1
    # the same scores (within MIN_ANOMALY_CHANGE) again: nothing is written
    assert not _record_anomaly_scores({OUTLIER: 0.905, NORMAL[0]: 0.0})
    assert current_registry_version() == before + 1
    # back to normal is a change too
    assert _record_anomaly_scores({OUTLIER: 0.0})
    assert current_registry_version() == before + 2
    assert ServiceAnomaly.objects.get(service__service_id=OUTLIER).score == 0.0


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="with Redis the shared store carries them")
def test_stored_scores_are_applied_to_another_process_store(fleet):
    # given: the job ran in "another process"
    _job_sees_a_latency_outlier()
    rebalance_weights()
    reset_router()
    assert get_router().live_states([OUTLIER])[OUTLIER]["anomaly"] == 0.0

    # when
    applied = apply_recorded_anomalies(get_router().store)

    # then
    assert applied[OUTLIER] > 0.8
    assert get_router().live_states([OUTLIER])[OUTLIER]["anomaly"] > 0.8


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="with Redis the shared store carries them")
@pytest.mark.skipif(
    not router_applies_recorded_anomalies(),
    reason="needs Router._reload to call telemetry.services.apply_recorded_anomalies",
)
def test_a_rebalance_in_another_process_changes_a_tda_aware_decision(fleet):
    # given: the web process routes tda_aware; every service is equally idle
    reset_router()
    assert _tda_choice() == OUTLIER

    # when: the job, in its own process, finds the outlier
    web = get_router()
    reset_router()
    _job_sees_a_latency_outlier()
    rebalance_weights()
    reset_router()
    import routing.runtime

    routing.runtime._router = web  # back to the web process's router and live state
    web.mark_stale()

    # then
    web.snapshot()  # what the next routed request does first
    assert web.live_states([OUTLIER])[OUTLIER]["anomaly"] > 0.8
    assert {_tda_choice() for _ in range(10)} <= set(NORMAL)

"""With Redis, an outcome reported to one worker teaches every worker's online learner
(routing/shared_learning.py): two routers (two workers' worth of state) in one process, an
outcome reported to A, and B's learner has it within moments; A does not count it twice."""

import time

import pytest
from django.conf import settings

from routing.core.types import RouteRequest
from routing.runtime import Router
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_state():
    if not settings.REDIS_URL:
        pytest.skip("runs in the PostgreSQL + Redis pass (one worker learns from what it gets)")


@pytest.fixture
def two_workers(redis_state, fleet):
    a, b = Router(), Router()
    yield a, b
    a.close()
    b.close()


def outcomes_of(router, service_id, request_type):
    arm = router.engine.learner._arms.get((service_id, request_type))
    return 0.0 if arm is None else float(arm.seg[:, 5].sum())


def test_an_outcome_reported_to_one_worker_reaches_the_others_learner(two_workers):
    a, b = two_workers
    assert a._follower.ready.wait(5) and b._follower.ready.wait(5)
    request = RouteRequest(request_type="inference", complexity=0.3)
    routed = []
    for _ in range(20):
        (one,) = a.route_batch([request], "switch_transformer", None)
        routed.append(one)
    for one in routed:
        service_id = one.decision.selected[0]
        a.report_outcome(one.request_id, service_id, False, 900.0, 500)
    service_ids = {one.decision.selected[0] for one in routed}
    total = lambda router: sum(outcomes_of(router, s, "inference") for s in service_ids)  # noqa: E731
    assert total(a) == pytest.approx(20, abs=0.5)  # discounted weight, ~20
    assert wait_for(lambda: total(b) >= 19.5), total(b)
    # B's estimate for what failed fell with A's reports: it has never routed anything.
    for sid in service_ids:
        mean, _ = b.engine.learner.estimates("inference", 0.3, [sid])
        assert mean[0] < 0.5
    time.sleep(0.2)  # A's follower has seen its own entries by now, and skipped them
    assert total(a) == pytest.approx(20, abs=0.5)
    assert b._follower.applied == 20 and a._follower.applied == 0


def test_without_shared_learning_each_worker_keeps_its_own(redis_state, fleet, settings):
    settings.MOE_SHARED_LEARNING = False
    a, b = Router(), Router()
    try:
        assert not a._follower.learns  # it follows only the other workers' 429 cool-downs
        request = RouteRequest(request_type="inference", complexity=0.3)
        (one,) = a.route_batch([request], "switch_transformer", None)
        a.report_outcome(one.request_id, one.decision.selected[0], False, 900.0, 500)
        time.sleep(0.3)
        assert outcomes_of(b, one.decision.selected[0], "inference") == 0.0
    finally:
        a.close()
        b.close()

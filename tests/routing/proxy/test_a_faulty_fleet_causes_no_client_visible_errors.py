"""Backends that die, hang, stall, answer 500/503/429 or cut a body mid-way, next to one
healthy service: clients see no error while the retry budget allows, and each faulty
service's breaker opens within its run."""

import collections
import json

import pytest
from asgiref.sync import sync_to_async

from routing.core.breaker import CLOSED_RECORD, BreakerConfig, failures_to_open
from routing.forwarding import reset_forwarding_state, retry_budget
from routing.runtime import get_router
from tests.routing.proxy.conftest import body_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

FAULTS = ["dead", "hang", "slow", "status-500", "status-503", "status-429", "reset"]
REQUESTS = 100  # enough for every faulty service to see a new service's run (8) or more


@pytest.fixture(autouse=True)
def generous_budget_and_quick_timeouts(settings):
    settings.MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS = 0.3
    settings.MOE_PROXY_CONNECT_TIMEOUT_SECONDS = 0.3
    # Seven faulty services of eight: the first requests need several retries each.
    settings.MOE_RETRY_BUDGET_RATIO = 3.0
    settings.MOE_RETRY_BUDGET_MIN_RETRIES = 10
    reset_forwarding_state()


async def test_a_faulty_fleet_causes_no_client_visible_errors(proxy, afleet):
    # given
    backends = await afleet(len(FAULTS) + 1)
    healthy = backends[-1]
    faulty = dict(zip(backends, FAULTS, strict=False))
    for backend, fault in faulty.items():
        backend.mode, _, code = fault.partition("-")
        backend.status = int(code or 200)
        backend.delay_s = 1.0  # "slow": beyond the attempt timeout
        backend.retry_after = "1"
        if fault == "dead":
            backend.kill()

    # when: idempotent requests spread over the fleet by key
    statuses, served = collections.Counter(), collections.Counter()
    errors = []
    for i in range(REQUESTS):
        response = await proxy.get(
            f"/api/v1/proxy/items/{i}",
            headers={"X-Moe-Strategy": "consistent_hash", "X-Moe-Key": f"k{i}"},
        )
        statuses[response.status_code] += 1
        if response.status_code != 200:
            errors.append((await body_of(response))[:2000])
        if response.status_code == 200:
            served[json.loads(await body_of(response))["service"]] += 1

    # then
    stats = retry_budget().stats()
    print(f"\n{REQUESTS} requests -> {dict(statuses)}; retries {stats['retries']}")
    assert statuses == {200: REQUESTS}, errors
    assert served == {healthy.name: REQUESTS}
    live = await sync_to_async(get_router().live_states)([b.name for b in faulty])
    opened = {name for name, state in live.items() if state["breaker_state"] != "closed"}
    # 429 cools down for Retry-After instead of being hit again; every other fault has failed
    # at least consecutive_failures times by now, or its breaker would not have opened.
    always_hit = {b.name for b, fault in faulty.items() if fault != "status-429"}
    assert always_hit <= opened, live


async def test_a_breaker_opens_after_its_consecutive_failure_threshold(proxy, afleet, settings):
    # given
    threshold = failures_to_open(CLOSED_RECORD, BreakerConfig())  # a new service: 8
    bad, good = await afleet(2)
    bad.mode, bad.status = "status", 503
    headers = {"X-Moe-Strategy": "semantic"}  # ties go to "a-...": the failing one

    # when / then: each failure is reported; the threshold-th opens the breaker
    states = []
    for _ in range(threshold):
        response = await proxy.get("/api/v1/proxy/x", headers=headers)
        assert response.status_code == 200
        live = await sync_to_async(get_router().live_states)([bad.name])
        states.append(live[bad.name]["breaker_state"])
    assert states == ["closed"] * (threshold - 1) + ["open"]
    hits = bad.hits
    response = await proxy.get("/api/v1/proxy/x", headers=headers)
    assert response["X-Moe-Service"] == good.name
    assert "X-Moe-Attempts" not in response  # not even tried
    assert bad.hits == hits

"""``RedisStateStore.execute_async`` (the batch path's commit, awaited on the event loop) does
what ``execute`` does: the routed calls are counted and refusals reported, a refresh queued on
the pipeline installs its view, the caller's own commands run, and a Redis that is gone
degrades the store with the queued requests counted locally, never raising."""

import asyncio

import pytest

from routing.core.types import BreakerState
from telemetry.state.redis_store import RedisStateStore, make_client
from tests.telemetry.state.conftest import HELD, fleet

pytestmark = pytest.mark.integration  # real Redis


def test_an_awaited_commit_counts_refuses_and_runs_the_callers_commands(make_store, key_prefix):
    a = make_store(lease=HELD, view_max_age_s=60.0)
    b = make_store(lease=HELD, view_max_age_s=60.0)
    snapshot = fleet(2)
    a.view(snapshot)
    b.force_breaker("svc-01", BreakerState.OPEN)  # a's cached view does not know yet
    a._cache_for(snapshot).fetched_at -= 45.0  # past half its age: the commit refreshes it

    async def commit():
        pipe = a.pipeline()
        assert a.queue_refresh(pipe, snapshot)
        a.record_routed_many(
            [("r1", ["svc-00"]), ("r2", ["svc-01"]), ("r3", ["svc-00"])], pipe=pipe
        )
        pipe.set(f"{key_prefix}mine", "x")
        return await a.execute_async(pipe)

    results = asyncio.run(commit())

    assert [("r2", "svc-01")] in [list(r) for r in results if isinstance(r, list)]
    assert results[-1] is True  # the caller's SET
    assert a._client.get(f"{key_prefix}mine") == b"x"
    view = a.view(snapshot)  # installed by the commit: no read of its own
    assert view.in_flight.tolist() == [2, 0]
    assert view.breaker_allows.tolist() == [True, False]
    assert b.view(snapshot).in_flight.tolist() == [2, 0]  # shared


def test_an_awaited_commit_falls_back_to_local_state_when_redis_is_gone(private_redis):
    a = RedisStateStore(make_client(private_redis.url), key_prefix="moe:state:", lease=HELD)
    pipe = a.pipeline()
    a.record_routed_many([("r1", ["svc-00"]), ("r2", ["svc-00"])], pipe=pipe)

    private_redis.kill()

    assert asyncio.run(a.execute_async(pipe)) is None
    assert a.degraded
    assert a.view(fleet(1)).in_flight.tolist() == [2]

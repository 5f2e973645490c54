"""With Redis state, a worker that routed recently keeps its view of the shared state fresh on a
timer, so its next request finds a view younger than the maximum age and reads no Redis for it
(the README's "one round trip per routed request" depends on it)."""

import asyncio
import time

import httpx
import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_state():
    if not settings.REDIS_URL:
        pytest.skip("runs in the PostgreSQL + Redis pass (the local store has no view to refresh)")


async def test_the_view_is_still_fresh_after_a_pause_longer_than_its_age(
    redis_state, client_user, fleet
):
    from moe_project.asgi import application
    from routing.runtime import get_router

    headers = {"Authorization": f"Bearer {AccessToken.for_user(client_user)}"}
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        first = await client.post("/api/v1/route", json={"data": {}}, headers=headers)
        assert first.status_code == 200
        router = get_router()
        store = router.store
        await asyncio.sleep(5 * store.view_max_age_s)  # well past the view's maximum age

        cache = store._cache_for(router.current_snapshot())
        assert time.monotonic() - cache.fetched_at < store.view_max_age_s

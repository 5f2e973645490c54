"""Draining, enabling and disabling a service reach the live feed, once per changed service.

Observed as the dashboard observes them: a WebSocket on ``/ws/routing``, on the channel layer
the settings configure (channels-redis on the suite's Redis when REDIS_URL is set).
"""

import uuid

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import transaction

from registry.models import Service
from registry.services import set_status
from telemetry.events import publish_event
from tests.telemetry.live.conftest import collect, connected, feed_communicator, session_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


class RolledBack(Exception):
    pass


@pytest.fixture
def unique_prefix() -> str:
    """Service ids of this test's own (under Redis, other tests' events may arrive too)."""
    return f"st-{uuid.uuid4().hex[:8]}"


def create_fleet(prefix: str, statuses: dict[str, str]) -> dict[str, Service]:
    # Rows written directly: creating them announces nothing, so every event seen is a change.
    return {
        name: Service.objects.create(
            service_id=f"{prefix}-{name}",
            service_type="inference",
            endpoint="http://127.0.0.1:8101",
            max_capacity=8,
            status=status,
        )
        for name, status in statuses.items()
    }


@pytest_asyncio.fixture
async def feed(staff):
    communicator = feed_communicator(session=await sync_to_async(session_for)(staff))
    await connected(communicator)
    yield communicator
    await communicator.disconnect()


async def announcements_until_marker(feed, prefix: str) -> list[dict]:
    """The feed's ``service_registered`` events for ``prefix`` services, up to a marker event.

    The marker is published after the change; the feed keeps the publishing order, so every
    event the change caused arrived before it (and a late duplicate would have too).
    """
    publish_event("model_updated", {"version": f"{prefix}-marker"})
    got = await collect(feed, lambda ms: any(m.get("version") == f"{prefix}-marker" for m in ms))
    return [
        m
        for m in got
        if m["type"] == "service_registered" and m["service_id"].startswith(f"{prefix}-")
    ]


async def test_an_admin_action_announces_each_service_it_changed_once(
    feed, admin_client, unique_prefix
):
    # given: two active services and one already draining
    fleet = await sync_to_async(create_fleet)(
        unique_prefix, {"a": "active", "b": "active", "c": "draining"}
    )
    # when: an operator drains all three in admin
    response = await sync_to_async(admin_client.post)(
        "/admin/registry/service/",
        {
            "action": "drain_services",
            "_selected_action": [s.pk for s in fleet.values()],
            "index": 0,
        },
    )
    assert response.status_code == 302
    # then: the two that changed are announced, once each, with their new status
    events = await announcements_until_marker(feed, unique_prefix)
    assert sorted(m["service_id"] for m in events) == [
        f"{unique_prefix}-a",
        f"{unique_prefix}-b",
    ]
    assert all(m["status"] == "draining" and m["created"] is False for m in events)


async def test_a_status_change_is_announced_only_once_it_commits(feed, unique_prefix):
    # given
    await sync_to_async(create_fleet)(unique_prefix, {"a": "active"})
    service_id = f"{unique_prefix}-a"

    def disable_then_roll_back():
        with transaction.atomic():
            set_status([service_id], "disabled")
            raise RolledBack

    # when: one change rolls back, the next commits
    with pytest.raises(RolledBack):
        await sync_to_async(disable_then_roll_back)()
    assert await sync_to_async(set_status)([service_id], "draining") == 1
    # then: only the committed one was announced
    events = await announcements_until_marker(feed, unique_prefix)
    assert [(m["service_id"], m["status"]) for m in events] == [(service_id, "draining")]

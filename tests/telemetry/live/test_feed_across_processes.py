"""With channels-redis, an event published in another process (a Celery worker) arrives."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.telemetry.live.conftest import (
    channels_redis_layers,
    collect,
    connected,
    redis_url_for_live_tests,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
PUBLISH = """
import django
django.setup()
from telemetry.events import publish_event, publish_routes
publish_event("rebalanced", {"task_id": TAG, "changed": 3})
publish_routes([{"request_id": TAG + "-r", "selected_services": ["svc-a"]}])
"""  # nothing else: what is buffered at exit is sent before the process ends


@pytest.fixture
def redis_layer(require_redis, settings):
    """Run this test on channels-redis, whatever the suite's configuration."""
    url = redis_url_for_live_tests()
    settings.CHANNEL_LAYERS = channels_redis_layers(url)
    return url


async def test_an_event_from_another_process_reaches_the_browser(
    redis_layer, staff_session, unique, open_feeds
):
    client = open_feeds(session=staff_session)
    await connected(client)
    env = {**os.environ, "REDIS_URL": redis_layer, "DJANGO_SETTINGS_MODULE": "moe_project.settings"}

    subprocess.run(
        [sys.executable, "-c", f"TAG = {unique!r}\n{PUBLISH}"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )

    def mine(ms):
        rebalanced = [m for m in ms if m.get("task_id") == unique]
        routes = [
            e
            for m in ms
            if m["type"] == "route"
            for e in m["events"]
            if e.get("request_id") == f"{unique}-r"
        ]
        return rebalanced and routes

    got = await collect(client, mine, timeout=5)
    assert {"type": "rebalanced", "task_id": unique, "changed": 3} in got
    await client.disconnect()

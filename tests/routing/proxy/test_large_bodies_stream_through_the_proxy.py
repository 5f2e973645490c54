"""Bodies larger than the retry buffer stream through; a cut after that is the service's fault."""

import pytest
from asgiref.sync import sync_to_async

from routing.runtime import get_router

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SIZE = 5 * 1024 * 1024


async def test_a_large_download_streams_back_whole(proxy, afleet):
    (backend,) = await afleet(1)

    response = await proxy.get(f"/api/v1/proxy/download?size={SIZE}")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Length"] == str(SIZE)
    received = 0
    async for chunk in response.streaming_content:
        received += len(chunk)
    assert received == SIZE
    live = await sync_to_async(get_router().live_states)([backend.name])
    assert live[backend.name]["in_flight"] == 0  # the lease ended with the body
    assert live[backend.name]["error_rate"] == 0


async def test_a_large_upload_reaches_the_service(proxy, afleet):
    (backend,) = await afleet(1)

    response = await proxy.post(
        "/api/v1/proxy/upload", data=b"u" * SIZE, content_type="application/octet-stream"
    )

    assert response.status_code == 200
    assert response.json()["body_bytes"] == SIZE


async def test_a_body_cut_after_it_started_streaming_counts_against_the_service(proxy, afleet):
    # given: the cut comes after the retry buffer, when the client has the headers already
    (backend,) = await afleet(1)
    backend.mode, backend.reset_declared, backend.reset_after = "reset", 4_000_000, 1_000_000

    # when
    response = await proxy.get("/api/v1/proxy/big")
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises
        async for _ in response.streaming_content:
            pass

    # then
    live = await sync_to_async(get_router().live_states)([backend.name])
    assert live[backend.name]["error_rate"] > 0
    assert live[backend.name]["in_flight"] == 0

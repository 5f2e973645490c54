"""Two real uvicorn workers behind one port, started as the image's entrypoint starts them
(``MOE_WEB_WORKERS=2``: prometheus_client's multiprocess mode): whichever worker answers
``/metrics``, ``moe_routing_total`` counts the requests that both of them routed."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from routing.request_ids import worker_prefix
from tests.integration.stack import BIN, OPERATOR_PASSWORD, Proc, base_env, obtain_token
from tests.support.net import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROUTES = 40
SAMPLE = re.compile(r"^(moe_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


def _samples(text: str, name: str) -> list[float]:
    return [float(value) for metric, _, value in SAMPLE.findall(text) if metric == name]


@pytest.fixture
def two_workers(tmp_path):
    port = free_port()
    env = base_env(
        MOE_VAR_DIR=str(tmp_path / "var"),
        MOE_PYTHON=sys.executable,
        MOE_UVICORN=str(BIN / "uvicorn"),
        MOE_BIND="127.0.0.1",
        MOE_PORT=str(port),
        MOE_WEB_WORKERS="2",
        MOE_MIGRATE="1",
        MOE_SEED_DEMO="1",
        TMPDIR=str(tmp_path),
    )
    entrypoint = [str(ROOT / "docker" / "entrypoint.sh"), "web"]
    web = Proc("web-two-workers", entrypoint, env, tmp_path, ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert web.alive(), web.tail()
            try:
                if httpx.get(f"{base}/api/v1/ping", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, web.tail()
            time.sleep(0.3)
        yield base, obtain_token(base, password=OPERATOR_PASSWORD), web
    finally:
        web.stop()


def _route_on_a_new_connection(base: str, token: str) -> str:
    """A request on its own connection, so the kernel may hand it to either worker."""
    response = httpx.post(
        f"{base}/api/v1/route",
        json={"data": {"type": "inference", "priority": 0.5}},
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return worker_prefix(response.json()["request_id"])  # the answering worker


def test_every_scrape_counts_the_routes_of_both_workers(two_workers):
    base, token, web = two_workers

    # given: requests routed by both workers
    workers: list[str] = [_route_on_a_new_connection(base, token) for _ in range(ROUTES)]
    while len(set(workers)) < 2 and len(workers) < 10 * ROUTES:
        workers.append(_route_on_a_new_connection(base, token))
    assert len(set(workers)) == 2, "every request went to one worker"
    routed = len(workers)

    # when: /metrics is scraped several times, each on a new connection (either worker)
    for _ in range(6):
        text = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=30).text

        # then: the counter sums to every request routed, whichever worker answered
        assert sum(_samples(text, "moe_routing_total")) == routed
        assert sum(_samples(text, "moe_expert_usage_total")) == routed
        assert sum(_samples(text, "moe_routing_latency_ms_count")) == routed
        assert len(_samples(text, "moe_load_balance_score")) == 1  # one value, not one per pid
    assert "Multiprocess" not in web.tail()  # no collector errors logged

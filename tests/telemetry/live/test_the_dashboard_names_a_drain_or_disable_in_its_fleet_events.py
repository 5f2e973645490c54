"""Draining, disabling or enabling a service reads as such in the dashboard's fleet events.

A status change reaches the live feed as ``service_registered`` with ``created: false`` (as
``registry.services.set_status`` sends it); the page logged it as "updated llm-code
(inference, capacity 32)", which reads as a capacity change and hides that the service was
just drained. It now logs "draining llm-code (active → draining)" and shows the new status at
once.

Runs the real page (rendered by Django) in headless Chromium, with the API and the WebSocket
answered by the test, so no server is needed.
"""

import json
import os

import pytest

from tests.telemetry.live.conftest import CHROMIUM, missing

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

ORIGIN = "http://dashboard.test"
SERVICE = {
    "service_id": "llm-code",
    "service_type": "inference",
    "status": "active",
    "health": "healthy",
    "max_capacity": 32,
    "live": {"in_flight": 0, "breaker_state": "closed"},
}
METRICS = {"totals": {"routed": 0}, "per_service": {}, "per_strategy": {}, "latency_ms": {}}


def _event(status: str) -> str:
    return json.dumps(
        {
            "type": "service_registered",
            "service_id": "llm-code",
            "service_type": "inference",
            "status": status,
            "health": "healthy",
            "max_capacity": 32,
            "weight": 0.8,
            "created": False,
        }
    )


@pytest.fixture
def dashboard_html(client, operator) -> str:
    client.force_login(operator)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def page(dashboard_html):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        missing(f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        page = browser.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sockets = []

        def on_socket(ws):
            sockets.append(ws)
            ws.send(json.dumps({"type": "hello", "fleet": {"services": 1}}))

        page.route_web_socket("**/ws/routing", on_socket)
        fleet = {"llm-code": dict(SERVICE)}  # what the API answers: the status as last set
        page.route(
            "**/api/v1/services**",
            lambda route: route.fulfill(json={"count": 1, "results": list(fleet.values())}),
        )
        page.route("**/api/v1/metrics**", lambda route: route.fulfill(json=METRICS))
        page.route(
            f"{ORIGIN}/dashboard/",
            lambda route: route.fulfill(body=dashboard_html, content_type="text/html"),
        )
        page.goto(f"{ORIGIN}/dashboard/")
        page.wait_for_selector('#conn[data-state="live"]')
        page.wait_for_selector('#services tr[data-service-id="llm-code"]')

        def set_status(status: str) -> None:
            fleet["llm-code"]["status"] = status
            sockets[0].send(_event(status))

        yield page, set_status
        assert not errors, f"JavaScript errors on the page: {errors}"
        browser.close()


def test_a_drain_is_logged_as_a_drain_and_shown_at_once(page):
    page, set_status = page

    set_status("draining")

    page.wait_for_function("document.querySelector('#events').textContent.includes('draining')")
    events = page.inner_text("#events")
    assert "llm-code (active → draining)" in events
    assert "updated" not in events
    row = page.inner_text('#services tr[data-service-id="llm-code"]')
    assert "draining" in row


def test_disable_and_enable_are_named_too(page):
    page, set_status = page

    set_status("disabled")
    page.wait_for_function("document.querySelector('#events').textContent.includes('disabled')")
    set_status("active")
    page.wait_for_function("document.querySelector('#events').textContent.includes('enabled')")

    events = page.inner_text("#events")
    assert "llm-code (active → disabled)" in events
    assert "llm-code (disabled → active)" in events


def test_an_update_that_keeps_the_status_still_reads_as_an_update(page):
    page, set_status = page

    set_status("active")

    page.wait_for_function("document.querySelector('#events').textContent.includes('updated')")
    assert "llm-code (inference, active, capacity 32)" in page.inner_text("#events")

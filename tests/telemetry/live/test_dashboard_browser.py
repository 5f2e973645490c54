"""End to end in headless Chromium: log in, route through the API, watch the dashboard.

The real ASGI server (uvicorn) runs as a subprocess on a free port, on a SQLite file of its
own under a temporary ``MOE_VAR_DIR`` (migrated and seeded by ``manage.py``), so the test and
the server share nothing but HTTP. With ``REDIS_URL`` set the server uses the same Redis, on a
database number of its own (other tests clear ``moe:*`` keys in theirs, which would include
the feed's group): its live feed then goes through channels-redis. The screenshot lands in
``test-artifacts/dashboard.png``.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from tests.support.net import free_port
from tests.telemetry.live.conftest import CHROMIUM, missing

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPERATOR = ("e2e-operator", "e2e-operator-pass-1234")
CLIENT = ("e2e-client", "e2e-client-pass-1234")
SERVER_START_SECONDS = 90
E2E_REDIS_DB = 13

SEED = """
from django.contrib.auth import get_user_model
from registry.services import register_service

User = get_user_model()
User.objects.create_user({op[0]!r}, password={op[1]!r}, is_staff=True)
User.objects.create_user({client[0]!r}, password={client[1]!r})
for i, (kind, capacity) in enumerate([("inference", 40), ("analysis", 24), ("storage", 60)]):
    register_service({{
        "service_id": f"{prefix}-{{kind}}",
        "service_type": kind,
        "endpoint": f"http://127.0.0.1:{{9101 + i}}",
        "capabilities": [kind],
        "max_capacity": capacity,
    }})
"""

pytestmark = pytest.mark.browser


class AsgiServer:
    """uvicorn serving moe_project.asgi on its own database; can be stopped and restarted."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MOE_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "moe_project.settings",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DATABASE_URL", None)  # a SQLite file both processes can see
        if self.env.get("REDIS_URL"):
            url = urlsplit(self.env["REDIS_URL"])._replace(path=f"/{E2E_REDIS_DB}")
            self.env["REDIS_URL"] = urlunsplit(url)
            redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=300
        )

    def start(self) -> None:
        log = open(self.var_dir / "server.log", "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "moe_project.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--lifespan", "off", "--no-access-log"),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not come up:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self) -> str:
        path = self.var_dir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def token(self, who: tuple[str, str]) -> str:
        response = httpx.post(
            f"{self.base}/api/v1/auth/token/",
            json={"username": who[0], "password": who[1]},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access"]


@pytest.fixture(scope="module")
def fleet_prefix() -> str:
    return f"e2e{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, fleet_prefix):
    server = AsgiServer(tmp_path_factory.mktemp("asgi-server"))
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("shell", "-c", SEED.format(op=OPERATOR, client=CLIENT, prefix=fleet_prefix))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = CHROMIUM
    if not os.path.exists(chromium):
        missing(f"Chromium not installed at {chromium} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, server):
    """The dashboard, logged in through the admin login as an operator."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.base}/dashboard/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", OPERATOR[0])
    page.fill("#id_password", OPERATOR[1])
    page.click("input[type=submit]")
    page.wait_for_url("**/dashboard/")
    page.wait_for_selector('#conn[data-state="live"]')
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"
    page.close()


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(
        base_url=server.base,
        headers={"Authorization": f"Bearer {server.token(CLIENT)}"},
        timeout=30,
    ) as client:
        yield client


def test_routed_requests_appear_on_the_dashboard(page, api, server, fleet_prefix):
    # when: a client routes through the API
    request_ids = []
    for strategy in ("power_of_two", "consistent_hash", "semantic"):
        response = api.post(
            "/api/v1/route",
            json={"data": {"type": "inference", "key": "user-42"}, "routing_strategy": strategy},
        )
        assert response.status_code == 200, response.text
        request_ids.append(response.json()["request_id"])

    # then: each decision shows up in the live stream
    for request_id in request_ids:
        row = page.wait_for_selector(f'#stream [data-request-id="{request_id}"]')
        assert f"{fleet_prefix}-" in row.inner_text()

    # when: a batch, and the outcomes of a few requests
    batch = api.post(
        "/api/v1/route/batch",
        json={"requests": [{"key": f"k{i}"} for i in range(40)], "routing_strategy": "top_k"},
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    for result in results[:10]:
        for service_id in result["selected_services"]:
            api.post(
                f"/api/v1/route/{result['request_id']}/outcome",
                json={"service_id": service_id, "success": True, "latency_ms": 12.5},
            )

    # then: the newest batch item is streamed, and the polled panels catch up
    page.wait_for_selector(f'#stream [data-request-id="{results[-1]["request_id"]}"]')
    page.wait_for_function(
        "Number(document.querySelector('#k-routed').textContent.replace(/,/g, '')) >= 43"
    )
    page.wait_for_selector(f'#services tr[data-service-id="{fleet_prefix}-analysis"]')
    assert "top_k" in page.inner_text("#mix")
    assert page.inner_text("#p50") != "–"
    page.wait_for_function("!document.querySelector('#k-lb').textContent.includes('–')")


def test_fleet_events_appear_as_they_happen(page, server, fleet_prefix):
    operator = {"Authorization": f"Bearer {server.token(OPERATOR)}"}
    service_id = f"{fleet_prefix}-late"

    response = httpx.post(
        f"{server.base}/api/v1/services/register",
        headers=operator,
        json={
            "service_id": service_id,
            "service_type": "custom",
            "endpoint": "http://127.0.0.1:9199",
            "capabilities": ["processing"],
            "max_capacity": 10,
        },
        timeout=30,
    )

    assert response.status_code == 201, response.text
    page.wait_for_function(
        f"document.querySelector('#events').textContent.includes('{service_id}')"
    )
    page.wait_for_selector(f'#services tr[data-service-id="{service_id}"]')
    time.sleep(2.5)  # one more poll, so the charts have a few points
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_the_specs_websocket_example_works_as_written_with_mode_each(browser, server, api):
    # given: a logged-in browser tab on the server's origin, running the spec's example
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(f"{server.base}/admin/login/?next=/admin/")
    tab.fill("#id_username", OPERATOR[0])
    tab.fill("#id_password", OPERATOR[1])
    tab.click("input[type=submit]")
    tab.wait_for_url("**/admin/")
    logged = []
    tab.on("console", lambda message: logged.append(message))
    tab.evaluate(
        """() => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/ws/routing?mode=each`);
            ws.onmessage = e => console.log(JSON.parse(e.data).selected_services)
            ws.onopen = () => resolve();
            ws.onerror = () => reject(new Error("the socket failed"));
            window.specSocket = ws;
        })"""
    )

    # when: a client routes
    expected = []
    for key in ("user-1", "user-2", "user-3"):
        response = api.post("/api/v1/route", json={"data": {"key": key}})
        assert response.status_code == 200, response.text
        expected.append(response.json()["selected_services"])

    # then: the console shows each decision's selected services, nothing undefined
    deadline = time.monotonic() + 15
    while len(logged) < len(expected) and time.monotonic() < deadline:
        tab.wait_for_timeout(100)
    printed = [message.args[0].json_value() for message in logged]
    assert printed == expected
    context.close()


def test_the_page_reconnects_by_itself_and_says_so(page, server, api):
    server.stop()

    page.wait_for_selector('#conn[data-state="reconnecting"]')
    assert "Reconnecting" in page.inner_text("#conn")
    assert "reconnecting" in page.inner_text("#banner")
    page.screenshot(path=str(ARTIFACTS / "dashboard-reconnecting.png"))

    server.start()

    page.wait_for_selector('#conn[data-state="live"]', timeout=30_000)
    assert not page.inner_text("#banner")
    response = api.post("/api/v1/route", json={"data": {"type": "analysis"}})
    assert response.status_code == 200, response.text
    page.wait_for_selector(f'#stream [data-request-id="{response.json()["request_id"]}"]')

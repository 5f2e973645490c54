"""The README's API examples work as written, against the service ``make run`` starts.

The ``sh`` block under "## Using the API" ("With `make run` serving on port 8005:") is read from
README.md when the test runs, so an edit to the README is what gets tested. ``.ci/serve`` (what
``make run`` runs) starts exactly as it does for a reader: migrate, collectstatic, seed the demo
fleet and its operator, the demo backends, a Celery worker with embedded beat and uvicorn, on
the embedded default (no DATABASE_URL, no REDIS_URL). Only where it serves and keeps its state
differ: a free port (MOE_PORT) and a temporary MOE_VAR_DIR (SQLite, broker, static files), so
the checkout's ``var/`` is never touched. DEV=1 makes its ``.ci/setup-env`` check the stamp of
the test requirements, which the venv running this test has (``make test`` installs them first):
a no-op, where requirements.txt alone would be installed again (pip, network, minutes).

The block then runs with bash as written, with three changes: the port, ``set -euo pipefail``
in front, and every ``curl -s`` made to fail on an HTTP error (``curl -sS --fail-with-body``).
A transparent ``curl`` function records each call's arguments, answer and exit status, and an
ERR trap the line that failed, so a failure names the README example and what the server
answered; the checks after that look at the answers the README describes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from celery import states

from tests.integration.stack import Proc, forget
from tests.support.net import HOST, free_port
from tests.support.requirements import missing
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.config_independent]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Using the API"
LEAD_IN = "With `make run` serving on port 8005:"
README_PORT = 8005
TOOLS = ("bash", "curl", "python3")  # what the examples (and .ci/serve) call
# Variables of the pytest process that must not reach the server (as tests/integration/stack.py
# strips them): the embedded default is what ``make run`` gives a reader.
LEAKY_PREFIXES = ("DATABASE_URL", "REDIS_URL", "CELERY_", "MOE_", "DJANGO_")
START_TIMEOUT = 180.0
SCRIPT_TIMEOUT = 120.0
# The access token, shown as "$TOKEN" in failure messages (it is long and in every call).
JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")


# --- the README block -------------------------------------------------------------------------


def readme_block(text: str) -> tuple[int, list[str]]:
    """The first ``sh`` block after the lead-in of "## Using the API": its first line's number
    in README.md (1-based) and its lines."""
    lines = text.splitlines()
    try:
        section = lines.index(SECTION)
        lead_in = lines.index(LEAD_IN, section)
        opening = lines.index("```sh", lead_in)
        closing = lines.index("```", opening + 1)
    except ValueError:
        pytest.fail(
            f"README.md has no ```sh block after {LEAD_IN!r} in {SECTION!r}: this test reads "
            "the examples from there",
            pytrace=False,
        )
    return opening + 2, lines[opening + 1 : closing]


def curl_commands(lines: list[str]) -> int:
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return len(re.findall(r"(?<![\w-])curl(?=\s)", code))


def prelude(calls: Path) -> list[str]:
    """Bash run before the block: strict mode, an ERR trap noting the failing line, and a
    ``curl`` that runs the real one with the same arguments and keeps what it answered."""
    where = shlex.quote(str(calls))
    return [
        "set -euo pipefail",
        f"__calls={where}",
        'echo 0 > "$__calls/count"',
        'trap \'echo "$LINENO" > "$__calls/failed_line"\' ERR',
        "curl() {",
        "  { set +x; } 2>/dev/null",
        "  local n rc=0",
        '  n=$(( $(cat "$__calls/count") + 1 ))',
        '  echo "$n" > "$__calls/count"',
        '  echo "${BASH_LINENO[0]}" > "$__calls/$n.line"',
        '  printf "%s\\0" "$@" > "$__calls/$n.args"',
        '  command curl "$@" > "$__calls/$n.out" || rc=$?',
        '  echo "$rc" > "$__calls/$n.rc"',
        '  cat "$__calls/$n.out"',
        '  if [ "$rc" != 0 ]; then',
        '    echo "^ curl exited $rc; the server answered: $(cat "$__calls/$n.out")" >&2',
        "  fi",
        "  set -x",
        '  return "$rc"',
        "}",
        "set -x",
    ]


def runnable(block: list[str], port: int, calls: Path) -> tuple[str, int]:
    """The block as the test runs it, and how many lines come before the block's first."""
    text = "\n".join(block)
    text, ports = re.subn(rf"(?<=127\.0\.0\.1:){README_PORT}\b", str(port), text)
    assert ports, f"the README examples no longer call 127.0.0.1:{README_PORT}"
    # Every curl call, made to fail on an HTTP error status (-S: say why on stderr).
    text, rewritten = re.subn(r"(?<![\w-])curl -s ", "curl -sS --fail-with-body ", text)
    assert rewritten == curl_commands(block), (
        "every curl in the README examples should start `curl -s ` (so this test makes each of "
        f"them fail on an HTTP error): {rewritten} of {curl_commands(block)} do"
    )
    head = prelude(calls)
    return "\n".join([*head, text, ""]), len(head)


def paragraph(block: list[str], index: int) -> str:
    """The example (lines between blank lines) holding the block's line ``index``, that line
    marked."""
    start, end = index, index
    while start > 0 and block[start - 1].strip():
        start -= 1
    while end + 1 < len(block) and block[end + 1].strip():
        end += 1
    return "\n".join(f"{'  > ' if i == index else '    '}{block[i]}" for i in range(start, end + 1))


# --- what the script did ----------------------------------------------------------------------


@dataclass(repr=False)
class Call:
    """One curl call of the script: its arguments, its answer and curl's exit status."""

    line: int  # in the script
    args: list[str]
    out: str
    rc: int | None  # None: curl did not finish

    @property
    def url(self) -> str:
        return next(arg for arg in self.args if arg.startswith("http://"))

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def method(self) -> str:
        return self.args[self.args.index("-X") + 1] if "-X" in self.args else "GET"

    def body(self) -> dict:
        """The JSON body it sent (``-d``)."""
        return json.loads(self.args[self.args.index("-d") + 1])

    def json(self) -> dict:
        try:
            return json.loads(self.out)
        except ValueError:
            raise AssertionError(f"{self}: not JSON") from None

    def __repr__(self) -> str:
        return (
            f"curl {JWT.sub('$TOKEN', shlex.join(self.args))}\n"
            f"  exited {self.rc}; answered: {self.out[:1500]!r}"
        )


def recorded_calls(calls: Path) -> list[Call]:
    count = int((calls / "count").read_text() or 0) if (calls / "count").exists() else 0
    found = []
    for n in range(1, count + 1):
        rc = calls / f"{n}.rc"
        found.append(
            Call(
                line=int((calls / f"{n}.line").read_text()),
                args=(calls / f"{n}.args").read_bytes().decode().split("\0")[:-1],
                out=(calls / f"{n}.out").read_bytes().decode(errors="replace")
                if (calls / f"{n}.out").exists()
                else "",
                rc=int(rc.read_text()) if rc.exists() else None,
            )
        )
    return found


def one_call(calls: list[Call], method: str, pattern: str, nth: int = 0) -> Call:
    matching = [c for c in calls if c.method == method and re.fullmatch(pattern, c.path)]
    assert len(matching) > nth, (
        f"the README examples no longer make a {method} to {pattern!r} (call #{nth + 1}); "
        f"they made: {[f'{c.method} {c.path}' for c in calls]}"
    )
    return matching[nth]


def failure_report(
    rc: int, block: list[str], first_line: int, offset: int, calls: Path, transcript: Path
) -> str:
    failed = calls / "failed_line"
    made = recorded_calls(calls)
    script_line = int(failed.read_text()) if failed.exists() else made[-1].line if made else None
    parts = [f"a README example failed (bash exited {rc})"]
    if script_line is not None and offset < script_line <= offset + len(block):
        index = script_line - offset - 1
        parts[0] += f" at README.md:{first_line + index}:"
        parts.append(paragraph(block, index))
    if made:
        parts.append(f"its last curl call:\n  {made[-1]}")
    lines = transcript.read_text(errors="replace").splitlines()
    tail = "\n".join(JWT.sub("$TOKEN", line)[:400] for line in lines[-60:])
    parts.append(f"script transcript (last 60 lines; all of it in {transcript}):\n{tail}")
    return "\n\n".join(parts)


# --- the service, as `make run` starts it -----------------------------------------------------


def demo_backend_ports() -> list[int]:
    from registry.management.commands.seed_demo_fleet import DEMO_FLEET

    return [urlsplit(service["endpoint"]).port for service in DEMO_FLEET]


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


@pytest.fixture
def make_run(tmp_path):
    """``bash .ci/serve`` on a free port with its own state; the whole process group is
    stopped at the end. Yields the base URL once the web server, the Celery worker and the
    demo backends are up."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            missing(f"{tool} is not on PATH (the README examples and .ci/serve use it)")
    taken = [port for port in demo_backend_ports() if listening(port)]
    if taken:
        missing(
            f"something already listens on {taken}, where .ci/serve starts the demo fleet's "
            "stand-in services (a `make run` of your own?): the examples would reach it"
        )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update(
        MOE_PORT=str(port),
        MOE_VAR_DIR=str(tmp_path / "var"),
        DEV="1",
        PYTHONUNBUFFERED="1",
    )
    server = Proc("make-run", ["bash", ".ci/serve"], env, tmp_path, cwd=ROOT)
    url = f"http://{HOST}:{port}"

    def up() -> bool:
        if not server.alive():
            raise AssertionError(
                f".ci/serve exited ({server.popen.returncode}) while starting:\n{server.tail()}"
            )
        log = server.log_text()
        if " ready." not in log or "demo backends serving" not in log:
            return False  # the Celery worker, the demo backends
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=5.0).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        if not wait_for(up, timeout=START_TIMEOUT, interval=0.25):
            raise AssertionError(f".ci/serve not up in {START_TIMEOUT:.0f} s:\n{server.tail()}")
        yield url
    finally:
        server.stop(grace=3.0)
        forget([server])


# --- the test ---------------------------------------------------------------------------------


def test_the_readme_examples_work_as_written(make_run, tmp_path):
    url = make_run
    first_line, block = readme_block(README.read_text())
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    script, offset = runnable(block, int(urlsplit(url).port), calls_dir)
    script_path = tmp_path / "readme-examples.sh"
    script_path.write_text(script)
    transcript = tmp_path / "readme-examples.log"
    with open(transcript, "wb") as out:
        done = subprocess.run(
            ["bash", str(script_path)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, failure_report(
        done.returncode, block, first_line, offset, calls_dir, transcript
    )
    calls = recorded_calls(calls_dir)
    assert all(call.rc == 0 for call in calls), [str(c) for c in calls if c.rc != 0]

    # the token the examples use, for the checks below
    token = one_call(calls, "POST", "/api/v1/auth/token/").json()["access"]

    # register: the service as registered
    register_call = one_call(calls, "POST", "/api/v1/services/register")
    service_id = register_call.body()["service_id"]
    assert register_call.json()["service_id"] == service_id, register_call

    # route: a decision whose first service is of the requested type and has the requested
    # capabilities (as the services listing above shows them)
    routed_call = one_call(calls, "POST", "/api/v1/route")
    routed = routed_call.json()
    assert routed.get("request_id") and routed.get("selected_services"), routed_call
    asked = routed_call.body()["data"]
    chosen = routed["selected_services"][0]
    listed = {
        s["service_id"]: s for s in one_call(calls, "GET", "/api/v1/services").json()["results"]
    }
    assert chosen in listed, f"{chosen} is not in the services listing: {sorted(listed)}"
    assert listed[chosen]["service_type"] == asked["type"], (asked, listed[chosen])
    assert set(asked["capabilities"]) <= set(listed[chosen]["capabilities"]), (
        asked,
        listed[chosen],
    )

    # outcome: reported for that decision and service, with its reward
    outcome_call = one_call(calls, "POST", r"/api/v1/route/[^/]+/outcome")
    assert outcome_call.path == f"/api/v1/route/{routed['request_id']}/outcome", outcome_call
    outcome = outcome_call.json()
    assert outcome["service_id"] == chosen, outcome_call
    assert isinstance(outcome.get("reward"), int | float), outcome_call

    # retrain and rebalance: a known Celery state for the task queued just before
    for kind in ("gate/retrain", "load/rebalance"):
        queued = one_call(calls, "POST", f"/api/v1/{kind}").json()
        status_call = one_call(calls, "GET", rf"/api/v1/{kind}/[^/]+")
        status = status_call.json()
        assert status["task_id"] == queued["task_id"], status_call
        assert status["state"] in states.ALL_STATES, status_call
        print(f"\n{kind} after the README's sleep: {status['state']}")
    assert "results" in one_call(calls, "GET", "/api/v1/gate/versions").json()

    # proxy: relayed, with the headers the README names
    proxied = one_call(calls, "POST", "/api/v1/proxy/v1/generate")
    head = proxied.out.split("\r\n\r\n", 1)[0].lower()
    assert re.match(r"http/[\d.]+ 2\d\d", head), proxied
    assert "\r\nx-moe-service: " in head and "\r\nx-moe-request-id: " in head, proxied

    # forward: the router called the service itself
    forward_call = one_call(calls, "POST", "/api/v1/route", nth=1)
    assert forward_call.body().get("forward") is True, forward_call
    forwarded = forward_call.json().get("forwarded") or {}
    assert 200 <= forwarded.get("status_code", 0) < 300, forward_call

    # batch: one decision per request
    batch_call = one_call(calls, "POST", "/api/v1/route/batch")
    results = batch_call.json()["results"]
    assert len(results) == len(batch_call.body()["requests"]), batch_call
    assert all(r.get("request_id") and r.get("selected_services") for r in results), batch_call

    # override: created, listed among the active ones, deleted
    created = one_call(calls, "POST", "/api/v1/strategy/override").json()
    active = one_call(calls, "GET", "/api/v1/strategy/override").json()["results"]
    assert created["id"] in [o["id"] for o in active], (created, active)
    deleted = one_call(calls, "DELETE", r"/api/v1/strategy/override/\d+")
    assert deleted.path.endswith(f"/{created['id']}"), deleted

    # the service removed at the end
    one_call(calls, "DELETE", f"/api/v1/services/{re.escape(service_id)}")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        gone = api.get(f"/api/v1/services/{service_id}")
        assert gone.status_code == 404, gone.text[:500]
        now = api.get("/api/v1/strategy/override")
        assert now.status_code == 200, now.text[:500]
        assert created["id"] not in [o["id"] for o in now.json()["results"]], now.text[:500]

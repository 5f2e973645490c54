"""The Dockerfile, read as text (no Docker engine here), and its health check command run
against a local HTTP server."""

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.net import POLL_S, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_it_builds_on_python_311_slim(instructions):
    assert instructions[0] == ("FROM", "python:3.11-slim")


def test_torch_comes_from_the_cpu_index_before_the_requirements(instructions):
    runs = [args for word, args in instructions if word == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "torch==" in r)
    requirements = next(i for i, r in enumerate(runs) if "-r requirements.txt" in r)

    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch]
    pinned = (ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0" in runs[torch] and "torch==2.13.0" in pinned
    assert torch < requirements


def test_it_runs_as_a_user_that_is_not_root(instructions):
    users = [args for word, args in instructions if word == "USER"]

    assert users and users[-1] not in ("root", "0")
    assert any(f"useradd --system --gid {users[-1]}" in a for w, a in instructions if w == "RUN")


def test_its_entrypoint_is_the_executable_role_script(instructions):
    (entrypoint,) = [args for word, args in instructions if word == "ENTRYPOINT"]
    (cmd,) = [args for word, args in instructions if word == "CMD"]

    assert entrypoint == '["/app/docker/entrypoint.sh"]' and cmd == '["web"]'
    script = ROOT / "docker" / "entrypoint.sh"
    assert os.access(script, os.X_OK)


def test_the_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()

    for path in (".venv", "var", ".git", "control"):
        assert path in ignored


class _Ping(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/api/v1/ping" else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _healthcheck(instructions, port: int) -> int:
    (check,) = [args for word, args in instructions if word == "HEALTHCHECK"]
    command = check.split(" CMD ", 1)[1]
    env = {**os.environ, "MOE_PORT": str(port)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # "python"
    return subprocess.run(["sh", "-c", command], env=env, timeout=30, check=False).returncode


def test_the_health_check_passes_while_the_web_process_answers_and_fails_when_it_does_not(
    instructions,
):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
    ).start()
    try:
        assert _healthcheck(instructions, server.server_address[1]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _healthcheck(instructions, free_port()) != 0

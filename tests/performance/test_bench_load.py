"""Both load generators count statuses and ``no_eligible_service`` items the same way, against
a tiny keep-alive HTTP server on 127.0.0.1 (counts only, never timing)."""

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.performance.bench_load import Workload, run_python_loadgen, run_wrk, wrk_script
from tests.support.net import POLL_S
from tests.support.requirements import missing
from tests.support.stats import percentile

NO_ELIGIBLE = b'{"results":[{"error":{"code":"no_eligible_service"}},{"ok":1}]}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200, b'{"ok": true}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/fail":
            self._reply(503, b'{"error":{"code":"no_eligible_service"}}')
        else:
            self._reply(200, NO_ELIGIBLE if b"batch" in body else b'{"ok": true}')


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
    )
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _batch() -> Workload:
    return Workload(
        "batch",
        "POST",
        "/batch",
        {"Content-Type": "application/json"},
        [b'{"batch": [1]}', b'{"batch": [2]}'],
        count_no_eligible=True,
    )


RUNNERS = {"python": run_python_loadgen, "wrk": run_wrk}


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_every_answer_is_counted_with_its_no_eligible_items(name, server, tmp_path):
    if name == "wrk" and shutil.which("wrk") is None:
        missing("wrk is not installed (apt-get install wrk)")

    result = RUNNERS[name](_batch(), server, 1, 2, tmp_path)

    assert result.requests > 0
    assert result.ok == result.requests and result.other == 0
    assert result.no_eligible == result.ok  # one item per answer
    assert 0 < result.latency_us["p50"] <= result.latency_us["p99"]


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_non_2xx_answers_are_counted_apart(name, server, tmp_path):
    if name == "wrk" and shutil.which("wrk") is None:
        missing("wrk is not installed (apt-get install wrk)")
    workload = Workload("fail", "POST", "/fail", {}, [b"{}"])

    result = RUNNERS[name](workload, server, 1, 1, tmp_path)

    assert result.requests > 0 and result.ok == 0 and result.other == result.requests


def test_the_wrk_script_survives_bodies_that_look_like_lua_brackets():
    body = b'{"a": [[1]], "b": "]]", "c": "]=]"}'

    script = wrk_script(Workload("x", "POST", "/p", {"A": "b"}, [body]))

    assert "[==[" + body.decode() + "]==]" in script  # a level the body cannot close


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))

    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 50) == 0.0

"""schemathesis, every check, against the live server: the API does what its schema says.

uvicorn serves the embedded default (SQLite, local state, filesystem broker) on 127.0.0.1 with
the demo fleet; schemathesis reads ``/api/v1/schema/`` and runs its phases (examples,
coverage, fuzzing, stateful) with ``--checks all`` and an operator's JWT, a bounded number of
examples per operation and a fixed seed (``MOE_SCHEMATHESIS_SEED`` picks another,
``MOE_SCHEMATHESIS_EXAMPLES`` another bound). Any failure (an undocumented status code, a
schema-valid request refused, a schema-violating one accepted, a response that does not match
its schema, a 5xx) fails the test with schemathesis's report.

The few exceptions are state-dependent rules no schema can state, listed in ``CONFIG`` with
the reason for each.
"""

import os
import subprocess

import pytest

from tests.integration.conftest import EMBEDDED_REASON, scaleout_pass
from tests.integration.stack import BIN, WebServer, base_env, forget, manage, obtain_token

pytestmark = pytest.mark.integration

SEED = os.environ.get("MOE_SCHEMATHESIS_SEED", "20261202")
EXAMPLES = os.environ.get("MOE_SCHEMATHESIS_EXAMPLES", "40")
RUN_SECONDS = 300
SETUP = """
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo_fleet")
"""
# No cache of earlier failures (schemathesis replays them first, which makes a run depend on
# the last one) and no example database: each run stands alone.
CONFIG = """
[cache]
enabled = false

[generation]
database = "none"

# Documented 5xx answers are the contract, not server errors: no service can take the request
# (503) or every forwarded attempt failed (502; the demo fleet's endpoints are not running).
[[operations]]
include-path-regex = "^/api/v1/route(/batch)?$"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502", "503"]

# Rules that depend on state, which no schema can state; each answers a documented 400:
# a top_k above the number of registered services (the run removes services), and an outcome
# for a service the decision did not select.
[[operations]]
include-path-regex = "^/api/v1/route(/batch|/[^/]+/outcome)?$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx",
]
"""


@pytest.fixture
def api_server(tmp_path):
    if scaleout_pass():
        pytest.skip(EMBEDDED_REASON)
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = base_env(MOE_VAR_DIR=str(var_dir))
    for name in ("MOE_LEASE_DEFAULT_SECONDS", "MOE_LEASE_MIN_SECONDS", "MOE_LEASE_MAX_SECONDS"):
        env.pop(name)  # the server's own lease times: unreported requests soon stop counting
    manage(env, SETUP, tmp_path, "setup-openapi-contract")
    server = WebServer("web-openapi", env, tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        forget([server])


def test_schemathesis_finds_no_failure_with_every_check(api_server, tmp_path):
    token = obtain_token(api_server.url)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)

    done = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(config),
            "run",
            f"{api_server.url}/api/v1/schema/",
            *("--url", api_server.url),
            *("--header", f"Authorization: Bearer {token}"),
            *("--checks", "all"),
            *("--max-examples", EXAMPLES),
            *("--seed", SEED),
            *("--workers", "2"),
            "--no-color",
            *("--output-truncate", "false"),
        ],
        cwd=tmp_path,  # schemathesis writes its own files under the working directory
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )

    report = done.stdout[-20000:] + done.stderr[-4000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout or " passed" in done.stdout, report

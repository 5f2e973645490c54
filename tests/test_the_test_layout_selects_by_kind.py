"""`pytest tests/unit/`, `tests/integration/` and `tests/performance/` split the suite by kind."""

import subprocess
import sys

from tests.conftest import TESTS_DIR

ROOT = TESTS_DIR.parent


def collected(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_unit_integration_and_performance_partition_the_suite():
    unit = collected("tests/unit/")
    integration = collected("tests/integration/")
    performance = collected("tests/performance/")
    everything = collected("tests")

    assert unit and integration and performance
    assert unit | integration | performance == everything
    assert not unit & integration and not unit & performance and not integration & performance
    # by marker, wherever the file lives
    assert any(
        t.startswith("tests/telemetry/state/test_lua_breaker_matches_python.py")
        for t in integration
    )
    assert any(t.startswith("tests/telemetry/live/test_dashboard_browser.py") for t in integration)
    assert any(t.startswith("tests/routing/") for t in unit)
    assert not any(t.startswith(("tests/integration/", "tests/performance/")) for t in unit)

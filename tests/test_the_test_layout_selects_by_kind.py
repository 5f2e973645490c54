"""`pytest tests/unit/`, `tests/integration/` and `tests/performance/` split the suite by kind."""

import subprocess
import sys

import pytest

from tests.conftest import TESTS_DIR

ROOT = TESTS_DIR.parent

# Collection is the same whatever the pass's DATABASE_URL and REDIS_URL.
pytestmark = pytest.mark.config_independent


def collected(*views: str) -> list[set[str]]:
    """The test ids ``pytest --collect-only <view>`` lists, for each view (collected at once:
    each collection imports torch and Django, ~8 s of one core)."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                view,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for view in views
    ]
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
        found.append({line for line in out.splitlines() if "::" in line})
    return found


def test_unit_integration_and_performance_partition_the_suite():
    unit, integration, performance, everything = collected(
        "tests/unit/", "tests/integration/", "tests/performance/", "tests"
    )

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

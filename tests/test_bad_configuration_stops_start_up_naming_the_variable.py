"""A bad value in the environment stops start-up with an error naming the variable, as the
README says, instead of a server that starts, answers its health probe and then fails (or
quietly does something else) on every request."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print('OK', settings.MOE_BREAKER_PANIC, settings.LOGGING['root']['level'], "
    "settings.REST_FRAMEWORK['NUM_PROXIES'])"
)


def _start(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("MOE_", "DJANGO_", "REDIS_URL"))
    }
    base.pop("DATABASE_URL", None)
    base.update(DJANGO_SETTINGS_MODULE="moe_project.settings", MOE_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOE_RATE_LIMIT", "abc"),
        ("MOE_RATE_LIMIT", "100/fortnight"),
        ("MOE_DEFAULT_STRATEGY", "bogus"),
        ("MOE_EXPLORATION_RATE", "2"),
        ("MOE_EXPLORATION_MIN", "0.5"),  # above the rate (0.05)
        ("MOE_EXPLORATION_UNIFORM", "3"),
        ("MOE_FORCED_SAMPLING_SHARE", "5"),
        ("MOE_LEARNING_DISCOUNT", "5"),
        ("MOE_STATE_BACKEND", "redis"),  # without REDIS_URL
        ("MOE_LOG_LEVEL", "loud"),
        ("MOE_DEVICE", "gpu"),
        ("MOE_DEFAULT_TOP_K", "9"),  # above the API's top_k limit: every route would 500
        ("MOE_DEFAULT_TOP_K", "0"),
        ("MOE_NUM_PROXIES", "-1"),
        ("MOE_WORKER_LOST_SECONDS", "soon"),
        ("MOE_WORKER_LOST_SECONDS", "0"),
        ("DJANGO_SECRET_KEY", ""),
    ],
)
def test_a_bad_value_stops_start_up_naming_it(tmp_path, name, value):
    result = _start(tmp_path, **{name: value})

    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-800:]


def test_an_empty_secret_key_file_is_refused_too(tmp_path):
    empty = tmp_path / "key"
    empty.write_text("\n")
    result = _start(tmp_path, DJANGO_SECRET_KEY_FILE=str(empty))
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_spellings_that_mean_the_same_are_accepted(tmp_path):
    # Lower-case log level; an empty boolean is unset (its default, true), not false.
    result = _start(tmp_path, MOE_LOG_LEVEL="debug", MOE_BREAKER_PANIC="", MOE_RATE_LIMIT="50/h")
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.split() == ["OK", "True", "DEBUG", "0"]


def test_the_strategy_names_settings_know_are_the_engines():
    from django.conf import settings

    from routing.core.strategies import STRATEGY_NAMES

    assert set(settings.ROUTING_STRATEGY_NAMES) == set(STRATEGY_NAMES)


def test_the_top_k_limit_settings_know_is_the_engines():
    from django.conf import settings

    from routing.core.config import EngineConfig

    assert EngineConfig().max_top_k == settings.ROUTING_MAX_TOP_K

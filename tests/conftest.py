"""Shared fixtures: personas for authorisation tests and API clients that carry their JWT.

Personas (as in healthchecks' base test case): ``operator`` (member of the operators group),
``staff`` (is_staff, which also makes an operator), ``client_user`` (authenticated API client,
no operator rights) and anonymous.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.3 s per persona; tests do not need a slow hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _clear_redis() -> None:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter("moe:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_router(settings, tmp_path):
    """Each test gets a new router, an empty history spool and no shared state left over."""
    from routing.runtime import reset_router

    settings.MOE_HISTORY_DIR = str(tmp_path / "history")
    # API tests count in flight across several requests on a loaded machine: leases that
    # outlive them (lease expiry itself is tested on the stores with a fake clock).
    settings.MOE_LEASE_DEFAULT_SECONDS = settings.MOE_LEASE_MIN_SECONDS = 30.0
    settings.MOE_LEASE_MAX_SECONDS = 30.0
    # Slow start changes shares right after a service joins or recovers; tests of it turn it on.
    settings.MOE_SLOW_START_SECONDS = 0.0
    _clear_redis()
    reset_router()
    yield
    reset_router()
    _clear_redis()


def _api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def operator(django_user_model):
    from registry.permissions import ensure_operator_group

    user = django_user_model.objects.create_user("op", password="op-pass-1234")
    # A transaction=True test flushes the group the data migration made; recreate it.
    user.groups.add(ensure_operator_group())
    return user


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-pass-1234", is_staff=True)


@pytest.fixture
def client_user(django_user_model):
    return django_user_model.objects.create_user("client", password="client-pass-1234")


@pytest.fixture
def operator_api(operator) -> APIClient:
    return _api_client_for(operator)


@pytest.fixture
def staff_api(staff) -> APIClient:
    return _api_client_for(staff)


@pytest.fixture
def client_api(client_user) -> APIClient:
    return _api_client_for(client_user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def eager_celery(settings, monkeypatch):
    """Jobs run in-process when queued, and their results are kept for the status endpoints
    (tests/integration runs them in a real worker)."""
    from moe_project.celery import app
    from routing.api import gate_views
    from telemetry import api_views

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    app.conf.task_store_eager_result = True
    # A task bound before this fixture ran (another module's test) keeps what it was bound with.
    for task in (gate_views.retrain_gate, api_views.rebalance):
        monkeypatch.setattr(task, "store_eager_result", True)
    yield app
    app.conf.task_always_eager = False
    app.conf.task_store_eager_result = False


@pytest.fixture
def api_for():
    """Build an API client for any user (or None for anonymous)."""
    return _api_client_for


# --- test layout: `pytest tests/unit/`, `pytest tests/integration/`, `pytest tests/performance/`
#
# The files mirror the packages (tests/routing/core, tests/telemetry/state, ...), not kinds;
# these paths select by kind instead:
#   tests/unit/         every test not marked integration/browser outside the two folders below
#   tests/integration/  every test marked integration or browser, plus tests/integration/
#   tests/performance/  the folder itself (benchmarks' smoke tests, the fleet simulation)
# tests/unit/ holds only an __init__.py; both views collect the whole of tests/ and deselect.

TESTS_DIR = Path(__file__).resolve().parent
LAYOUT_VIEWS = {"unit", "integration"}
SLOW_MARKERS = ("integration", "browser")


def pytest_configure(config):
    views, args = set(), []
    for arg in config.args:
        path = (config.invocation_params.dir / arg).resolve()
        if "::" not in arg and path.parent == TESTS_DIR and path.name in LAYOUT_VIEWS:
            views.add(path.name)
            arg = str(TESTS_DIR)
        if arg not in args:
            args.append(arg)
    if views:
        config.args[:] = args
        config.stash[_views_key] = views


_views_key = pytest.StashKey[set]()


def _kind(item) -> str:
    path = Path(str(item.path)).resolve()
    if TESTS_DIR / "performance" in path.parents:
        return "performance"
    if TESTS_DIR / "integration" in path.parents:
        return "integration"
    if any(item.get_closest_marker(marker) for marker in SLOW_MARKERS):
        return "integration"
    return "unit"


# .ci/test runs the suite twice: on the embedded default, then with DATABASE_URL and REDIS_URL
# (PostgreSQL + Redis). A test marked config_independent starts its own servers with their own
# settings (or none), so the second pass would only repeat it: it runs in the first.
CONFIG_INDEPENDENT_REASON = "config_independent: runs in the embedded-default pass"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("REDIS_URL"):
        once = pytest.mark.skip(reason=CONFIG_INDEPENDENT_REASON)
        for item in items:
            if item.get_closest_marker("config_independent"):
                item.add_marker(once)
    views = config.stash.get(_views_key, None)
    if not views:
        return
    kept, deselected = [], []
    for item in items:
        (kept if _kind(item) in views else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept

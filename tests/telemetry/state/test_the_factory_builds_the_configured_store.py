"""create_state_store() builds the backend that MOE_STATE_BACKEND and REDIS_URL ask for."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from routing.core.state import LeaseConfig, LocalStateStore
from telemetry.state.factory import create_state_store
from telemetry.state.redis_store import RedisStateStore


def test_the_local_backend_is_a_local_store(settings):
    settings.MOE_STATE_BACKEND = "local"
    settings.MOE_LEASE_DEFAULT_SECONDS = 0.5
    settings.MOE_LEASE_LATENCY_FACTOR = 3.0
    settings.MOE_LEASE_MIN_SECONDS = 0.05
    settings.MOE_LEASE_MAX_SECONDS = 12.5

    store = create_state_store()

    assert isinstance(store, LocalStateStore)
    assert store.lease == LeaseConfig(default_s=0.5, factor=3.0, min_s=0.05, max_s=12.5)


def test_the_redis_backend_is_a_redis_store_on_redis_url(settings, redis_url):
    settings.MOE_STATE_BACKEND = "redis"
    settings.REDIS_URL = redis_url
    settings.MOE_LEASE_DEFAULT_SECONDS = 0.2
    settings.MOE_LEASE_LATENCY_FACTOR = 1.5
    settings.MOE_LEASE_MIN_SECONDS = 0.02
    settings.MOE_LEASE_MAX_SECONDS = 7.0

    store = create_state_store(key_prefix="test:state:factory:")

    assert isinstance(store, RedisStateStore)
    assert store.lease == LeaseConfig(default_s=0.2, factor=1.5, min_s=0.02, max_s=7.0)
    assert store.fallback.lease == store.lease  # degraded mode leases alike
    assert store.status()["degraded"] is False
    assert store.status()["backend"] == "redis"


def test_the_redis_backend_without_redis_url_is_a_configuration_error(settings):
    settings.MOE_STATE_BACKEND = "redis"
    settings.REDIS_URL = ""

    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        create_state_store()


def test_contradictory_lease_settings_are_a_configuration_error(settings):
    settings.MOE_STATE_BACKEND = "local"
    settings.MOE_LEASE_MIN_SECONDS = 5.0
    settings.MOE_LEASE_MAX_SECONDS = 1.0

    with pytest.raises(ImproperlyConfigured, match="MOE_LEASE_"):
        create_state_store()


def test_an_unknown_backend_is_a_configuration_error(settings):
    settings.MOE_STATE_BACKEND = "memcached"

    with pytest.raises(ImproperlyConfigured, match="MOE_STATE_BACKEND"):
        create_state_store()

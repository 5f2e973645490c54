"""create_state_store() builds the backend that MOE_STATE_BACKEND and REDIS_URL ask for."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from routing.core.state import LocalStateStore
from telemetry.state.factory import create_state_store
from telemetry.state.redis_store import RedisStateStore


def test_the_local_backend_is_a_local_store(settings):
    settings.MOE_STATE_BACKEND = "local"
    settings.MOE_INFLIGHT_TIMEOUT_SECONDS = 12.5

    store = create_state_store()

    assert isinstance(store, LocalStateStore)
    assert store.inflight_timeout_s == 12.5


def test_the_redis_backend_is_a_redis_store_on_redis_url(settings, redis_url):
    settings.MOE_STATE_BACKEND = "redis"
    settings.REDIS_URL = redis_url
    settings.MOE_INFLIGHT_TIMEOUT_SECONDS = 7.0

    store = create_state_store(key_prefix="test:state:factory:")

    assert isinstance(store, RedisStateStore)
    assert store.inflight_timeout_s == 7.0
    assert store.status()["degraded"] is False
    assert store.status()["backend"] == "redis"


def test_the_redis_backend_without_redis_url_is_a_configuration_error(settings):
    settings.MOE_STATE_BACKEND = "redis"
    settings.REDIS_URL = ""

    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        create_state_store()


def test_an_unknown_backend_is_a_configuration_error(settings):
    settings.MOE_STATE_BACKEND = "memcached"

    with pytest.raises(ImproperlyConfigured, match="MOE_STATE_BACKEND"):
        create_state_store()

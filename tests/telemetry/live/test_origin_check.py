"""origin_allowed: same origin as the Host, or listed in MOE_WS_ALLOWED_ORIGINS."""

import pytest

from telemetry.consumers import bearer_token, origin_allowed


def scope(origin=None, host="127.0.0.1:8005", **extra):
    headers = [(b"host", host.encode())] if host else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "headers": headers, **extra}


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8005", "127.0.0.1:8005"),
        ("https://localhost", "localhost"),
        ("https://localhost:443", "localhost"),
        ("http://[::1]:8005", "[::1]:8005"),
        ("http://LOCALHOST:8005", "localhost:8005"),
    ],
)
def test_the_pages_own_origin_is_allowed(origin, host):
    assert origin_allowed(scope(origin, host))


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1:8005"),  # same host, another port: another origin
        ("http://localhost:8005", "127.0.0.1:8005"),
        ("https://evil.example", "127.0.0.1:8005"),
        ("http://evil.example", "evil.example"),  # Host not in ALLOWED_HOSTS
        ("null", "127.0.0.1:8005"),
        ("http://127.0.0.1:notaport", "127.0.0.1:8005"),
    ],
)
def test_other_origins_are_refused(origin, host):
    assert not origin_allowed(scope(origin, host))


def test_a_missing_host_refuses_a_browser():
    assert not origin_allowed(scope("http://127.0.0.1:8005", host=None))


def test_no_origin_means_not_a_browser_and_is_left_to_authentication():
    assert origin_allowed(scope(None))


def test_listed_origins_and_patterns_are_allowed(settings):
    settings.MOE_WS_ALLOWED_ORIGINS = ["https://ops.example.com", ".corp.example"]

    assert origin_allowed(scope("https://ops.example.com"))
    assert origin_allowed(scope("https://grafana.corp.example"))
    assert not origin_allowed(scope("http://ops.example.com"))  # scheme is part of the origin


def test_bearer_token_comes_from_the_header_or_the_subprotocol():
    assert bearer_token({"headers": [(b"authorization", b"Bearer abc.def")]}) == "abc.def"
    assert bearer_token({"headers": [], "subprotocols": ["moe.routing.v1", "bearer.x.y"]}) == "x.y"
    assert bearer_token({"headers": [(b"authorization", b"Basic Zm9v")]}) is None
    assert bearer_token({"headers": []}) is None

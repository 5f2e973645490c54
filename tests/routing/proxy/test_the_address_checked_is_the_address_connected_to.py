"""Resolved-address pinning: a name is resolved once, its answers are checked against the SSRF
rules, and the connection goes to the checked address, however the name's answers change.

No DNS server can be re-pointed on this machine, so the resolver's answers for one made-up
name (under .invalid, which never resolves for real) are substituted; every other name
resolves as usual.
"""

import json
import socket

import pytest

from registry.services import register_service
from routing import forwarding
from tests.routing.proxy.conftest import body_of

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "rebinding.moe-test.invalid"


@pytest.fixture
def rebinding_name(monkeypatch, settings):
    """``answers`` is the list of addresses NAME resolves to, one lookup after another (the
    last one repeats); ``lookups`` counts the lookups of NAME."""
    settings.MOE_ALLOWED_ENDPOINT_HOSTS = ["*.moe-test.invalid", "127.0.0.1", "localhost"]
    real = socket.getaddrinfo
    state = {"answers": [], "lookups": 0}

    def getaddrinfo(host, *args, **kwargs):
        if host != NAME:
            return real(host, *args, **kwargs)
        answers = state["answers"]
        address = answers[min(state["lookups"], len(answers) - 1)]
        state["lookups"] += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    forwarding.reset_forwarding_state()
    yield state
    forwarding.reset_forwarding_state()


def _register_on_name(backend, capability):
    register_service(
        {
            "service_id": f"named-{capability}",
            "service_type": "custom",
            "endpoint": f"http://{NAME}:{backend.port}",
            "capabilities": [capability],
            "max_capacity": 10,
        }
    )


@pytest.mark.asyncio
async def test_a_name_that_rebinds_after_the_check_still_reaches_the_checked_address(
    proxy, afleet, capability, rebinding_name
):
    # given: the check sees loopback; any later lookup would say "metadata service"
    from asgiref.sync import sync_to_async

    rebinding_name["answers"] = ["127.0.0.1", "169.254.169.254"]
    (backend,) = await afleet(1)
    await sync_to_async(_register_on_name)(backend, f"{capability}-n")

    # when
    responses = [
        await proxy.get("/api/v1/proxy/who", headers={"X-Moe-Capabilities": f"{capability}-n"})
        for _ in range(3)
    ]

    # then: answered by the loopback backend, which saw the service's own Host header
    assert [r.status_code for r in responses] == [200, 200, 200]
    echo = json.loads(await body_of(responses[0]))
    assert echo["service"] == backend.name
    assert echo["headers"]["Host"] == f"{NAME}:{backend.port}"
    # one lookup, by the check: the HTTP client never resolved the name itself
    assert rebinding_name["lookups"] == 1


@pytest.mark.asyncio
async def test_a_name_that_resolves_to_a_forbidden_address_is_never_contacted(
    proxy, afleet, capability, rebinding_name
):
    # given: the check sees the metadata address; a second lookup would say loopback
    from asgiref.sync import sync_to_async

    rebinding_name["answers"] = ["169.254.169.254", "127.0.0.1"]
    (backend,) = await afleet(1)
    await sync_to_async(_register_on_name)(backend, f"{capability}-n")
    hits = backend.hits

    # when
    response = await proxy.get(
        "/api/v1/proxy/who", headers={"X-Moe-Capabilities": f"{capability}-n"}
    )

    # then
    assert response.status_code == 502
    attempt = response.json()["error"]["fields"]["attempts"][0]
    assert attempt["error"].startswith("refused:") and "metadata" in attempt["error"]
    assert backend.hits == hits


def test_forward_true_connects_to_the_checked_address(
    client_api, fleet, capability, rebinding_name
):
    # given
    rebinding_name["answers"] = ["127.0.0.1", "169.254.169.254"]
    (backend,) = fleet(1)
    _register_on_name(backend, f"{capability}-n")

    # when
    response = client_api.post(
        "/api/v1/route",
        {"data": {"capabilities": [f"{capability}-n"], "data": {"x": 1}}, "forward": True},
        format="json",
    )

    # then
    assert response.status_code == 200, response.content
    assert response.json()["forwarded"]["body"]["headers"]["Host"] == f"{NAME}:{backend.port}"
    assert rebinding_name["lookups"] == 1


def test_a_target_keeps_the_path_query_and_brackets_ipv6():
    target, _ = forwarding.target_for("http://[::1]:8080/base/", "v1/items", "a=1")

    assert target.url == "http://[::1]:8080/base/v1/items?a=1"
    assert target.host_header == "[::1]:8080"
    assert target.sni_hostname is None

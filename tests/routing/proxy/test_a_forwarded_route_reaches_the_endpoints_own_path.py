""" "forward": true POSTs to the registered endpoint itself, path included; the proxy appends
its ``<path>`` to that endpoint (routing/forwarding.py ``target_for``)."""

import pytest
from asgiref.sync import sync_to_async

from registry.services import register_service

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served_at(fleet, capability):
    """``served_at(path)`` -> a running backend registered with the endpoint ``<url><path>``."""

    def make(path: str):
        (backend,) = fleet(1)
        register_service(
            {
                "service_id": backend.name,
                "service_type": "custom",
                "endpoint": backend.url + path,
                "capabilities": [capability],
                "max_capacity": 100,
            }
        )
        return backend

    return make


def _forward(client_api, capability):
    return client_api.post(
        "/api/v1/route",
        {"data": {"capabilities": [capability], "data": {"q": 1}}, "forward": True},
        format="json",
    )


@pytest.mark.parametrize("path", ["/svc/v2", "/svc/", "/"])
def test_a_forwarded_route_posts_to_exactly_the_endpoints_path(
    client_api, served_at, capability, path
):
    # given
    backend = served_at(path)

    # when
    response = _forward(client_api, capability)

    # then
    assert response.status_code == 200, response.content
    assert response.json()["forwarded"]["body"]["path"] == path
    assert [(seen["method"], seen["path"]) for seen in backend.seen] == [("POST", path)]


def test_a_forwarded_route_to_an_endpoint_without_a_path_posts_to_the_root(
    client_api, fleet, capability
):
    (backend,) = fleet(1)

    response = _forward(client_api, capability)

    assert response.status_code == 200, response.content
    assert [seen["path"] for seen in backend.seen] == ["/"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("endpoint_path", "proxied", "received"),
    [
        ("/svc/v2", "/api/v1/proxy/x/y?k=1", "/svc/v2/x/y?k=1"),
        ("/svc/", "/api/v1/proxy/x/y", "/svc/x/y"),
        ("/svc/v2", "/api/v1/proxy/", "/svc/v2"),
        # encoded characters stay encoded: a decoded ? or # would cut the path short
        ("/svc", "/api/v1/proxy/a%3Fb", "/svc/a%3Fb"),
        ("/svc", "/api/v1/proxy/a%23b?k=1", "/svc/a%23b?k=1"),
        ("/svc", "/api/v1/proxy/a%20b/%25", "/svc/a%20b/%25"),
    ],
)
async def test_the_proxy_appends_its_path_to_the_endpoints_path(
    proxy, served_at, endpoint_path, proxied, received
):
    backend = await sync_to_async(served_at)(endpoint_path)

    response = await proxy.get(proxied)

    assert response.status_code == 200, response.content
    assert [seen["path"] for seen in backend.seen] == [received]

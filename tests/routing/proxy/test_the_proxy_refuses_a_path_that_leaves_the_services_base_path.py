"""A proxied path with a ``.`` or ``..`` segment, however it is encoded, is a 400 naming
``path``, and the service hears nothing; dotted names that are not such segments go through."""

import asyncio
import json
from urllib.parse import unquote

import pytest

from moe_project.asgi import application
from registry.services import register_service

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

TRAVERSALS = [
    "../../admin",
    "%2e%2e/%2e%2e/admin",
    "%2E%2E/admin",
    "..%2f..%2fadmin",
    "%2e%2e%2f%2e%2e%2fadmin",
    "%252e%252e/%252e%252e/admin",  # decoded once here, once more by the service
    "..%255cadmin",
    "..%5c..%5cadmin",
    "..;/admin",
    "x/../../admin",
    "x/./y",
    "x/..",
]


@pytest.fixture
def backend(fleet, capability):
    """A running backend registered with an endpoint that has a base path."""
    (made,) = fleet(1)
    register_service(
        {
            "service_id": made.name,
            "service_type": "custom",
            "endpoint": f"{made.url}/svc/v2",
            "capabilities": [capability],
            "max_capacity": 100,
        }
    )
    return made


def _refused_naming_the_path(status_code: int, body: dict) -> bool:
    return (
        status_code == 400
        and body["error"]["code"] == "validation_error"
        and list(body["error"]["fields"]) == ["path"]
    )


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_a_dot_segment_is_a_400_naming_the_path(proxy, backend, path):
    response = await proxy.get(f"/api/v1/proxy/{path}?moe_strategy=semantic")

    assert _refused_naming_the_path(response.status_code, response.json()), response.content
    assert backend.hits == 0


async def _get_as_is(target: str, headers: dict[str, str]) -> tuple[int, dict]:
    """GET ``target`` through the ASGI application as an ASGI server passes on
    ``curl --path-as-is``: percent-decoded once, dot segments kept (an HTTP client would
    remove them before sending)."""
    raw_path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5555),
        "server": ("testserver", 80),
    }
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected until it is answered

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(application(scope, receive, send), 10)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_the_asgi_fast_path_refuses_it_too(proxy, backend, path):
    status, body = await _get_as_is(f"/api/v1/proxy/{path}?moe_strategy=semantic", proxy.headers)

    assert _refused_naming_the_path(status, body), body
    assert backend.hits == 0


@pytest.mark.parametrize(
    ("path", "received"),
    [
        ("a/b.c/d", "/svc/v2/a/b.c/d"),
        ("v1/items", "/svc/v2/v1/items"),
        ("files/..foo", "/svc/v2/files/..foo"),
        ("files/...", "/svc/v2/files/..."),
        (".well-known/x", "/svc/v2/.well-known/x"),
    ],
)
async def test_a_dotted_name_that_is_not_a_dot_segment_goes_through(proxy, backend, path, received):
    response = await proxy.get(f"/api/v1/proxy/{path}")

    assert response.status_code == 200, response.content
    assert [seen["path"] for seen in backend.seen] == [received]

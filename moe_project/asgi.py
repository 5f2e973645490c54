"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moe_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from moe_project.ws_urls import websocket_application  # noqa: E402
from routing.api.fast import PATHS as ROUTE_PATHS  # noqa: E402
from routing.api.fast import asgi_route  # noqa: E402
from routing.api.proxy import PREFIX as PROXY_PREFIX  # noqa: E402
from routing.api.proxy import asgi_proxy  # noqa: E402


async def http_application(scope, receive, send):
    """Django, except for the hot endpoints, which skip the middleware and the per-request
    thread: the proxy (routing/api/proxy.py) and route / route batch (routing/api/fast.py)."""
    path = scope["path"]
    if path in ROUTE_PATHS:
        await asgi_route(django_asgi_app, scope, receive, send)
    elif path.startswith(PROXY_PREFIX):
        await asgi_proxy(django_asgi_app, scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": websocket_application(URLRouter),
    }
)

# Everything loaded so far lives as long as the process: keep it out of the cyclic garbage
# collector's scans, which otherwise roughly double the cost of allocation-heavy requests.
gc.collect()
gc.freeze()

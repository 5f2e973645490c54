"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moe_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from moe_project.ws_urls import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_application(URLRouter),
    }
)

# Everything loaded so far lives as long as the process: keep it out of the cyclic garbage
# collector's scans, which otherwise roughly double the cost of allocation-heavy requests.
gc.collect()
gc.freeze()

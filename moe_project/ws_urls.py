"""WebSocket URL routes (named so as not to clash with the ``routing`` app).

Every WebSocket goes through ``AuthMiddlewareStack`` (session cookie -> ``scope["user"]``);
the consumers check the origin and the user themselves so they can close with a clear code
(see :mod:`telemetry.consumers`).
"""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from telemetry.consumers import RoutingFeedConsumer


def websocket_urlpatterns() -> list:
    return [path("ws/routing", RoutingFeedConsumer.as_asgi(), name="ws-routing")]


def websocket_application(url_router=URLRouter):
    return AuthMiddlewareStack(url_router(websocket_urlpatterns()))

"""``WS /ws/routing``: the live feed of routing decisions and fleet events.

Authentication
--------------
* Browsers: the Django session cookie (``AuthMiddlewareStack`` wraps the URL router), the same
  login as admin and the dashboard.
* API clients: a simplejwt *access* token, either in an ``Authorization: Bearer <token>``
  header (non-browser clients) or, for browser code without a session, as WebSocket
  subprotocols ``["moe.routing.v1", "bearer.<token>"]`` (the server then answers with
  ``moe.routing.v1``; it never echoes the token). Query-string tokens are not accepted: they
  end up in access logs. A presented token that is invalid or expired is refused even when a
  session cookie is also present.

Origin
------
A browser's ``Origin`` must be the page's own origin (its host and port equal the ``Host``
header, which must be in ``ALLOWED_HOSTS``) or match ``settings.MOE_WS_ALLOWED_ORIGINS``
(channels' ``OriginValidator`` patterns: ``https://ops.example.com``, ``.example.com``, ``*``).
A connection without an ``Origin`` header is not a browser (browsers always send one) and is
judged on its credentials alone.

Close codes
-----------
``4401`` not authenticated (no credentials, bad or expired token, inactive user);
``4403`` origin not allowed. The handshake is accepted and then closed with the code, because
a refused handshake reaches browser code only as an anonymous ``1006``; nothing is sent before
the close, and no group is joined.

Messages
--------
Server to client: ``hello`` on connect (user, coalescing settings, fleet summary), then the
feed (see :mod:`telemetry.events`): ``route`` batches and the other DESIGN.md events.
Client to server: ``{"type": "ping"}`` is answered with ``{"type": "pong", "ts": ...}``;
anything else is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlparse

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from telemetry import events

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
SUBPROTOCOL = "moe.routing.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# channels-redis forgets group members after ``group_expiry`` (a day by default) and never
# tells the consumer; a dashboard stays open for longer, so it re-joins now and then.
GROUP_REFRESH_SECONDS = 600


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def origin_allowed(scope) -> bool:
    """Same origin as the Host header (itself allowed), or listed in MOE_WS_ALLOWED_ORIGINS."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True  # not a browser: no ambient credentials to abuse
    parsed = urlparse(origin)
    if parsed.hostname is None:
        return False  # "null" (sandboxed frames, file://) and garbage
    if OriginValidator(None, settings.MOE_WS_ALLOWED_ORIGINS).valid_origin(parsed):
        return True
    host = _header(scope, b"host")
    if not host:
        return False
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    default = DEFAULT_PORTS.get(parsed.scheme)
    try:
        origin_port = parsed.port or default
        host_port = int(port) if port else default
    except ValueError:  # a port that is not a number
        return False
    return parsed.hostname == domain.strip("[]") and origin_port == host_port


def bearer_token(scope) -> str | None:
    """The JWT the client presented (Authorization header or subprotocol), if any."""
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return protocol[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return None


@database_sync_to_async
def user_for_token(raw: str):
    """The active user a valid access token names, else an AnonymousUser."""
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw.encode()))
    except (InvalidToken, AuthenticationFailed):
        return AnonymousUser()


@database_sync_to_async
def fleet_summary() -> dict | None:
    """Counts of services by status and health for the hello message (None if unreadable)."""
    from django.db import DatabaseError
    from django.db.models import Count

    from registry.models import Service

    try:
        rows = list(Service.objects.values("status", "health").annotate(n=Count("id")).order_by())
    except DatabaseError:  # the feed works without the summary; the dashboard polls anyway
        logger.warning("live feed: fleet summary unavailable", exc_info=True)
        return None
    by_status: dict[str, int] = {}
    by_health: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        by_health[row["health"]] = by_health.get(row["health"], 0) + row["n"]
    return {"services": sum(by_status.values()), "by_status": by_status, "by_health": by_health}


class RoutingFeedConsumer(AsyncWebsocketConsumer):
    """Joins the feed group for an authenticated user from an allowed origin."""

    groups: list[str] = []  # joined by hand, after the checks

    async def connect(self) -> None:
        self.joined = False
        offered = self.scope.get("subprotocols") or []
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        if not origin_allowed(self.scope):
            await self._refuse(CLOSE_FORBIDDEN_ORIGIN, subprotocol)
            return
        user = await self._authenticate()
        if not (user and user.is_authenticated and user.is_active):
            await self._refuse(CLOSE_UNAUTHENTICATED, subprotocol)
            return
        self.scope["user"] = user
        await self.channel_layer.group_add(events.FEED_GROUP, self.channel_name)
        self.loop = asyncio.get_running_loop()
        events.attach_listener_loop(self.loop)
        self.joined = True
        self.refresher = self.loop.create_task(self._keep_membership())
        await self.accept(subprotocol)
        await self._send_json(await self._hello(user))

    async def disconnect(self, code) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            self.refresher.cancel()
            events.detach_listener_loop(self.loop)
            await self.channel_layer.group_discard(events.FEED_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message = orjson.loads(text_data or bytes_data or b"")
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self._send_json({"type": "pong", "ts": time.time()})

    async def feed_message(self, message) -> None:
        """A feed event from the group, already serialised by the publisher."""
        await self.send(text_data=message["text"])

    # -- helpers --

    async def _authenticate(self):
        token = bearer_token(self.scope)
        if token is not None:
            return await user_for_token(token)
        return self.scope.get("user")

    async def _keep_membership(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            try:
                await self.channel_layer.group_add(events.FEED_GROUP, self.channel_name)
            except Exception:  # Redis away for a moment: try again at the next refresh
                logger.warning("live feed: could not refresh group membership", exc_info=True)

    async def _refuse(self, code: int, subprotocol: str | None) -> None:
        await self.accept(subprotocol)
        await self.close(code=code)

    async def _hello(self, user) -> dict:
        publisher = events.get_publisher()
        return {
            "type": "hello",
            "user": user.get_username(),
            "ts": time.time(),
            "event_types": sorted(events.EVENT_TYPES),
            "route_flush_ms": round(publisher.interval * 1000),
            "max_route_items": publisher.max_route_items,
            "fleet": await fleet_summary(),
        }

    async def _send_json(self, payload: dict) -> None:
        await self.send(text_data=orjson.dumps(payload).decode())

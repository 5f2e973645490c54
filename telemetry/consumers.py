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
``4401`` not authenticated (no credentials, bad or expired token, inactive user), and later
when the login ends: a token's socket closes when the token expires, a session's socket within
``SESSION_CHECK_SECONDS`` of logout, session expiry or a password change;
``4403`` origin not allowed; ``4400`` a bad URL option: an unknown one, or a bad value of
``?mode=`` or ``?max_per_second=`` (the close reason names it; a typo such as ``?mode_=each``
must not silently give a feed the client did not ask for). The handshake is accepted and then
closed with the code, because a refused handshake reaches browser code only as an anonymous
``1006``; nothing is sent before the close, and no group is joined.

Who sees which decisions
------------------------
Operators (staff or the operators group) and holders of ``routing.view_all_decisions`` see
every decision; any other user sees only the decisions it routed itself (route items carry
``client``, the id of the user who routed; items without it are shown to no client). Fleet
events (``service_registered``, ``breaker_opened``, ...) reach everyone.

Route delivery: batches or one message per decision
---------------------------------------------------
* ``batch`` (the default, what the dashboard uses): ``{"type": "route", "events": [...],
  "dropped": n, "ts": ...}`` at most every 100 ms (see :mod:`telemetry.events`).
* ``each``: one message per decision, the decision's keys at the top level as in the original
  spec, ``{"type": "route", "request_id": ..., "selected_services": [...], "routing_strategy":
  ..., "latency_ms": ..., "dropped": n, "ts": ...}``, at most ``max_per_second`` messages per
  second (default ``EACH_DEFAULT_PER_SECOND``, at most ``EACH_MAX_PER_SECOND``; a burst of
  one second's worth is allowed). ``dropped`` counts the decisions this socket should have
  seen that were left out since its previous route message (rate cap or coalescing); the
  newest decisions are the ones kept.

Pick the mode in the URL, ``/ws/routing?mode=each&max_per_second=20`` (then no ``hello`` is
sent either, so every message is an event and the spec's
``ws.onmessage = e => console.log(JSON.parse(e.data).selected_services)`` works as written),
or at any time with ``{"type": "subscribe", "mode": "each"|"batch", "max_per_second": n}``,
answered with ``{"type": "subscribed", "mode", "max_per_second", "sees": "all"|"own"}`` or an
``{"type": "error", "error": {"code": "bad_subscription", ...}}`` (a bad value or an unknown
key, named in ``fields``).

Messages
--------
Server to client: ``hello`` on connect (user, coalescing settings, what it sees, fleet
summary; not with ``?mode=each``), then the feed (see :mod:`telemetry.events`): ``route``
messages and the other DESIGN.md events.
Client to server: ``{"type": "ping"}`` is answered with ``{"type": "pong", "ts": ...}``,
``subscribe`` as above. Anything else is answered with an error of the same shape, and the
socket stays open: ``{"type": "error", "error": {"code": "invalid_json" | "bad_message",
"message": ..., "fields": {"body" | "type": [...]}}}`` for a message that is not JSON, not an
object, or of a missing or unknown ``type``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import import_module
from urllib.parse import parse_qs, urlparse

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from moe_project.api_errors import error_body
from telemetry import events

logger = logging.getLogger(__name__)
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
SUBPROTOCOL = "moe.routing.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# channels-redis forgets group members after ``group_expiry`` (a day by default) and never
# tells the consumer; a dashboard stays open for longer, so it re-joins now and then.
GROUP_REFRESH_SECONDS = 600
# How often a session-authenticated socket checks that its login still exists (logout, expiry,
# password change): two small queries per socket per period.
SESSION_CHECK_SECONDS = 5.0
MODE_BATCH, MODE_EACH = "batch", "each"
EACH_DEFAULT_PER_SECOND = 50
EACH_MAX_PER_SECOND = 500
VIEW_ALL_DECISIONS_PERMISSION = "routing.view_all_decisions"
SUBSCRIPTION_OPTIONS = ("mode", "max_per_second")
MESSAGE_TYPES = ("ping", "subscribe")
# How much of a client's own input an error or a close reason repeats.
ECHO_MAX_CHARS = 40
CLOSE_REASON_MAX_BYTES = 123


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
def user_for_token(raw: str) -> tuple:
    """``(user, expires_at)`` for a valid access token, else ``(AnonymousUser, None)``."""
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

    auth = JWTAuthentication()
    try:
        token = auth.get_validated_token(raw.encode())
        return auth.get_user(token), token.get("exp")
    except (InvalidToken, AuthenticationFailed):
        return AnonymousUser(), None


@database_sync_to_async
def sees_all_decisions(user) -> bool:
    """Operators and holders of ``routing.view_all_decisions`` watch every client's decisions."""
    from registry.permissions import is_operator

    if user.pk is None:  # an unsaved user (benchmarks) holds no permissions
        return bool(user.is_staff)
    return is_operator(user) or user.has_perm(VIEW_ALL_DECISIONS_PERMISSION)


@database_sync_to_async
def session_login_holds(session_key: str, user) -> bool:
    """Whether the session still exists, unexpired, logged in as ``user`` (same password)."""
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.utils.crypto import constant_time_compare

    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if data.get(SESSION_KEY) != str(user.pk):
        return False
    current = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
    if current is None:
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash())


class SubscriptionError(ValueError):
    """A subscription option that is not valid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _echo(value) -> str:
    text = str(value)
    return text if len(text) <= ECHO_MAX_CHARS else text[: ECHO_MAX_CHARS - 3] + "..."


def subscription_options(
    options: dict, current: tuple[str, int], other_keys: tuple[str, ...] = ()
) -> tuple[str, int]:
    """``(mode, max_per_second)`` from URL or subscribe-message options, else ``current``;
    a key that is neither an option nor one of ``other_keys`` is refused."""
    for key in options:
        if key not in SUBSCRIPTION_OPTIONS and key not in other_keys:
            known = ", ".join(f'"{k}"' for k in SUBSCRIPTION_OPTIONS)
            raise SubscriptionError(_echo(key), f'Unknown option "{_echo(key)}" (known: {known}).')
    mode, per_second = current
    if "mode" in options:
        mode = options["mode"]
        if mode not in (MODE_BATCH, MODE_EACH):
            raise SubscriptionError("mode", f'"mode" must be "{MODE_BATCH}" or "{MODE_EACH}".')
    if "max_per_second" in options:
        value = options["max_per_second"]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SubscriptionError("max_per_second", '"max_per_second" must be an integer.')
        if not 1 <= value <= EACH_MAX_PER_SECOND:
            raise SubscriptionError(
                "max_per_second", f'"max_per_second" must be from 1 to {EACH_MAX_PER_SECOND}.'
            )
        per_second = value
    return mode, per_second


class RouteView:
    """What one socket receives of the route stream: its mode, its scope and its rate cap.

    ``client`` is None for a socket that sees every decision, else the watching user's id as a
    string. ``clock`` is injectable for tests.
    """

    def __init__(self, client: str | None, mode: str, per_second: int, clock=time.monotonic):
        self.client = client
        self.clock = clock
        self.pending_dropped = 0
        self.configure(mode, per_second)

    def configure(self, mode: str, per_second: int) -> None:
        self.mode, self.per_second = mode, per_second
        self.tokens, self.refilled_at = float(per_second), self.clock()

    @property
    def forwards_as_is(self) -> bool:
        """The publisher's text is already this socket's message (no parsing needed)."""
        return self.mode == MODE_BATCH and self.client is None

    def messages(self, text: str, dropped_by_client: dict) -> list[dict]:
        """This socket's route messages for one published route flush (maybe none)."""
        batch = orjson.loads(text)
        events = batch.get("events") or []
        if self.client is None:
            dropped = batch.get("dropped", 0)
        else:
            events = [e for e in events if str(e.get("client")) == self.client]
            dropped = dropped_by_client.get(self.client, 0)
        if self.mode == MODE_BATCH:
            if not events and not dropped:
                return []
            return [{"type": "route", "events": events, "dropped": dropped, "ts": batch["ts"]}]
        return self._each(events, dropped, batch["ts"])

    def _each(self, events: list[dict], dropped: int, ts: float) -> list[dict]:
        now = self.clock()
        self.tokens = min(
            float(self.per_second), self.tokens + (now - self.refilled_at) * self.per_second
        )
        self.refilled_at = now
        allowed = min(len(events), int(self.tokens))
        self.tokens -= allowed
        self.pending_dropped += dropped + len(events) - allowed
        out = []
        for event in events[len(events) - allowed :]:  # the newest ones
            out.append({**event, "type": "route", "dropped": self.pending_dropped, "ts": ts})
            self.pending_dropped = 0
        return out


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
        self.watchers: list[asyncio.Task | asyncio.TimerHandle] = []
        offered = self.scope.get("subprotocols") or []
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        if not origin_allowed(self.scope):
            await self._refuse(CLOSE_FORBIDDEN_ORIGIN, subprotocol)
            return
        user, expires_at = await self._authenticate()
        if not (user and user.is_authenticated and user.is_active):
            await self._refuse(CLOSE_UNAUTHENTICATED, subprotocol)
            return
        query_string = self.scope.get("query_string", b"").decode("latin1")
        # Blank values kept: "?mode=" is a bad mode, not no mode.
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        try:
            mode, per_second = subscription_options(query, (MODE_BATCH, EACH_DEFAULT_PER_SECOND))
        except SubscriptionError as exc:
            await self._refuse(CLOSE_BAD_REQUEST, subprotocol, reason=str(exc))
            return
        self.scope["user"] = user
        sees_all = await sees_all_decisions(user)
        self.view = RouteView(None if sees_all else str(user.pk), mode, per_second)
        await self.channel_layer.group_add(events.FEED_GROUP, self.channel_name)
        self.loop = asyncio.get_running_loop()
        events.attach_listener_loop(self.loop)
        self.joined = True
        self.refresher = self.loop.create_task(self._keep_membership())
        await self.accept(subprotocol)
        self._watch_login(user, expires_at)
        if query.get("mode") != MODE_EACH:  # with ?mode=each every message is an event
            await self._send_json(await self._hello(user))

    async def disconnect(self, code) -> None:
        for watcher in getattr(self, "watchers", []):
            watcher.cancel()
        if getattr(self, "joined", False):
            self.joined = False
            self.refresher.cancel()
            events.detach_listener_loop(self.loop)
            await self.channel_layer.group_discard(events.FEED_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message = orjson.loads(text_data or bytes_data or b"")
        except orjson.JSONDecodeError:
            await self._send_error("invalid_json", "body", "The message is not valid JSON.")
            return
        if not isinstance(message, dict):
            await self._send_error(
                "bad_message", "body", 'A message must be a JSON object with a "type".'
            )
            return
        kind = message.get("type")
        if kind == "ping":
            await self._send_json({"type": "pong", "ts": time.time()})
        elif kind == "subscribe":
            if self.joined:  # else closing: the login ended
                await self._subscribe(message)
        else:
            known = " or ".join(f'"{k}"' for k in MESSAGE_TYPES)
            said = 'No "type"' if kind is None else f'Unknown message type "{_echo(kind)}"'
            await self._send_error("bad_message", "type", f'{said}: "type" must be {known}.')

    async def feed_message(self, message) -> None:
        """A feed event from the group, already serialised by the publisher."""
        if not self.joined:  # closing: the login ended
            return
        view = self.view
        if not message.get("route") or view.forwards_as_is:
            await self.send(text_data=message["text"])
            return
        for payload in view.messages(message["text"], message.get("dropped_by_client") or {}):
            await self._send_json(payload)

    # -- helpers --

    async def _authenticate(self) -> tuple:
        token = bearer_token(self.scope)
        if token is not None:
            return await user_for_token(token)
        return self.scope.get("user"), None

    async def _subscribe(self, message: dict) -> None:
        view = self.view
        try:
            mode, per_second = subscription_options(
                message, (view.mode, view.per_second), other_keys=("type",)
            )
        except SubscriptionError as exc:
            await self._send_error("bad_subscription", exc.field, str(exc))
            return
        view.configure(mode, per_second)
        await self._send_json(
            {
                "type": "subscribed",
                "mode": mode,
                "max_per_second": per_second,
                "sees": "all" if view.client is None else "own",
            }
        )

    def _watch_login(self, user, expires_at) -> None:
        """Close with 4401 when the token expires or the session's login ends."""
        if expires_at is not None:
            delay = max(0.0, float(expires_at) - time.time())
            self.watchers.append(self.loop.call_later(delay, self._end_login))
            return
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None) if session is not None else None
        if session_key:
            self.watchers.append(self.loop.create_task(self._check_session(session_key, user)))

    def _end_login(self) -> None:
        self.watchers.append(self.loop.create_task(self._close_ended_login()))

    async def _close_ended_login(self) -> None:
        """Stop the feed and close with 4401 (the login behind this socket has ended)."""
        if self.joined:
            self.joined = False
            self.refresher.cancel()
            events.detach_listener_loop(self.loop)
            await self.channel_layer.group_discard(events.FEED_GROUP, self.channel_name)
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _check_session(self, session_key: str, user) -> None:
        while True:
            await asyncio.sleep(SESSION_CHECK_SECONDS)
            try:
                holds = await session_login_holds(session_key, user)
            except Exception:  # the database away for a moment: keep the socket, check again
                logger.warning("live feed: could not check the session", exc_info=True)
                continue
            if not holds:
                await self._close_ended_login()
                return

    async def _keep_membership(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            try:
                await self.channel_layer.group_add(events.FEED_GROUP, self.channel_name)
            except Exception:  # Redis away for a moment: try again at the next refresh
                logger.warning("live feed: could not refresh group membership", exc_info=True)

    async def _refuse(self, code: int, subprotocol: str | None, reason: str | None = None) -> None:
        await self.accept(subprotocol)
        if reason:  # a close frame carries at most 123 bytes of reason
            reason = reason.encode()[:CLOSE_REASON_MAX_BYTES].decode(errors="ignore")
        await self.close(code=code, reason=reason)

    async def _hello(self, user) -> dict:
        publisher = events.get_publisher()
        return {
            "type": "hello",
            "user": user.get_username(),
            "ts": time.time(),
            "event_types": sorted(events.EVENT_TYPES),
            "route_flush_ms": round(publisher.interval * 1000),
            "max_route_items": publisher.max_route_items,
            "mode": self.view.mode,
            "sees": "all" if self.view.client is None else "own",
            "fleet": await fleet_summary(),
        }

    async def _send_error(self, code: str, field: str, message: str) -> None:
        """The error frame every bad client message gets (the socket stays open)."""
        await self._send_json({"type": "error", **error_body(code, message, {field: [message]})})

    async def _send_json(self, payload: dict) -> None:
        await self.send(text_data=orjson.dumps(payload).decode())

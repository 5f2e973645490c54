"""The live feed's publishing side: events for ``WS /ws/routing``, cheap enough for the hot path.

Contracts
---------
``publish_event(event_type, payload)`` sends one non-route event (``service_registered``,
``service_removed``, ``breaker_opened``, ``breaker_closed``, ``rebalanced``, ``model_updated``)
promptly, as its own WebSocket message ``{"type": event_type, **payload}``.

``publish_routes(items)`` is for the routing hot path. Route decisions are *coalesced*: every
``interval`` (100 ms by default) one message ``{"type": "route", "events": [...], "dropped": n,
"ts": <unix time>}`` carries at most ``max_route_items`` decisions (the newest) and counts the
ones it left out in ``dropped``. Thousands of routes per second therefore cost a socket ten
messages per second, and the caller pays for an append to a bounded deque under a lock.

Who routed: a route item may carry ``client``, the id of the user who routed it (one
``publish_routes`` call is one API request, so one client). The channel-layer message of a
route flush also carries ``dropped_by_client`` (``{"<user id>": n}``), so a consumer that shows
a client only its own decisions can report that client's ``dropped`` count; see
:mod:`telemetry.consumers` for who sees what and the per-decision mode.

``wants_routes()`` is False when no one can be listening, so the router may skip building
route items at all (in-memory layer and no dashboard connected to this process), and
``route_items_limit()`` says how many items one flush carries: for a batch of 10,000 the
router builds items for the last ones only and passes the rest as ``skipped``.

Both publishers are thread-safe, never block and never raise on a delivery problem (a down Redis is
logged and the events are lost: the feed is best-effort telemetry, never a reason to fail a
route). Callers must not mutate the dicts they hand to ``publish_routes`` afterwards: they are
kept by reference until the next flush, which copies only the known keys.

Design: where the sending happens
---------------------------------
Publishers run anywhere: async views on the server's event loop, sync views in asgiref's
worker threads, Celery tasks in another process with no loop at all. Channel layers are
async, so every publisher hands its work to *one event loop* with ``call_soon_threadsafe`` and
that loop does the ``group_send``. Which loop depends on the layer:

* **channels-redis** (``REDIS_URL`` set): the publisher owns a daemon thread running its own
  loop (started on first use, restarted in a forked child such as a Celery prefork worker).
  channels-redis keeps one connection pool per loop, so this is safe, and it works the same in
  a web worker and in a Celery worker: a ``rebalanced`` sent by Celery reaches browsers
  connected to any web worker through Redis.
* **InMemoryChannelLayer** (the embedded default): its queues are ``asyncio.Queue`` objects
  bound to the loop the consumers run on, and touching them from another thread or loop is
  unsafe. So the consumers register their loop here when they connect
  (:func:`attach_listener_loop`) and the publisher schedules its sends *on that loop*. With no
  consumer connected in this process there is nobody to deliver to (the in-memory layer does
  not cross processes), and publishing returns at once without buffering anything. The same
  limit means that, in the embedded default, events from the Celery worker (``rebalanced``,
  ``model_updated``) and from other ASGI workers do not reach the page; the dashboard's
  two-second poll of the API still shows their effect. Scale-out (Redis) has no such limit.

The flush timer is armed on demand: the first route after a flush schedules one
``call_later(interval)`` on the target loop, so an idle feed costs no wake-ups and a busy one
costs one cross-thread call per interval, not one per route.

Every WebSocket message is serialised to JSON once, by the publisher, and the consumers
forward the text as is (ten dashboards do not mean ten encodings). Optional settings:
``MOE_WS_FLUSH_SECONDS`` (0.1) and ``MOE_WS_MAX_ROUTE_ITEMS`` (100).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

FEED_GROUP = "moe.routing"
# The channel-layer message type the consumer handles (RoutingFeedConsumer.feed_message).
FEED_MESSAGE_TYPE = "feed.message"

ROUTE = "route"
EVENT_TYPES = frozenset(
    {
        ROUTE,
        "service_registered",
        "service_removed",
        "breaker_opened",
        "breaker_closed",
        "rebalanced",
        "model_updated",
    }
)
# Keys of a route item that reach the browser; anything else stays on the server.
ROUTE_ITEM_KEYS = (
    "request_id",
    "selected_services",
    "routing_strategy",
    "requested_strategy",
    "latency_ms",
    "no_eligible_service",
    "request_type",
    "confidence",
    "client",
)

DEFAULT_INTERVAL_SECONDS = 0.1
DEFAULT_MAX_ROUTE_ITEMS = 100
# Messages waiting for the sender before new ones are dropped (a stalled Redis must not make
# them pile up without bound).
MAX_PENDING_SENDS = 256


# --- where in-memory consumers live -------------------------------------------------------------


class _ListenerLoops:
    """The event loops that have a connected consumer in this process, with counts.

    Production has one (the ASGI server's); tests open a loop per test. The newest loop with a
    consumer is the delivery target for the in-memory layer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[asyncio.AbstractEventLoop, int] = {}
        self.current: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._counts[loop] = self._counts.pop(loop, 0) + 1  # re-insert: newest last
            self.current = loop

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            left = self._counts.pop(loop, 0) - 1
            if left > 0:
                self._counts[loop] = left
            self._refresh()

    def forget(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop a loop that turned out to be closed."""
        with self._lock:
            self._counts.pop(loop, None)
            self._refresh()

    def _refresh(self) -> None:
        live = [loop for loop in self._counts if not loop.is_closed()]
        self.current = live[-1] if live else None


_listener_loops = _ListenerLoops()


def attach_listener_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A consumer connected on ``loop`` (called by RoutingFeedConsumer)."""
    _listener_loops.attach(loop)


def detach_listener_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A consumer on ``loop`` disconnected."""
    _listener_loops.detach(loop)


# --- the publisher ------------------------------------------------------------------------------


class FeedPublisher:
    """Coalesces route decisions and sends feed events to the WebSocket group.

    One instance per process is the default (:func:`get_publisher`); tests and benchmarks may
    build their own with other limits and must :meth:`close` them.
    """

    def __init__(
        self,
        *,
        interval: float | None = None,
        max_route_items: int | None = None,
        layer_alias: str = DEFAULT_CHANNEL_LAYER,
        group: str = FEED_GROUP,
    ) -> None:
        self.interval = interval or getattr(
            settings, "MOE_WS_FLUSH_SECONDS", DEFAULT_INTERVAL_SECONDS
        )
        self.max_route_items = max_route_items or getattr(
            settings, "MOE_WS_MAX_ROUTE_ITEMS", DEFAULT_MAX_ROUTE_ITEMS
        )
        self.layer_alias = layer_alias
        self.group = group
        self.stats = {"messages": 0, "route_items": 0, "dropped": 0, "send_errors": 0}
        self._reset()
        _publishers.add(self)

    def _reset(self) -> None:
        """Fresh state; also run in a forked child, where the parent's thread does not exist."""
        self._lock = threading.Lock()
        self._routes: deque = deque(maxlen=self.max_route_items)
        self._seen = 0
        self._seen_by_client: dict[str, int] = {}
        self._armed_on: asyncio.AbstractEventLoop | None = None
        self._layer = None
        self._in_memory: bool | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        # One sender task drains the outbox in order: concurrent group_sends could overtake
        # each other (a service_removed arriving before its service_registered).
        self._outbox: deque[dict] = deque()
        self._sender: asyncio.Task | None = None

    # -- public API (any thread) --

    def publish_routes(self, items: Sequence[Mapping[str, Any]], skipped: int = 0) -> None:
        """Queue route decisions for the next coalesced ``route`` message.

        ``skipped`` counts decisions made just before ``items`` that the caller did not build
        items for (a big batch needs only its last ``max_route_items``); they are reported
        in ``dropped`` like the ones the buffer leaves out. One call is one API request: the
        ``client`` of its items (if any) is counted for all of them, skipped ones included.
        """
        if not items and not skipped:
            return
        loop = self._target_loop()
        if loop is None:
            return
        limit = self.max_route_items
        count = len(items) + max(0, skipped)
        client = items[-1].get("client") if items else None
        with self._lock:
            # The deque keeps the newest ``limit`` items; slicing first bounds the work for a
            # batch of thousands.
            self._routes.extend(items if len(items) <= limit else items[-limit:])
            self._seen += count
            if client is not None:
                by_client = self._seen_by_client
                by_client[client] = by_client.get(client, 0) + count
            arm = self._armed_on is not loop
            if arm:
                self._armed_on = loop
        if arm:
            self._call_on(loop, self._arm_flush, loop)

    def wants_routes(self) -> bool:
        """False when nobody can be listening (in-memory layer, no consumer in this process).

        Lets a caller skip building route items at all; with channels-redis listeners may be
        in any process, so it is always True there.
        """
        return self._target_loop() is not None

    def publish_event(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Send one event promptly; a ``route`` event joins the coalesced stream instead."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown feed event type {event_type!r}")
        if event_type == ROUTE:
            self.publish_routes([payload])
            return
        loop = self._target_loop()
        if loop is None:
            return
        # Serialised here, in the caller's thread: a snapshot of the payload as it is now.
        text = orjson.dumps({**payload, "type": event_type}, default=str).decode()
        self._call_on(loop, self._send, {"type": FEED_MESSAGE_TYPE, "text": text})

    def flush_soon(self) -> None:
        """Send what is buffered now instead of at the end of the interval (tests, shutdown)."""
        loop = self._target_loop()
        if loop is not None:
            self._call_on(loop, self._flush, loop)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is buffered, wait for pending sends, stop the sender thread (Redis mode).

        Runs at interpreter exit for the default publisher, so that a short-lived process (a
        management command) does not lose the event it just published.
        """
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):  # a send that times out is a lost event, no more
            asyncio.run_coroutine_threadsafe(self._drain(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._thread_loop = None

    async def _drain(self) -> None:
        self._flush(asyncio.get_running_loop())
        if self._sender is not None and not self._sender.done():
            await self._sender
        close_pools = getattr(self._layer, "close_pools", None)
        if close_pools is not None:  # channels-redis: this loop's connections
            await close_pools()

    # -- choosing the loop that sends --

    def _target_loop(self) -> asyncio.AbstractEventLoop | None:
        if self._in_memory is None:
            self._resolve_layer()
        if self._in_memory:
            return _listener_loops.current
        return self._thread_loop or self._start_thread()

    def _resolve_layer(self) -> None:
        layer = None
        if self.layer_alias in channel_layers:  # (a manager, not a dict: it has no .get)
            layer = channel_layers[self.layer_alias]
        if layer is not None and not isinstance(layer, InMemoryChannelLayer):
            # Our own instance for our own thread: nothing is shared with the server's loop.
            layer = channel_layers.make_backend(self.layer_alias)
        self._layer = layer
        self._in_memory = layer is None or isinstance(layer, InMemoryChannelLayer)

    def _forget_layer(self) -> None:
        old, loop = self._layer, self._thread_loop
        self._in_memory, self._layer = None, None
        close_pools = getattr(old, "close_pools", None)
        if close_pools is not None and loop is not None:
            self._call_on(loop, lambda: loop.create_task(close_pools()))

    def _start_thread(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            if self._thread_loop is not None:
                return self._thread_loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._run_thread, args=(loop,), name="moe-feed-sender", daemon=True
            )
            thread.start()
            self._thread, self._thread_loop = thread, loop
            return loop

    @staticmethod
    def _run_thread(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _call_on(self, loop: asyncio.AbstractEventLoop, callback, *args) -> None:
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed under us (a test's loop, a stopped thread)
            _listener_loops.forget(loop)
            with self._lock:
                if self._armed_on is loop:
                    self._armed_on = None

    # -- on the sending loop --

    def _arm_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(self.interval, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            items, seen, seen_by_client = self._routes, self._seen, self._seen_by_client
            self._routes = deque(maxlen=self.max_route_items)
            self._seen = 0
            self._seen_by_client = {}
            if self._armed_on is loop:
                self._armed_on = None
        if not seen:
            return
        dropped = seen - len(items)
        events = [_route_view(item) for item in items]
        self.stats["route_items"] += len(events)
        self.stats["dropped"] += dropped
        message = {"type": ROUTE, "events": events, "dropped": dropped, "ts": time.time()}
        self._send(
            {
                "type": FEED_MESSAGE_TYPE,
                "text": orjson.dumps(message, default=str).decode(),
                "route": True,
                "dropped_by_client": _dropped_by_client(items, seen_by_client),
            }
        )

    def _send(self, message: dict) -> None:
        if self._layer is None:
            return
        if len(self._outbox) >= MAX_PENDING_SENDS:
            self.stats["send_errors"] += 1
            return
        self._outbox.append(message)
        loop = asyncio.get_running_loop()
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:
            self._sender = loop.create_task(self._send_outbox())

    async def _send_outbox(self) -> None:
        while self._outbox:
            await self._group_send(self._outbox.popleft())

    async def _group_send(self, message: dict) -> None:
        # In memory, the layer the consumers use now (a settings change makes a new one).
        layer = channel_layers[self.layer_alias] if self._in_memory else self._layer
        try:
            await layer.group_send(self.group, message)
            self.stats["messages"] += 1
        except Exception:  # a down Redis must not kill the sender; log and carry on
            errors = self.stats["send_errors"] = self.stats["send_errors"] + 1
            if errors in (1, 10) or errors % 1000 == 0:
                logger.exception("live feed: group_send failed (%d so far)", errors)


def _dropped_by_client(items, seen_by_client: dict) -> dict[str, int]:
    """Per client (string keys: msgpack maps), how many of its decisions the flush left out."""
    if not seen_by_client:
        return {}
    kept: dict = {}
    for item in items:
        client = item.get("client")
        kept[client] = kept.get(client, 0) + 1
    return {
        str(client): seen - kept.get(client, 0)
        for client, seen in seen_by_client.items()
        if seen > kept.get(client, 0)
    }


def _route_view(item: Mapping[str, Any]) -> dict:
    view = {key: item[key] for key in ROUTE_ITEM_KEYS if key in item}
    if "selected_services" in view:
        view["selected_services"] = list(view["selected_services"])
    latency = view.get("latency_ms")
    if isinstance(latency, float):
        view["latency_ms"] = round(latency, 3)
    return view


# A forked child (Celery prefork) inherits the buffers but not the sender thread: start afresh.
_publishers: weakref.WeakSet[FeedPublisher] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for publisher in list(_publishers):
        publisher._reset()


os.register_at_fork(after_in_child=_reset_after_fork)


@receiver(setting_changed, dispatch_uid="telemetry_feed_channel_layers_changed")
def _layers_changed(setting, **kwargs) -> None:
    if setting == "CHANNEL_LAYERS":  # (tests) choose the layer and the sending loop again
        for publisher in list(_publishers):
            publisher._forget_layer()


# --- module-level contract ------------------------------------------------------------------

_publisher: FeedPublisher | None = None
_publisher_lock = threading.Lock()


def get_publisher() -> FeedPublisher:
    """This process's publisher, created on first use."""
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                _publisher = FeedPublisher()
                atexit.register(_publisher.close)
    return _publisher


def publish_event(event_type: str, payload: dict) -> None:
    """Send a feed event (``service_registered``, ``breaker_opened``, ...) to every dashboard."""
    get_publisher().publish_event(event_type, payload)


def publish_routes(items: list[dict], skipped: int = 0) -> None:
    """Add route decisions to the coalesced ``route`` stream (hot path: under a microsecond).

    For a batch, build items for the last :func:`route_items_limit` decisions only and pass
    the number of the others as ``skipped``.
    """
    (_publisher or get_publisher()).publish_routes(items, skipped)


def wants_routes() -> bool:
    """Whether route items could reach anyone (skip building them when this is False)."""
    return (_publisher or get_publisher()).wants_routes()


def route_items_limit() -> int:
    """The most route items one flush carries: building more for a batch is wasted work."""
    return (_publisher or get_publisher()).max_route_items


# --- registry signal receivers (connected in TelemetryConfig.ready) ---------------------------


def on_service_registered(sender, service, created: bool, **kwargs) -> None:
    publish_event(
        "service_registered",
        {
            "service_id": service.service_id,
            "service_type": service.service_type,
            "status": service.status,
            "health": service.health,
            "max_capacity": service.max_capacity,
            "weight": service.weight,
            "created": bool(created),
        },
    )


def on_service_removed(sender, service_id: str, **kwargs) -> None:
    publish_event("service_removed", {"service_id": service_id})

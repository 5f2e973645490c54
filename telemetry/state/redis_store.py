"""Redis backend of :class:`~routing.core.types.LiveStateStore`: live state shared by workers.

Every ASGI and Celery worker that points at the same Redis (and key prefix) sees one set of
in-flight counts, EWMA latencies, error windows, anomaly scores and circuit breakers.

- **Atomic**: every update is one Lua script (see :mod:`telemetry.state.scripts`), so
  concurrent workers never lose an update and a half-open breaker hands out each probe slot
  exactly once. The breaker rules are a port of ``routing/core/breaker.py``, checked against it
  by a property test.
- **One round trip per routed request**: ``record_routed`` / ``record_routed_many`` queue a
  single ``EVALSHA`` (one per 500 requests) on the caller's pipeline when given one, so the
  caller's history ``XADD`` rides along; run that pipeline with :meth:`RedisStateStore.execute`.
  Scripts are invoked with ``EVALSHA`` directly rather than through ``Script.__call__`` on a
  pipeline, because redis-py then sends ``SCRIPT EXISTS`` first: a second round trip on every
  request. A missing script (Redis restarted) is loaded and retried on ``NOSCRIPT``.
- **Fresh enough views**: ``view(snapshot)`` is served from a per-process cache at most
  ``view_max_age_s`` old (20 ms); a refresh is one script call that returns every service's
  state. A breaker transition caused by this process drops the cache at once, one caused by
  another worker is seen on the next refresh, so it is honoured everywhere within
  ``view_max_age_s`` + one round trip (tests require <= 50 ms). This process's own routed and
  finished requests are applied to the cached in-flight counts immediately, each exactly once:
  the scripts that change in-flight counts are numbered in the order Redis runs them, a view
  read returns the last number it holds, so a change is dropped from the overlay once a read
  holds it and never before, whichever connection or thread each one took. So that a request
  does not wait for a refresh, a view past half its age is refreshed on the router's commit
  pipeline (:meth:`queue_refresh`: no round trip of its own) or by a timer
  (:meth:`refresh_ahead`, see routing/api/fast.py); :meth:`view` reads Redis itself only when
  neither happened in time (the first request after a pause).
- **Wall clock**: breaker deadlines are shared between processes (and hosts), so they come from
  ``clock`` (``time.time`` by default), never ``time.monotonic``. Only process-local timers
  (cache age, reconnect interval) use the monotonic clock.
- **Probe slots**: a dispatch is ``allows`` then ``on_dispatch`` in one step. Where the local
  store would still count a dispatch to a breaker with no slot left (it trusts the caller's
  fresh view), this store refuses it: ``record_routed`` returns the refused services (not
  counted in flight) so the caller can route elsewhere. N workers with 20 ms old views thus
  never send more than ``half_open_max_probes`` probes between them.
- **Degraded mode**: when Redis is unreachable (or answers with an error), the store switches to
  an embedded :class:`~routing.core.state.LocalStateStore`, reports ``degraded`` in
  :meth:`status`, never raises to its caller, and tries Redis again at most every
  ``retry_interval_s``; once Redis answers it goes back to shared state. On the way down the
  local store inherits what the last views knew (breakers not closed stay excluded, with a
  fresh backoff; anomaly scores); what happens locally while degraded stays local (in-flight
  counts there expire on their own). A write that timed out may still have reached Redis, so
  it can be counted in both places; its outcome releases it in whichever is in use then.
  The fallback uses the same :class:`~routing.core.state.LeaseConfig`.
- **Leases**: every routed (request, service) pair is a lease that the routed script gives a
  deadline of now + ``lease.ttl(EWMA of the service)`` (read in Redis, so every worker uses the
  shared EWMA); an outcome releases that pair, an unreported one expires at its deadline.

Build clients with :func:`make_client`: short socket timeouts and at most one immediate retry,
so an unreachable Redis costs milliseconds, not redis-py's default multi-second backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import socket
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from routing.core import breaker as br
from routing.core.state import LeaseConfig, LocalStateStore, TransitionCallback
from routing.core.types import BreakerState, FleetSnapshot, LiveView
from telemetry.state.scripts import STATE_CODES, VIEW_FIELDS, build_scripts

log = logging.getLogger(__name__)

# Requests per routed-script call. Redis runs one script at a time, so a 10,000-request batch
# is cut into calls of ~1 ms each (all still queued on one pipeline: one round trip).
ROUTED_CHUNK = 500
# Up to this many dispatches per routed call go as plain arguments (see _dispatch_args).
_PLAIN_DISPATCHES = 8
_VIEW_CACHE_SNAPSHOTS = 4
_MAX_CHANGES = 1024  # own in-flight changes a cached view keeps one by one (see _add_pending)
_STATE_BY_CODE = {code: BreakerState(name) for name, code in STATE_CODES.items()}
_BREAKER_FIELDS = ("st", "cf", "bw", "oc", "ou", "ca", "pi", "ps", "lp", "bf", "bn")
_EMPTY_ROWS = np.zeros((0, 6))
_CLOSED, _OPEN = STATE_CODES["closed"], STATE_CODES["open"]
# Anything that means "Redis cannot serve us now". ResponseError is included on purpose: the
# caller must never see an error because of shared state; it is logged and we fall back.
_UNAVAILABLE = (RedisError, OSError)

Pipeline = Any  # redis.client.Pipeline; typed loosely so callers may pass any redis pipeline


class Refused(list):
    """The ``(request_id, service_id)`` dispatches a breaker refused: what :meth:`execute`
    puts in place of each routed-script reply (a list, so it can be told from other replies
    by type)."""


def make_client(
    url: str, *, socket_timeout: float = 0.25, connect_timeout: float = 0.1
) -> redis.Redis:
    """A Redis client suited to the state store: fails fast, retries a dead socket once.

    The single retry (connection errors only, never timeouts, so a slow script is not run
    twice) lets a pooled connection broken by a Redis restart reconnect transparently.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=0,
    )


def async_client_like(client: redis.Redis) -> Any:
    """An asyncio client for the server ``client`` talks to, with its timeouts and the one
    retry of :func:`make_client`; None for a connection this does not copy (SSL and the like)."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    common = {
        "db": kwargs.get("db", 0),
        "username": kwargs.get("username"),
        "password": kwargs.get("password"),
        "socket_timeout": kwargs.get("socket_timeout"),
        "socket_connect_timeout": kwargs.get("socket_connect_timeout"),
        "retry": AsyncRetry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }
    if pool.connection_class is redis.UnixDomainSocketConnection:
        return aioredis.Redis(unix_socket_path=kwargs["path"], **common)
    if pool.connection_class is not redis.Connection:
        return None
    address = {"host": kwargs.get("host", "localhost"), "port": kwargs.get("port", 6379)}
    pool = aioredis.ConnectionPool(connection_class=_BulkConnection, **address, **common)
    return aioredis.Redis(connection_pool=pool)


# A batch's commit is ~0.3 MB (1,000 items). With the default send buffer (16 KB, grown by
# autotuning) the loop writes it in pieces, each waiting for the next loop iteration, and
# on a loop that routes other batches (~20 ms of CPU each) the round trip took 50-90 ms
# instead of ~10. With this buffer the kernel takes the whole commit in one write and sends
# it on its own as Redis reads (Linux caps it at net.core.wmem_max).
BULK_SEND_BUFFER = 4 << 20


class _BulkConnection(AsyncConnection):
    async def _connect(self):
        await super()._connect()
        sock = self._writer.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BULK_SEND_BUFFER)


def async_client_for_loop(clients: weakref.WeakKeyDictionary, client: redis.Redis) -> Any:
    """The asyncio copy of ``client`` (:func:`async_client_like`) for the running loop, kept
    in ``clients`` (loop -> client: an asyncio connection belongs to the loop that opened it);
    None when ``client``'s connection cannot be copied."""
    loop = asyncio.get_running_loop()
    if loop not in clients:
        clients[loop] = async_client_like(client)
    return clients[loop]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: float) -> str:
    # repr() round-trips every double; Lua and Redis parse it back exactly.
    return repr(float(value))


@dataclass(slots=True)
class _CachedView:
    snapshot: FleetSnapshot
    service_args: list[str]  # the view script's service arguments (see scripts.VIEW)
    view: LiveView | None = None
    states: np.ndarray | None = None  # breaker state codes, to seed the fallback
    fetched_at: float = -math.inf  # time.monotonic() when the refresh started
    # This process's in-flight changes the view does not hold yet, summed by snapshot index,
    pending: dict[int, int] = field(default_factory=dict)
    # and one by one: (number of the change, its sequence number in Redis, deltas by index).
    changes: list[tuple[int, float, dict[int, int]]] = field(default_factory=list)
    added: int = 0  # changes numbered so far
    seq: int = -1  # Redis sequence number the view holds everything up to (scripts.tick)
    refreshes: int = 0  # refreshes begun so far (each one's ticket is its number)
    begun_at_install: int = 0  # refreshes begun when the view was installed
    version: int = 0
    overlay: LiveView | None = None
    overlay_version: int = -1
    # A refresh queued on a commit pipeline (see _Refresh).
    piggyback: _Refresh | None = None


@dataclass(frozen=True, slots=True)
class _Refresh:
    """A view read in progress: what deciding its reply's place needs.

    A change this process applied before the refresh began (number <= ``mark``) reached Redis
    before the read, so the read holds it. One applied later may have reached Redis before or
    after the read: its sequence number against the read's decides. Redis runs scripts one at a
    time, so the numbers give one order for every connection and worker.
    """

    mark: int  # _CachedView.added when it began
    ticket: int  # _CachedView.refreshes after it began
    invalidations: int
    started: float  # time.monotonic()
    now: float  # the clock the read used


@dataclass(slots=True)
class _RoutedCall:
    """One routed-script call: its arguments and what is needed to read its reply."""

    args: list[Any]  # ARGV
    service_ids: list[str]  # script service index i -> service_ids[i - 1]
    pairs: list[tuple[str, str]]  # pair index j -> pairs[j - 1] = (request id, service id)
    queued: tuple | None = None  # the command as queued on a pipeline, to find it there
    guard: tuple[str, int] | None = None  # the rate-limit guard it was queued with


class RedisStateStore:
    """Live per-service state in Redis, shared by every worker. Thread-safe; never raises
    because of Redis (see the module docstring for the fallback)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        breaker_config: br.BreakerConfig | None = None,
        ewma_alpha: float = 0.2,
        lease: LeaseConfig | None = None,
        view_max_age_s: float = 0.02,
        key_prefix: str = "moe:state:",
        clock: Callable[[], float] = time.time,
        error_window: int = 50,
        retry_interval_s: float = 1.0,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        if not 0.0 < ewma_alpha <= 1.0:
            raise ValueError("ewma_alpha must be in (0, 1]")
        if error_window < 1:
            raise ValueError("error_window must be >= 1")
        self.breaker_config = breaker_config or br.BreakerConfig()
        self.ewma_alpha = ewma_alpha
        self.lease = lease or LeaseConfig()
        self.view_max_age_s = view_max_age_s
        self.key_prefix = key_prefix
        self.clock = clock
        self.error_window = error_window
        self.retry_interval_s = retry_interval_s
        self._on_transition = on_transition
        self._client = client
        self._local = LocalStateStore(
            breaker_config=self.breaker_config,
            ewma_alpha=ewma_alpha,
            lease=self.lease,
            clock=clock,
            error_window=error_window,
            on_transition=on_transition,
        )
        sources = build_scripts(self.breaker_config, ewma_alpha, error_window, self.lease)
        self._scripts = {name: client.register_script(src) for name, src in sources.items()}
        # live (hash of every service's state), count, inflight, services: see scripts.py.
        names = ("live", "count", "inflight", "services", "view")
        self._keys = [f"{key_prefix}{name}" for name in names]
        self._lock = threading.Lock()  # caches and pending deltas
        self._refresh_lock = threading.Lock()
        self._recover_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._caches: OrderedDict[int, _CachedView] = OrderedDict()
        self._invalidations = 0  # bumped by _invalidate, so a refresh in flight cannot undo it
        self._queued: weakref.WeakKeyDictionary[Any, list[_RoutedCall]] = (
            weakref.WeakKeyDictionary()
        )
        self._refreshes: weakref.WeakKeyDictionary[Any, list] = weakref.WeakKeyDictionary()
        # event loop -> asyncio client (execute_async)
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._degraded = False
        self._degraded_since: float | None = None
        self._retry_at = 0.0
        self._fallbacks = 0
        self._last_error: str | None = None
        try:  # so the hot path never meets NOSCRIPT; a Redis that is down starts us degraded
            self._load_scripts()
        except _UNAVAILABLE as exc:
            self._fail(exc)

    # -- LiveStateStore -------------------------------------------------------------------

    def view(self, snapshot: FleetSnapshot) -> LiveView:
        """Live state in snapshot order, from a cache at most ``view_max_age_s`` old."""
        if not self._shared():
            return self._local.view(snapshot)
        cache = self._cache_for(snapshot)
        if cache.view is not None and time.monotonic() - cache.fetched_at < self.view_max_age_s:
            return self._with_pending(cache)
        # One thread refreshes; the others keep serving the previous view meanwhile.
        if not self._refresh_lock.acquire(blocking=cache.view is None):
            return self._with_pending(cache)
        try:
            if cache.view is None or time.monotonic() - cache.fetched_at >= self.view_max_age_s:
                self._refresh(cache)
        except _UNAVAILABLE as exc:
            self._fail(exc)
            return self._local.view(snapshot)
        finally:
            self._refresh_lock.release()
        return self._with_pending(cache)

    def record_routed(
        self, request_id: str, service_ids: Sequence[str], *, pipe: Pipeline | None = None
    ) -> tuple[str, ...]:
        """Count the request in flight on each service and take a breaker slot for it.

        Returns the services whose breaker refused the dispatch (open, or half-open with every
        probe slot taken): those are not counted, and the caller should route elsewhere.
        With ``pipe``, the script is only queued on it (nothing is sent) and this returns
        ``()``; :meth:`execute` runs the pipeline and reports refusals.
        """
        refused = self.record_routed_many([(request_id, service_ids)], pipe=pipe)
        return tuple(service_id for _, service_id in refused)

    def record_routed_many(
        self,
        items: Sequence[tuple[str, Sequence[str]]],
        *,
        pipe: Pipeline | None = None,
        guard: tuple[str, int] | None = None,
        forced: Collection[str] = (),
    ) -> list[tuple[str, str]]:
        """:meth:`record_routed` for many requests at once: one round trip in all.

        Returns the refused ``(request_id, service_id)`` pairs (always ``[]`` with ``pipe``).
        The requests in ``forced`` were routed in panic (every able service's breaker open):
        their dispatches are taken whatever the breakers say (a half-open breaker with a free
        probe slot still gives it one), as the local store takes them.
        ``guard`` (only with ``pipe``): a rate-limit counter key and its limit; when the
        counter is over the limit as the script runs, nothing is dispatched (the caller
        increments the counter earlier in the same MULTI/EXEC, see scripts.GUARDED).
        """
        if not items:
            return []
        if not self._shared():
            self._routed_locally(items)
            return []
        calls = self._routed_calls(items, self.clock(), forced)
        if not calls:  # no request named any service
            return []
        if pipe is not None:
            self._queue(pipe, calls, guard)
            self._queued.setdefault(pipe, []).extend(calls)
            return []
        try:
            if len(calls) == 1:  # the usual case: one script call, no pipeline needed
                replies = [self._eval("routed", self._keys, calls[0].args)]
            else:
                own = self._client.pipeline(transaction=False)
                self._queue(own, calls)
                replies = self._run_pipeline(own)
        except _UNAVAILABLE as exc:
            self._fail(exc)
            self._routed_locally(items)
            return []
        refused: list[tuple[str, str]] = []
        for call, reply in zip(calls, replies, strict=True):
            refused.extend(self._absorb_routed(call, reply))
        return refused

    def record_outcome(
        self, request_id: str, service_id: str, success: bool, latency_ms: float | None
    ) -> BreakerState | None:
        """Release the request on the service (if still in flight) and count the outcome in
        the EWMA, the error window and the breaker, atomically. Returns the new breaker state
        when this outcome changed it, else None."""
        if self._shared():
            try:
                return self._outcome_shared(request_id, service_id, success, latency_ms)
            except _UNAVAILABLE as exc:
                self._fail(exc)
        return self._local.record_outcome(request_id, service_id, success, latency_ms)

    def set_anomaly(self, service_id: str, score: float) -> None:
        score = min(1.0, max(0.0, float(score)))
        if self._shared():
            try:
                self._eval("anomaly", self._keys, [service_id, _num(score)])
                self._invalidate()
                return
            except _UNAVAILABLE as exc:
                self._fail(exc)
        self._local.set_anomaly(service_id, score)

    # -- the caller's pipeline ---------------------------------------------------------------

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """A pipeline on this store's client, for :meth:`execute` (``transaction``: sent as
        one MULTI/EXEC, still one round trip; needed by a rate-limit guard)."""
        return self._client.pipeline(transaction=transaction)

    def queue_guarded(self, pipe: Pipeline, guard: tuple[str, int], commands: list) -> None:
        """Queue ``commands`` (argument tuples) to run only while ``guard``'s counter is within
        its limit (scripts.GUARDED). A NOSCRIPT reply is retried by :meth:`execute`."""
        args: list[Any] = []
        for command in commands:
            args += (len(command), *command)
        calls = self._queued.get(pipe)
        stack = pipe.command_stack
        last = calls[-1] if calls else None
        if last is not None and last.guard == guard and stack and stack[-1][0] is last.queued:
            # Ride on the routed call queued just before, behind the same guard: the routed
            # script runs them after its dispatches (one script call per route, not two).
            merged = (*last.queued, *args)
            stack[-1] = (merged, stack[-1][1])
            last.queued = merged
            return
        pipe.evalsha(self._scripts["guarded"].sha, 1, guard[0], guard[1], *args)

    def refresh_ahead(self, snapshot: FleetSnapshot) -> None:
        """Refresh ``snapshot``'s cached view if it is past half its maximum age (a timer's
        call, so a worker with a request every few milliseconds never refreshes on one)."""
        if not self._shared() or len(snapshot) == 0:
            return
        cache = self._cache_for(snapshot)
        if cache.view is None or time.monotonic() - cache.fetched_at < self.view_max_age_s / 2:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            if cache.piggyback is None:
                self._refresh(cache)
        except _UNAVAILABLE as exc:
            self._fail(exc)
        finally:
            self._refresh_lock.release()

    async def refresh_ahead_async(self, snapshot: FleetSnapshot) -> None:
        """:meth:`refresh_ahead` awaited on the running loop (see :meth:`execute_async`): a
        timer on the loop must not block it while Redis runs another worker's batch."""
        if not self._shared() or len(snapshot) == 0:
            return
        if self._async_client() is None:
            await asyncio.to_thread(self.refresh_ahead, snapshot)
            return
        pipe = self._client.pipeline(transaction=False)
        if self.queue_refresh(pipe, snapshot):
            await self.execute_async(pipe)

    def queue_refresh(self, pipe: Pipeline, snapshot: FleetSnapshot) -> bool:
        """Refresh ``snapshot``'s cached view on ``pipe`` when it is past half its maximum
        age: a busy worker then never reads Redis for a view on the request path (the
        refresh rides on a commit); an idle one still refreshes in :meth:`view` once the
        view is ``view_max_age_s`` old. Queue it before the routed calls: the view then
        reads state without them, and their own in-flight deltas apply on top."""
        if not self._shared() or len(snapshot) == 0:
            return False
        cache = self._cache_for(snapshot)
        started = time.monotonic()
        if cache.view is None or started - cache.fetched_at < self.view_max_age_s / 2:
            return False
        if not self._refresh_lock.acquire(blocking=False):
            return False  # another thread is refreshing it now
        try:
            with self._lock:
                if cache.piggyback is not None:
                    return False
                cache.piggyback = refresh = self._begin(cache, started)
        finally:
            self._refresh_lock.release()
        pipe.evalsha(
            self._scripts["view"].sha,
            len(self._keys),
            *self._keys,
            _num(refresh.now),
            *cache.service_args,
        )
        self._refreshes.setdefault(pipe, []).append((pipe.command_stack[-1][0], cache))
        return True

    def execute(self, pipe: Pipeline) -> list[Any] | None:
        """Run ``pipe`` (one round trip) and finish the routed calls queued on it.

        The replies of this store's commands are replaced by :class:`Refused` lists of
        ``(request_id, service_id)`` pairs; other replies are returned as Redis sent them
        (errors as exception objects, never raised). If Redis is unreachable, the queued routed
        requests are counted on the local fallback instead and this returns None, so the
        caller can fall back for its own commands too.
        """
        queued = self._take_queued(pipe)
        try:
            results = self._run_pipeline(pipe)
        except _UNAVAILABLE as exc:
            return self._unavailable(pipe, queued, exc)
        return self._finish(results, queued)

    async def execute_async(self, pipe: Pipeline) -> list[Any] | None:
        """:meth:`execute` on the running event loop: the round trip goes through an asyncio
        client of the same server, so the loop routes other requests while this one waits and
        no thread contends for the GIL (the batch path's commit waits ~5-10 ms for its
        scripts). Without such a client (an SSL or otherwise unusual connection), the sync
        :meth:`execute` runs in a thread instead."""
        client = self._async_client()
        if client is None:
            return await asyncio.to_thread(self.execute, pipe)
        queued = self._take_queued(pipe)
        try:
            results = await self._run_pipeline_async(client, pipe)
        except _UNAVAILABLE as exc:
            return self._unavailable(pipe, queued, exc)
        return self._finish(results, queued)

    def _take_queued(self, pipe: Pipeline) -> tuple[list, list]:
        """The routed calls and view refreshes queued on ``pipe``, with their positions."""
        calls = self._queued.pop(pipe, [])
        refreshes = self._refreshes.pop(pipe, [])
        stack = pipe.command_stack
        positions: list[tuple[int, _RoutedCall]] = []
        for call in calls:
            # The pipeline may have been run elsewhere and reused since: match by identity.
            pos = next((k for k, (args, _) in enumerate(stack) if args is call.queued), None)
            if pos is not None:
                positions.append((pos, call))
        views = []
        for queued, cache in refreshes:
            pos = next((k for k, (args, _) in enumerate(stack) if args is queued), None)
            views.append((pos, cache))
        return positions, views

    def _unavailable(self, pipe: Pipeline, queued: tuple[list, list], exc: BaseException) -> None:
        positions, views = queued
        pipe.reset()
        self._fail(exc)
        for _, call in positions:
            self._routed_locally(_group_pairs(call.pairs))
        for _, cache in views:
            cache.piggyback = None
        return None

    def _finish(self, results: list[Any], queued: tuple[list, list]) -> list[Any]:
        positions, views = queued
        for pos, cache in views:
            reply = results[pos] if pos is not None else None
            refresh, cache.piggyback = cache.piggyback, None
            if refresh is not None and reply is not None and not isinstance(reply, Exception):
                self._install(cache, reply, refresh)
            if pos is not None:
                results[pos] = None
        for pos, call in positions:
            results[pos] = self._absorb_routed(call, results[pos])
        return results

    # -- operators, API, tests (same as LocalStateStore) -----------------------------------

    def breaker_record(self, service_id: str) -> br.BreakerRecord:
        if self._shared():
            try:
                fields = [f"{service_id}|{name}" for name in _BREAKER_FIELDS]
                values = self._client.hmget(self._keys[0], fields)
                return _breaker_record(values)
            except _UNAVAILABLE as exc:
                self._fail(exc)
        return self._local.breaker_record(service_id)

    def force_breaker(self, service_id: str, state: BreakerState) -> None:
        state = BreakerState(state)
        if self._shared():
            try:
                args = [_num(self.clock()), state.value, service_id]
                old, new = self._eval("force", self._keys, args)
                self._invalidate()
                self._notify([(service_id, BreakerState(_text(old)), BreakerState(_text(new)))])
                return
            except _UNAVAILABLE as exc:
                self._fail(exc)
        self._local.force_breaker(service_id, state)

    def remove_service(self, service_id: str) -> None:
        """Forget a deregistered service (its in-flight requests are dropped too)."""
        if self._shared():
            try:
                self._eval("remove", self._keys, [service_id])
                self._invalidate()
                return
            except _UNAVAILABLE as exc:
                self._fail(exc)
        self._local.remove_service(service_id)

    def in_flight_requests(self) -> int:
        """Distinct request ids in flight on any service."""
        if self._shared():
            try:
                return int(self._eval("inflight_requests", self._keys, [_num(self.clock())]))
            except _UNAVAILABLE as exc:
                self._fail(exc)
        return self._local.in_flight_requests()

    def snapshot_state(self) -> dict[str, dict[str, object]]:
        """Live state of every known service, for the API and the dashboard."""
        if self._shared():
            try:
                now = self.clock()
                reply = self._eval("snapshot", self._keys, [_num(now)])
                service_ids = [_text(s) for s in reply[1:]]
                rows = self._rows(reply[0], len(service_ids), now)
                return {
                    service_id: {
                        "in_flight": int(row[0]),
                        "ewma_latency_ms": float(row[1]),
                        "error_rate": float(row[2]),
                        "breaker_state": _STATE_BY_CODE[int(row[5])].value,
                        "breaker_allows": bool(row[4]),
                        "anomaly": float(row[3]),
                    }
                    for service_id, row in zip(service_ids, rows, strict=True)
                }
            except _UNAVAILABLE as exc:
                self._fail(exc)
        return self._local.snapshot_state()

    @property
    def on_transition(self) -> TransitionCallback | None:
        """Called as ``(service_id, old, new)`` for breaker transitions this process causes
        (through Redis or, while degraded, locally)."""
        return self._on_transition

    @on_transition.setter
    def on_transition(self, callback: TransitionCallback | None) -> None:
        self._on_transition = callback
        self._local.on_transition = callback

    # -- health ----------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the local fallback serves every call."""
        return self._degraded

    @property
    def fallback(self) -> LocalStateStore:
        """The embedded local store used while degraded."""
        return self._local

    def status(self) -> dict[str, object]:
        """For ``/api/v1/health``."""
        return {
            "backend": "redis",
            "status": "degraded" if self._degraded else "ok",
            "degraded": self._degraded,
            "shared": not self._degraded,
            "degraded_since": self._degraded_since,
            "fallbacks": self._fallbacks,
            "last_error": self._last_error,
            "retry_interval_s": self.retry_interval_s,
            "key_prefix": self.key_prefix,
        }

    # -- shared / degraded switching ----------------------------------------------------------

    def _shared(self) -> bool:
        """Whether this call should go to Redis; probes Redis at most every retry interval."""
        if not self._degraded:
            return True
        if time.monotonic() < self._retry_at or not self._recover_lock.acquire(blocking=False):
            return False
        try:
            if not self._degraded:
                return True
            try:
                self._client.ping()
                self._load_scripts()
            except _UNAVAILABLE as exc:
                self._retry_at = time.monotonic() + self.retry_interval_s
                self._last_error = f"{type(exc).__name__}: {exc}"
                return False
            with self._lock:  # Redis may have restarted: its sequence numbers with it
                for cache in self._caches.values():
                    cache.seq = -1
            self._invalidate()
            self._degraded = False
            self._degraded_since = None
            log.warning("Redis reachable again: live state is shared again")
            return True
        finally:
            self._recover_lock.release()

    def _fail(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_interval_s
        self._last_error = f"{type(exc).__name__}: {exc}"
        with self._state_lock:
            if self._degraded:
                return
            self._degraded = True
            self._degraded_since = self.clock()
            self._fallbacks += 1
        log.warning("Redis unavailable (%s): live state falls back to local", self._last_error)
        self._seed_fallback()

    def _seed_fallback(self) -> None:
        """Carry what the last shared views knew into local state: a service whose breaker was
        open (or half-open) stays excluded, with a fresh backoff, and anomaly scores stay."""
        with self._lock:
            caches = [c for c in reversed(self._caches.values()) if c.view is not None]
        local = self._local
        seen: set[str] = set()
        local.on_transition = None  # not real transitions
        try:
            for cache in caches:
                rows = zip(
                    cache.snapshot.service_ids, cache.states, cache.view.anomaly, strict=True
                )
                for service_id, code, anomaly in rows:
                    if service_id in seen:
                        continue
                    seen.add(service_id)
                    if anomaly > 0:
                        local.set_anomaly(service_id, float(anomaly))
                    state = _STATE_BY_CODE[int(code)]
                    if state is not BreakerState.CLOSED and (
                        local.breaker_record(service_id).state is BreakerState.CLOSED
                    ):
                        local.force_breaker(service_id, state)
        finally:
            local.on_transition = self._on_transition

    # -- Redis calls ----------------------------------------------------------------------

    def _load_scripts(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        for script in self._scripts.values():
            pipe.script_load(script.script)
        for script, sha in zip(self._scripts.values(), pipe.execute(), strict=True):
            script.sha = _text(sha)

    def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        try:
            return self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            self._load_scripts()
            return self._client.evalsha(script.sha, len(keys), *keys, *args)

    def _run_pipeline(self, pipe: Pipeline) -> list[Any]:
        """Execute once; commands that hit NOSCRIPT (Redis restarted) are re-run after loading
        the scripts: NOSCRIPT means the command did nothing, so re-running is safe."""
        stack = list(pipe.command_stack)
        results = pipe.execute(raise_on_error=False)
        missing = [k for k, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            self._load_scripts()
            for k in missing:
                args, options = stack[k]
                results[k] = self._client.execute_command(*args, **options)
        return results

    async def _run_pipeline_async(self, client: Any, pipe: Pipeline) -> list[Any]:
        """:meth:`_run_pipeline` with ``pipe``'s commands sent by the asyncio ``client``."""
        stack = list(pipe.command_stack)
        pipe.reset()
        apipe = client.pipeline(transaction=pipe.transaction)
        for args, options in stack:
            apipe.execute_command(*args, **options)
        results = await apipe.execute(raise_on_error=False)
        missing = [k for k, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            self._load_scripts()
            for k in missing:
                args, options = stack[k]
                results[k] = await client.execute_command(*args, **options)
        return results

    def _async_client(self) -> Any:
        return async_client_for_loop(self._async_clients, self._client)

    def _routed_calls(
        self, items: Sequence[tuple[str, Sequence[str]]], now: float, forced: Collection[str] = ()
    ) -> list[_RoutedCall]:
        """The routed-script calls for ``items``, ROUTED_CHUNK requests per call; a forced
        request's service indices are negative (see scripts.ROUTED)."""
        calls = []
        for start in range(0, len(items), ROUTED_CHUNK):
            index: dict[str, int] = {}
            indices: list[int] = []
            pairs: list[tuple[str, str]] = []
            for request_id, service_ids in items[start : start + ROUTED_CHUNK]:
                sign = -1 if forced and request_id in forced else 1
                for service_id in service_ids:
                    i = index.get(service_id)
                    if i is None:
                        i = index[service_id] = len(index) + 1
                    indices.append(sign * i)
                    pairs.append((request_id, service_id))
            if pairs:
                args = [_num(now), *_dispatch_args(list(index), pairs, indices)]
                calls.append(_RoutedCall(args, list(index), pairs))
        return calls

    def _queue(
        self, pipe: Pipeline, calls: list[_RoutedCall], guard: tuple[str, int] | None = None
    ) -> None:
        sha = self._scripts["routed"].sha
        keys, head = self._keys, []
        if guard is not None:
            keys, head = [*self._keys, guard[0]], [guard[1]]
        for call in calls:
            pipe.evalsha(sha, len(keys), *keys, *head, *call.args)
            call.queued = pipe.command_stack[-1][0]
            call.guard = guard

    def _absorb_routed(self, call: _RoutedCall, reply: Any) -> Refused:
        """Read a routed-script reply: apply own in-flight deltas, report transitions."""
        if isinstance(reply, Exception):
            # Not a connection problem (those raise); a script error. Count nothing.
            log.error("routed script failed: %s", reply)
            return Refused()
        refused = Refused()
        if len(reply) == 1 and _text(reply[0]) == "x":  # guarded, over the rate limit
            return refused
        transitions = []
        seq = math.inf  # (a reply without one: only a later refresh's start settles it)
        for entry in reply:
            kind, *fields = _text(entry).split(":")
            if kind == "s":
                seq = int(fields[0])
            elif kind == "r":
                refused.append(call.pairs[int(fields[0]) - 1])
            else:
                service_id = call.service_ids[int(fields[0]) - 1]
                transitions.append((service_id, BreakerState(fields[1]), BreakerState(fields[2])))
        counted = call.pairs
        if refused:
            dropped = set(refused)
            counted = [pair for pair in call.pairs if pair not in dropped]
            # A refusal proves this process's view stale (a breaker changed elsewhere): the
            # next view() reads Redis, so a retry routes on what is true now.
            self._invalidate()
        self._add_pending([service_id for _, service_id in counted], +1, seq)
        if transitions:
            self._invalidate()
            self._notify(transitions)
        return refused

    def _outcome_shared(
        self, request_id: str, service_id: str, success: bool, latency_ms: float | None
    ) -> BreakerState | None:
        latency = ""
        if latency_ms is not None and float(latency_ms) >= 0:
            latency = _num(latency_ms)
        args = [_num(self.clock()), request_id, "1" if success else "0", latency, service_id]
        released, old, new, seq = self._eval("outcome", self._keys, args)
        if int(released):
            self._add_pending([service_id], -1, int(seq))
        old, new = BreakerState(_text(old)), BreakerState(_text(new))
        if new is old:
            return None
        self._invalidate()
        self._notify([(service_id, old, new)])
        return new

    def _rows(self, reply: Any, n: int, now: float) -> np.ndarray:
        """Parse view-script numbers into rows of in flight, EWMA, error rate, anomaly,
        breaker allows (1/0), state code. The error rate is failures / outcomes and
        ``allows`` is ``breaker.allows`` vectorised: the same arithmetic as the local store."""
        if n == 0:
            return _EMPTY_ROWS
        raw = np.array(_text(reply).split(","), dtype=np.float64).reshape(n, VIEW_FIELDS)
        in_flight, ewma, failures, outcomes, anomaly, code, open_until, probes, last_probe = raw.T
        rate = np.divide(failures, outcomes, out=np.zeros(n), where=outcomes > 0)
        cfg = self.breaker_config
        allows = np.where(
            code == _CLOSED,
            True,
            np.where(
                code == _OPEN,
                now >= open_until,
                (probes < cfg.half_open_max_probes) | (now - last_probe >= cfg.probe_timeout_s),
            ),
        )
        return np.column_stack((in_flight, ewma, rate, anomaly, allows, code))

    # -- view cache -------------------------------------------------------------------------

    def _cache_for(self, snapshot: FleetSnapshot) -> _CachedView:
        key = id(snapshot)
        with self._lock:
            cache = self._caches.get(key)
            if cache is None or cache.snapshot is not snapshot:
                cache = _CachedView(snapshot, _service_args(snapshot.service_ids))
                self._caches[key] = cache
                while len(self._caches) > _VIEW_CACHE_SNAPSHOTS:
                    self._caches.popitem(last=False)
            else:
                self._caches.move_to_end(key)
            return cache

    def _begin(self, cache: _CachedView, started: float) -> _Refresh:
        """Number a refresh of ``cache`` about to be sent (call with ``_lock`` held)."""
        cache.refreshes += 1
        return _Refresh(cache.added, cache.refreshes, self._invalidations, started, self.clock())

    def _refresh(self, cache: _CachedView) -> None:
        started = time.monotonic()
        with self._lock:
            refresh = self._begin(cache, started)
        reply = None
        if len(cache.snapshot):
            args = [_num(refresh.now), *cache.service_args]
            reply = self._eval("view", self._keys, args)
        self._install(cache, reply, refresh)

    def _install(self, cache: _CachedView, reply: Any, refresh: _Refresh) -> None:
        """A view-script reply -> the cached view (fresh as of ``refresh.started``), unless a
        view read after it is installed already."""
        n = len(cache.snapshot)
        seq, rows = 0, _EMPTY_ROWS
        if n:
            head, _, body = _text(reply).partition(";")
            seq, rows = int(head), self._rows(body, n, refresh.now)
        arrays = (rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy(), rows[:, 3].copy())
        allows = rows[:, 4] != 0
        for array in (*arrays, allows):
            array.flags.writeable = False
        view = LiveView(*arrays, breaker_allows=allows)
        with self._lock:
            if refresh.ticket <= cache.begun_at_install and seq < cache.seq:
                # Both were in the air at once and Redis ran this read first: keep the later
                # view. (A refresh begun after the install that reads a lower number means
                # Redis lost the counter, e.g. it restarted: that read is the truth.)
                return
            cache.view = view
            cache.states = rows[:, 5].copy()
            cache.seq = seq
            cache.begun_at_install = cache.refreshes
            # Keep the changes the read cannot hold: applied after it began, run after it.
            kept = [c for c in cache.changes if c[0] > refresh.mark and c[1] > seq]
            cache.changes = kept
            pending: dict[int, int] = {}
            for _, _, deltas in kept:
                for i, delta in deltas.items():
                    pending[i] = pending.get(i, 0) + delta
            cache.pending = pending
            # Invalidated while reading (a transition of ours may postdate what we read)?
            # Then serve this view once but read again next time.
            fresh = refresh.invalidations == self._invalidations
            cache.fetched_at = refresh.started if fresh else -math.inf
            cache.version += 1

    def _with_pending(self, cache: _CachedView) -> LiveView:
        with self._lock:
            view = cache.view
            if not cache.pending:
                return view
            if cache.overlay_version == cache.version and cache.overlay is not None:
                return cache.overlay
            in_flight = view.in_flight.copy()
            for i, delta in cache.pending.items():
                in_flight[i] = max(0.0, in_flight[i] + delta)
            in_flight.flags.writeable = False
            cache.overlay = dataclasses.replace(view, in_flight=in_flight)
            cache.overlay_version = cache.version
            return cache.overlay

    def _add_pending(self, service_ids: Sequence[str], delta: int, seq: float) -> None:
        """Apply this process's own change (Redis sequence number ``seq``) to every cached
        view that does not hold it yet."""
        if not service_ids:
            return
        with self._lock:
            for cache in self._caches.values():
                if seq <= cache.seq:
                    continue  # a view read after the change reached Redis holds it
                index = cache.snapshot.index
                deltas: dict[int, int] = {}
                for service_id in service_ids:
                    i = index.get(service_id)
                    if i is not None:
                        deltas[i] = deltas.get(i, 0) + delta
                if not deltas:
                    continue
                pending = cache.pending
                for i, d in deltas.items():
                    pending[i] = pending.get(i, 0) + d
                cache.added += 1
                cache.changes.append((cache.added, seq, deltas))
                if len(cache.changes) > _MAX_CHANGES:
                    # Nothing refreshes this view (the process only takes outcomes): keep
                    # the sum as one change, as if applied now. A refresh in the air then
                    # keeps all of it or none; the next one settles it.
                    cache.changes = [
                        (cache.added, max(c[1] for c in cache.changes), pending.copy())
                    ]
                cache.version += 1

    def _invalidate(self) -> None:
        """Make every cached view stale, so the next view() reads Redis."""
        with self._lock:
            self._invalidations += 1
            for cache in self._caches.values():
                cache.fetched_at = -math.inf

    # -- local fallback -------------------------------------------------------------------

    def _routed_locally(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        self._local.record_routed_many(items)

    def _notify(self, transitions: list[tuple[str, BreakerState, BreakerState]]) -> None:
        callback = self._on_transition
        if callback is None:
            return
        for service_id, old, new in transitions:
            if new is not old:
                callback(service_id, old, new)


def _group_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for request_id, service_id in pairs:
        grouped.setdefault(request_id, []).append(service_id)
    return list(grouped.items())


def _joinable(values: Sequence[str]) -> str | None:
    """``values`` joined by newlines, or None when that would not split back the same."""
    text = "\n".join(values)
    if text.count("\n") != len(values) - 1 or not all(values):
        return None
    return text


def _dispatch_args(
    service_ids: list[str], pairs: list[tuple[str, str]], indices: list[int]
) -> list[Any]:
    """The routed script's dispatch arguments (see scripts.ROUTED for both encodings): a few
    dispatches (one route) as plain arguments, which the script reads without the pattern
    matching the joined encoding needs (~7 us less of Redis CPU per route); a batch joined."""
    if len(pairs) <= _PLAIN_DISPATCHES:
        services = request_ids = None
    else:
        services = _joinable(service_ids)
        request_ids = _joinable([request_id for request_id, _ in pairs])
    if services is not None and request_ids is not None:
        return ["j", services, request_ids, ",".join(map(str, indices))]
    flat: list[Any] = []
    for (request_id, _), i in zip(pairs, indices, strict=True):
        flat += (request_id, i)
    return ["l", len(service_ids), *service_ids, len(pairs), *flat]


def _service_args(service_ids: Sequence[str]) -> list[str]:
    text = _joinable(service_ids)
    return [text] if text is not None else ["", *service_ids]


def _breaker_record(values: Sequence[Any]) -> br.BreakerRecord:
    st, cf, bw, oc, ou, ca, pi, ps, lp, bf, bn = (None if v is None else _text(v) for v in values)
    return br.BreakerRecord(
        state=BreakerState(st or BreakerState.CLOSED.value),
        consecutive_failures=int(float(cf or 0)),
        window=tuple(int(c) for c in (bw or "")),
        open_count=int(float(oc or 0)),
        open_until=float(ou or 0.0),
        closed_at=float(ca or 0.0),
        probes_in_flight=int(float(pi or 0)),
        probe_successes=int(float(ps or 0)),
        last_probe_at=float(lp or 0.0),
        baseline_failures=float(bf or 0.0),
        baseline_results=float(bn or 0.0),
    )

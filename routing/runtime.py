"""The per-worker router: the Django side of the routing core.

One :class:`Router` per process holds the cached fleet snapshot (rebuilt only when the
registry version changes), the active overrides, the engine with the active gate version, the
live-state store, the history buffer and the metrics. A routed request touches no ORM: the
version row is polled at most every ``MOE_REGISTRY_POLL_SECONDS`` (and at once after a change
made in this process), and with Redis a request's state update, history record, pending-outcome
entry and metrics go out in one pipelined round trip.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import replace
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from django.conf import settings
from django.db import DatabaseError
from redis.commands.core import CoreCommands

from routing.core.context import fleet_context
from routing.core.engine import EngineConfig, RoutingEngine
from routing.core.fleet import TypeRule
from routing.core.learning import LearnerConfig
from routing.core.objective import Objective
from routing.core.types import (
    BreakerState,
    Decision,
    FleetSnapshot,
    LiveView,
    RouteRequest,
    build_many,
)
from routing.errors import (
    InvalidRoutingInput,
    LiveStateUnavailable,
    OutcomeAlreadyReported,
    RegistryUnavailable,
    UnknownRequest,
)
from routing.history import HistoryWriter, amend_record, decision_records, outcome_record
from routing.metrics import RoutingMetrics
from routing.overrides import ActiveOverride, resolve_override, usable
from routing.request_ids import WORKER_PREFIX_DIGITS
from routing.shared_cooldowns import CooldownPublisher
from routing.shared_learning import LearningFollower, queue_shared_outcome

if TYPE_CHECKING:
    from moe_project.throttling import RateGuard

logger = logging.getLogger(__name__)

PENDING_KEY = "moe:pending:"
REPORT_ANY_OUTCOME_PERMISSION = "routing.report_any_outcome"
# Pending entries let an outcome find its decision before the history flush wrote it; after
# MOE_PENDING_TTL_SECONDS (or past this many) the outcome finds it in the database instead.
PENDING_MAX_LOCAL = 200_000
# A ramping service keeps at least this share, so it is tried from the start.
SLOW_START_FLOOR = 0.05


class Routed(NamedTuple):
    """A decision plus what the API reports about it."""

    request_id: str
    decision: Decision
    override_id: int | None
    top_k: int | None


# A pending entry is "<reported>\n<selected>\n<owner>\n<complexity>\n<type>" (services' ids
# comma-separated; the owner is the routing client's id, empty when it was routed in this
# process, e.g. by the proxy, which reports its own outcomes). Claiming service ARGV[1]'s
# outcome for caller ARGV[2] ("*": any caller) answers the entry without its first line; "#"
# when the caller is not its owner (nothing else is said: not even whether the service was
# selected); "!" when that service already reported; "?" + the entry when it was not selected.
# A batch item without its own key (KEYS[1]) reads entry ARGV[3] of its batch's value
# (KEYS[2], see pending_blob); the claim then writes the item's own key, with the batch's
# remaining time to live.
_MARK_REPORTED = """
local v = redis.call('GET', KEYS[1])
local ttl = nil
if not v and KEYS[2] then
  local i = tonumber(ARGV[3])
  local n = tonumber(redis.call('GETRANGE', KEYS[2], 0, 7), 16)
  if not n or i >= n then return false end
  local t = redis.call('GETRANGE', KEYS[2], 8 + i * 8, 23 + i * 8)
  local s, e = tonumber(string.sub(t, 1, 8), 16), tonumber(string.sub(t, 9, 16), 16)
  if not s or not e or e <= s then return false end
  v = redis.call('GETRANGE', KEYS[2], s, e - 1)
  ttl = redis.call('PTTL', KEYS[2])
end
if not v then return false end
local nl = string.find(v, '\\n', 1, true)
local reported = string.sub(v, 1, nl - 1)
local rest = string.sub(v, nl + 1)
local selected, owner = string.match(rest, '^([^\\n]*)\\n([^\\n]*)')
if ARGV[2] ~= '*' and owner ~= ARGV[2] then return '#' end
local sid = ',' .. ARGV[1] .. ','
if not string.find(',' .. selected .. ',', sid, 1, true) then return '?' .. rest end
if string.find(',' .. reported .. ',', sid, 1, true) then return '!' end
if reported == '' then reported = ARGV[1] else reported = reported .. ',' .. ARGV[1] end
if ttl == nil then
  redis.call('SET', KEYS[1], reported .. '\\n' .. rest, 'KEEPTTL')
elseif ttl > 0 then
  redis.call('SET', KEYS[1], reported .. '\\n' .. rest, 'PX', ttl)
else
  redis.call('SET', KEYS[1], reported .. '\\n' .. rest)
end
return rest
"""


def pending_value(selected, request_type: str, complexity: float, owner: str = "") -> str:
    return f"\n{','.join(selected)}\n{owner}\n{complexity!r}\n{request_type}"


def owner_key(client: int | str | None) -> str:
    """The owner written in a pending entry: the routing client's id ("" for none: routed in
    this process, which reports for itself). An id with a newline (the entry's separator) or
    "*" (any caller), which no user model here makes, is written as "" too."""
    if client is None:
        return ""
    key = str(client)
    return "" if "\n" in key or key == "*" else key


def may_report_any_outcome(user) -> bool:
    """Operators and holders of ``routing.report_any_outcome`` (a collector that reports for
    the clients, say) may report any request's outcome; other clients only their own."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.backends import ModelBackend

    from registry.permissions import is_operator

    if user is None:
        return True
    model = get_user_model()
    if not isinstance(user, model):
        # The hot path's stateless token user carries no permissions: ask the database (only
        # for a report on someone else's request, so never on the common path).
        user = model.objects.filter(pk=user.pk).first()
        if user is None:  # deleted since its token was issued
            return False
    return is_operator(user) or ModelBackend().has_perm(user, REPORT_ANY_OUTCOME_PERMISSION)


# A batch's items are "<base>-<index in hex>"; a single route's id has no "-" (see _new_id).
def batch_base(request_id: str) -> str | None:
    base, dash, _ = request_id.rpartition("-")
    return base if dash else None


def batch_index(request_id: str) -> int | None:
    """The item's position in its batch, or None (not a batch id, or not one we made: only
    the canonical hex form counts, so no two ids name the same entry)."""
    base, dash, index = request_id.rpartition("-")
    if not dash or not base or not index:
        return None
    try:
        i = int(index, 16)
    except ValueError:
        return None
    return i if index == f"{i:x}" else None


def pending_blob(
    routed: Sequence[Routed], requests: Sequence[RouteRequest], owner: str = ""
) -> bytes:
    """A batch's pending entries as one Redis value: one SET instead of a thousand (the
    thousand SETs cost Redis ~4.5 ms per batch, a third of its work; this costs ~0.05).

    Layout: the item count and then n + 1 offsets, each 8 hex digits, then the entries
    (``pending_value``, empty for an item without a service) back to back: entry i is the
    bytes between offsets i and i + 1. ``_MARK_REPORTED`` reads one entry with GETRANGE and
    copies it to the item's own key on its first report."""
    values = [
        pending_value(r.decision.selected, q.request_type, q.complexity, owner)
        if r.decision.selected
        else ""
        for r, q in zip(routed, requests, strict=True)
    ]
    text = "".join(values)
    if text.isascii():
        body, lengths = text.encode(), map(len, values)
    else:
        encoded = [v.encode() for v in values]
        body, lengths = b"".join(encoded), map(len, encoded)
    n = len(values)
    offsets = itertools.accumulate(lengths, initial=(n + 2) * 8)
    return f"{n:08x}{''.join([f'{o:08x}' for o in offsets])}".encode() + body


def engine_config() -> EngineConfig:
    """The engine's configuration from settings (type rule, objective, learning)."""
    return EngineConfig(
        default_top_k=settings.MOE_DEFAULT_TOP_K,
        device=settings.MOE_DEVICE,
        p2c_seed=None if settings.MOE_ROUTING_SEED < 0 else settings.MOE_ROUTING_SEED,
        panic_when_all_breakers_open=settings.MOE_BREAKER_PANIC,
        type_rule=TypeRule.from_mapping(settings.MOE_TYPE_ACCEPTS, settings.MOE_UNKNOWN_TYPE),
        objective=objective(),
        learner_config=LearnerConfig(
            epsilon=settings.MOE_EXPLORATION_RATE,
            epsilon_min=min(settings.MOE_EXPLORATION_MIN, settings.MOE_EXPLORATION_RATE),
            epsilon_uniform=min(settings.MOE_EXPLORATION_UNIFORM, 1.0),
            discount=min(settings.MOE_LEARNING_DISCOUNT, 1.0),
            forced_share=min(settings.MOE_FORCED_SAMPLING_SHARE, 1.0),
            forced_width=settings.MOE_FORCED_SAMPLING_WIDTH,
            forced_recheck=settings.MOE_FORCED_SAMPLING_RECHECK,
        ),
    )


def objective() -> Objective:
    return Objective(
        kind=settings.MOE_OBJECTIVE,
        latency_cost_ms=settings.MOE_LATENCY_COST_MS,
        slo_ms=settings.MOE_LATENCY_SLO_MS,
    )


class Router:
    def __init__(self, cooldowns=None) -> None:
        """``cooldowns``: the 429 cool-downs this router honours (default: the process's,
        :data:`routing.forwarding.cooldowns`; tests give two routers a set each, as two
        worker processes have)."""
        self.engine = RoutingEngine(engine_config())
        self.redis_client = None
        if settings.REDIS_URL:
            import redis

            self.redis_client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._mark_reported = self.redis_client.register_script(_MARK_REPORTED)
        self.store = self._create_store()
        self.history = HistoryWriter(self.redis_client)
        self.metrics = RoutingMetrics(self.redis_client)
        self._lock = threading.Lock()
        self._snapshot = FleetSnapshot.build([])
        self._version = -1
        self._gate_version: int | None = None
        self._overrides: tuple[ActiveOverride, ...] = ()
        self._checked_at = 0.0
        # The registry could not be read and no fleet was ever loaded (see _require_fleet).
        self._never_loaded = False
        # mark_stale() bumps _wanted; a refresh that started at generation g satisfies g only,
        # so a change signalled while a reload is running triggers another one.
        self._wanted = 1
        self._seen = 0
        # request id -> [selected services, services reported, monotonic time routed,
        #                request type, complexity, owner (see owner_key)]
        self._pending: OrderedDict[str, list] = OrderedDict()
        # Slow start: when each service last became routable, and what the last view allowed.
        self._ramps: dict[str, float] = {}
        self._ramp_allowed: dict[str, bool] | None = None
        self._ramp_seen: tuple[FleetSnapshot | None, np.ndarray | None] = (None, None)
        # Services that answered a forwarded call with 429 + Retry-After (routing/forwarding.py):
        # left out of routing until then, by every worker sharing Redis (see start_cooldown).
        from routing.forwarding import cooldowns as process_cooldowns

        self.cooldowns = process_cooldowns if cooldowns is None else cooldowns
        self._prefix = secrets.token_hex(WORKER_PREFIX_DIGITS // 2)
        self._counter = itertools.count(1)
        # With Redis, a follower thread (routing/shared_learning.py) feeds this worker the
        # other workers' outcomes (MOE_SHARED_LEARNING) and cool-downs (shared_cooldowns.py).
        self._follower = None
        self._cooldown_publisher = None
        self._shares_learning = self.redis_client is not None and settings.MOE_SHARED_LEARNING
        if self.redis_client is not None:
            self._follower = LearningFollower(
                self, settings.REDIS_URL, self._prefix, learn=self._shares_learning
            )
            self._follower.start()
            self._cooldown_publisher = CooldownPublisher(self, self._prefix)

    def close(self) -> None:
        """Stop this router's background work (the follower, the cool-down publisher)."""
        if self._follower is not None:
            self._follower.stop()
        if self._cooldown_publisher is not None:
            self._cooldown_publisher.stop()

    def start_cooldown(self, service_id: str, seconds: float) -> None:
        """Leave ``service_id`` out of routing for ``seconds`` (a 429's ``Retry-After``, capped
        by MOE_PROXY_MAX_COOLDOWN_SECONDS), here at once and, with Redis, on every other
        worker within milliseconds. Never waits on Redis nor raises for it."""
        seconds = min(seconds, settings.MOE_PROXY_MAX_COOLDOWN_SECONDS)
        if seconds <= 0:
            return
        self.cooldowns.start(service_id, seconds)
        if self._cooldown_publisher is not None:
            self._cooldown_publisher.publish(service_id, time.time() + seconds)

    def _create_store(self):
        from telemetry.state.factory import create_state_store

        return create_state_store(on_transition=_publish_breaker_transition)

    # -- fleet snapshot, overrides, gate -----------------------------------------------------

    def mark_stale(self) -> None:
        self._wanted += 1

    def _due(self, now: float) -> bool:
        poll = settings.MOE_REGISTRY_POLL_SECONDS
        return self._seen != self._wanted or now - self._checked_at >= poll

    def snapshot_due(self) -> bool:
        """Whether :meth:`snapshot` would query the database now (an async caller then runs
        it in a thread first, and routes with ``snapshot=``)."""
        return self._due(time.monotonic())

    def current_snapshot(self) -> FleetSnapshot:
        """The snapshot as loaded, without checking the registry version."""
        return self._snapshot

    def snapshot(self) -> FleetSnapshot:
        now = time.monotonic()
        if self._due(now):
            # Every thread that finds the snapshot due waits here, so none routes on a fleet
            # that is still being loaded (a cold worker would otherwise answer "empty fleet").
            with self._lock:
                if self._due(now):
                    self._refresh(now)
        return self._snapshot

    def _refresh(self, now: float) -> None:
        from registry.services import current_registry_version

        generation = self._wanted
        try:
            version = current_registry_version()
            if version != self._version:
                self._reload(version)
            self._never_loaded = False
        except DatabaseError as exc:
            self._never_loaded = self._version < 0
            # Keep routing on the last good snapshot; the health endpoint reports the DB.
            logger.warning(
                "router: registry refresh failed, keeping version %s: %s", self._version, exc
            )
        finally:
            self._checked_at = now
            self._seen = generation

    def _reload(self, version: int) -> None:
        from registry.snapshot import build_fleet_snapshot
        from routing.models import GateModel, StrategyOverride

        snapshot = build_fleet_snapshot()
        # Anomaly scores a job stored (the only way they reach this process without Redis).
        from telemetry.services import apply_recorded_anomalies

        apply_recorded_anomalies(self.store)
        overrides = usable(
            ActiveOverride(
                id=o.id,
                strategy=o.strategy,
                scope=o.scope,
                request_type=o.request_type,
                top_k=o.top_k,
                expires_at=o.expires_at.timestamp() if o.expires_at else None,
            )
            for o in StrategyOverride.objects.active()
        )
        gate = GateModel.objects.filter(active=True).values_list("version", flat=True).first()
        if gate != self._gate_version:
            self._load_gate(gate)
        self._snapshot = snapshot
        self._overrides = overrides
        self._version = version

    def _load_gate(self, version: int | None) -> None:
        from routing.models import GateModel

        if version is None:
            # Untrained default gate; what the learner learned online is kept.
            self.engine = RoutingEngine(self.engine.config, learner=self.engine.learner)
        else:
            row = GateModel.objects.get(version=version)
            self.engine.load_gate(bytes(row.weights), version)
            state = bytes(row.policy_weights) if row.policy_weights else None
            if state:
                # The evaluated, activated state: every worker starts again from it.
                try:
                    replayed = self.engine.load_learner(state)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("router: version %s has no usable learner: %s", version, exc)
                else:
                    logger.info(
                        "router: version %s's learner loaded, %d newer outcomes replayed",
                        version,
                        replayed,
                    )
        self._gate_version = version
        logger.info("router: gate version %s loaded", version)

    @property
    def gate_version(self) -> int | None:
        return self._gate_version

    def override_for(self, request_type: str) -> ActiveOverride | None:
        if not self._overrides:
            return None
        return resolve_override(self._overrides, request_type, time.time())

    # -- routing ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        """A request id: this process's prefix and counter (unique without coordination) and
        64 random bits from the OS. Whoever holds a request's id may report its outcome, so
        the id must not be guessable from another one: a client that could derive its
        neighbours' ids could report (or pre-empt) their outcomes and so teach the learner
        what did not happen."""
        return f"{self._prefix}{next(self._counter):010x}{os.urandom(8).hex()}"

    def _batch_ids(self, n: int) -> list[str]:
        """A batch's request ids: ``<base>-<index in hex>``, so that an outcome finds the
        item's entry in its batch's pending value (see pending_blob)."""
        base = self._new_id()
        return [f"{base}-{i:x}" for i in range(n)]

    def _resolve(self, request_type: str, strategy: str | None, top_k: int | None, fleet_size: int):
        override = self.override_for(request_type)
        if override is not None:
            # An operator's k larger than today's fleet means "as many as there are".
            k = min(override.top_k, max(fleet_size, 1)) if override.top_k else top_k
            return override.strategy, k, override.id
        return strategy or settings.MOE_DEFAULT_STRATEGY, top_k, None

    def _require_fleet(self) -> None:
        """A worker that could not read the registry yet has no fleet: say so (503), rather
        than route on an empty one and answer "fleet is empty" while the fleet is fine."""
        if self._never_loaded:
            raise RegistryUnavailable(
                "The service registry cannot be read (database unavailable) and this worker "
                "has not loaded the fleet yet; retry shortly."
            )

    @staticmethod
    def _check_top_k(top_k: int | None, snapshot: FleetSnapshot) -> None:
        if top_k is not None and top_k > max(len(snapshot), 1):
            raise InvalidRoutingInput(
                f"Invalid input: top_k: exceeds the fleet size ({len(snapshot)}).",
                {"top_k": [f"Must be at most the fleet size ({len(snapshot)})."]},
            )

    def route(
        self,
        request: RouteRequest,
        strategy: str | None,
        top_k: int | None,
        client: int | str | None = None,
        *,
        snapshot: FleetSnapshot | None = None,
        guard: RateGuard | None = None,
    ) -> Routed:
        """Route one request. ``snapshot``: route on this one (no registry check, so no
        database query). ``guard``: a rate-limit counter counted in the commit's own Redis
        round trip; if it comes back over the limit, nothing was recorded (see _commit_redis)
        and the caller answers 429."""
        snapshot = self.snapshot() if snapshot is None else snapshot
        self._require_fleet()
        self._check_top_k(top_k, snapshot)
        strategy, top_k, override_id = self._resolve(
            request.request_type, strategy, top_k, len(snapshot)
        )
        view = self._view(snapshot)
        decision = self.engine.route(request, snapshot, view, strategy, top_k)
        routed = Routed(self._new_id(), decision, override_id, top_k)
        context = self._context(snapshot, view)
        routed = self._commit([routed], [request], context, client, snapshot, guard)[0]
        if decision.selected and not routed.decision.selected:
            # Every selected service's breaker opened on another worker between our view and
            # the dispatch (_drop_refused): route once more on a fresh view (the store dropped
            # its cached one) rather than answer 503 while others can serve. The rate limit
            # was counted already; history keeps the refused decision, amended.
            view = self._view(snapshot)
            decision = self.engine.route(request, snapshot, view, strategy, top_k)
            retry = Routed(self._new_id(), decision, override_id, top_k)
            context = self._context(snapshot, view)
            routed = self._commit([retry], [request], context, client, snapshot, None)[0]
        return routed

    def route_batch(
        self,
        requests: Sequence[RouteRequest],
        strategy: str | None,
        top_k: int | None,
        client: int | str | None = None,
        *,
        snapshot: FleetSnapshot | None = None,
        guard: RateGuard | None = None,
    ) -> list[Routed]:
        """:meth:`route` for many requests (``snapshot`` and ``guard`` as there)."""
        steps = self._route_batch_steps(requests, strategy, top_k, client, snapshot, guard)
        return self._run(steps)

    async def route_batch_async(
        self,
        requests: Sequence[RouteRequest],
        strategy: str | None,
        top_k: int | None,
        client: int | str | None = None,
        *,
        snapshot: FleetSnapshot | None = None,
    ) -> list[Routed]:
        """:meth:`route_batch` with the commit's Redis round trip awaited on the running loop
        (:meth:`RedisStateStore.execute_async`): the loop serves other requests meanwhile, and
        no thread holds the GIL against it. Everything else runs as in :meth:`route_batch`."""
        steps = self._route_batch_steps(requests, strategy, top_k, client, snapshot, None)
        try:
            pipe = next(steps)
            while True:
                if pipe is None:  # a pause: let the loop serve I/O that arrived meanwhile
                    await asyncio.sleep(0)
                    pipe = steps.send(None)
                else:
                    pipe = steps.send(await self.store.execute_async(pipe))
        except StopIteration as done:
            return done.value

    def _run(self, steps: Generator[Any, Any, list[Routed]]) -> list[Routed]:
        """Drive a routing generator: each pipeline it yields is run by the store, and its
        replies are sent back in (see :meth:`_commit_redis`). It yields None where an
        awaiting driver lets its loop serve other work (:meth:`route_batch_async`): a
        batch's CPU work comes in pieces of a few milliseconds, so the loop reads Redis's
        replies and request bodies in between instead of after all of it (~20 ms)."""
        try:
            pipe = next(steps)
            while True:
                pipe = steps.send(None if pipe is None else self.store.execute(pipe))
        except StopIteration as done:
            return done.value

    def _route_batch_steps(self, requests, strategy, top_k, client, snapshot, guard):
        snapshot = self.snapshot() if snapshot is None else snapshot
        self._require_fleet()
        self._check_top_k(top_k, snapshot)
        # Requests with the same effective strategy go through the engine together.
        groups: dict[tuple[str, int | None, int | None], list[int]] = {}
        if self._overrides:
            for i, req in enumerate(requests):
                key = self._resolve(req.request_type, strategy, top_k, len(snapshot))
                groups.setdefault(key, []).append(i)
        else:  # no override: one group, nothing to resolve per request
            groups[self._resolve("", strategy, top_k, len(snapshot))] = list(range(len(requests)))
        view = self._view(snapshot)
        ids = self._batch_ids(len(requests))
        if len(groups) == 1:
            (((strat, k, override_id), _),) = groups.items()
            decisions = self.engine.route_batch(requests, snapshot, view, strat, k)
            yield None  # a pause (see _run)
            n = len(requests)
            routed = build_many(Routed, ids, decisions, repeat(override_id, n), repeat(k, n))
        else:
            routed = [None] * len(requests)
            for (strat, k, override_id), idx in groups.items():
                decisions = self.engine.route_batch(
                    [requests[i] for i in idx], snapshot, view, strat, k
                )
                for i, decision in zip(idx, decisions, strict=True):
                    routed[i] = Routed(ids[i], decision, override_id, k)
        context = self._context(snapshot, view)
        return (yield from self._commit_steps(routed, requests, context, client, snapshot, guard))

    # -- slow start ------------------------------------------------------------------------

    def _view(self, snapshot: FleetSnapshot) -> LiveView:
        """The live view, with the slow-start ramp of services that recently joined the
        fleet or became routable again (breaker closed or half-open, health back): their
        share grows linearly over MOE_SLOW_START_SECONDS, as Envoy's slow start does."""
        view = self.store.view(snapshot)
        cooling = self.cooldowns.mask(snapshot.service_ids)
        if cooling is not None:
            view = replace(view, cooling=np.array(cooling, dtype=bool))
        window = settings.MOE_SLOW_START_SECONDS
        if window <= 0:
            return view
        now = time.monotonic()
        # In-flight changes give a new view on every request; only who is allowed matters here,
        # so the per-service bookkeeping runs only when that (or the fleet) changes.
        allowed = snapshot.routable & view.breaker_allows
        seen_snapshot, seen_allowed = self._ramp_seen
        if snapshot is not seen_snapshot or not np.array_equal(allowed, seen_allowed):
            self._track_ramps(snapshot, allowed, now)
            self._ramp_seen = (snapshot, allowed)
        if not self._ramps:
            return view
        ramp = np.ones(len(snapshot))
        active = False
        for service_id, started in list(self._ramps.items()):
            share = (now - started) / window
            if share >= 1.0:
                del self._ramps[service_id]
                continue
            i = snapshot.index.get(service_id)
            if i is not None:
                ramp[i] = max(share, SLOW_START_FLOOR)
                active = True
        return replace(view, ramp=ramp) if active else view

    def _track_ramps(self, snapshot: FleetSnapshot, allowed: np.ndarray, now: float) -> None:
        previous = self._ramp_allowed
        current = dict(zip(snapshot.service_ids, allowed.tolist(), strict=True))
        if previous is not None:  # the first view a worker sees ramps nobody
            for service_id, ok in current.items():
                if ok and not previous.get(service_id, False):
                    self._ramps[service_id] = now
        self._ramp_allowed = current

    @staticmethod
    def _context(snapshot: FleetSnapshot, view) -> list[float]:
        """The fleet context the adaptive policy sees, kept in history so it can learn from it."""
        eligible = snapshot.routable & view.breaker_allows
        context = fleet_context(
            view.in_flight, snapshot.capacity, view.anomaly, view.error_rate, eligible
        )
        return [round(float(x), 4) for x in context]

    def commits_to_redis(self) -> bool:
        """Whether a commit goes to Redis now: Redis live state (REDIS_URL with
        MOE_STATE_BACKEND=local keeps state, history and pending entries local) and reachable."""
        store = self.store
        return self.redis_client is not None and hasattr(store, "execute") and not store.degraded

    def _commit(
        self,
        routed: Sequence[Routed],
        requests: Sequence[RouteRequest],
        context: list[float],
        client: int | str | None = None,
        snapshot: FleetSnapshot | None = None,
        guard: RateGuard | None = None,
    ) -> list[Routed]:
        """State, pending entries, history and metrics for routed requests, in one go."""
        return self._run(self._commit_steps(routed, requests, context, client, snapshot, guard))

    def _commit_steps(self, routed, requests, context, client=None, snapshot=None, guard=None):
        """:meth:`_commit` as a generator that yields its Redis pipeline (see :meth:`_run`)."""
        owner = owner_key(client)
        records = decision_records(routed, requests, context, owner)
        live = [(r.request_id, r.decision.selected) for r in routed if r.decision.selected]
        routed = list(routed)
        if self.commits_to_redis():
            routed = yield from self._commit_redis(
                live, records, routed, requests, snapshot, guard, owner
            )
            if guard is not None and guard.over:
                return routed  # over the rate limit: nothing was recorded
        else:
            self._commit_local(live, records, routed, requests, owner=owner)
        self._after_commit(routed, requests, client)
        return routed

    def _commit_redis(
        self, live, records, routed: list[Routed], requests, snapshot=None, guard=None, owner=""
    ) -> list[Routed]:
        """One round trip: in-flight + breaker slots, pending entries, history, metrics, and
        (when due) the next live view; with ``guard`` also the rate-limit counter, in one
        MULTI/EXEC where every write is conditional on the counter being within its limit.

        A generator: it yields the pipeline and gets :meth:`RedisStateStore.execute`'s replies
        back, so one body serves the sync path and the awaited one (:meth:`_run`)."""
        pipe = self.store.pipeline(transaction=guard is not None)
        if guard is not None:
            guard.queue(pipe)
        if snapshot is not None:
            self.store.queue_refresh(pipe, snapshot)
        ttl = int(settings.MOE_PENDING_TTL_SECONDS)
        limit = (guard.key, guard.limit) if guard is not None else None
        # A panic decision's services all have open breakers: Redis must not refuse them.
        forced = {r.request_id for r in routed if r.decision.panic}
        self.store.record_routed_many(live, pipe=pipe, guard=limit, forced=forced)
        writes = pipe if guard is None else _Commands()
        base = batch_base(routed[0].request_id) if routed else None
        if base is not None:  # a batch: its pending entries as one value (see pending_blob)
            pipe.set(PENDING_KEY + base, pending_blob(routed, requests, owner), ex=ttl)
        else:
            for r, req in zip(routed, requests, strict=True):
                if r.decision.selected:
                    selected = r.decision.selected
                    value = pending_value(selected, req.request_type, req.complexity, owner)
                    writes.set(PENDING_KEY + r.request_id, value, ex=ttl)
        self.history.queue(writes, records)
        # Prometheus counts once the commit is known (not at all when it falls back to the
        # local path, which counts it itself; without the refused services when any).
        fields = self.metrics.queue(writes, routed, prometheus=False)
        if guard is not None:
            self.store.queue_guarded(pipe, limit, writes.commands)
        results = yield pipe
        if results is None:
            # Redis went away: the store counted the requests on its local fallback already
            # (and the rate limit fails open: guard.count stays None).
            logger.warning("router: Redis commit failed, history and pending kept locally")
            self._commit_local(live, records, routed, requests, True, owner)
            return routed
        if guard is not None:
            count = results[0]
            guard.count = count if isinstance(count, int) else None
            if guard.over:
                return routed
        from telemetry.state.redis_store import Refused

        refused = [pair for reply in results if isinstance(reply, Refused) for pair in reply]
        if refused:
            routed, fields = self._drop_refused(routed, requests, refused, ttl, fields, owner)
        self.metrics.count_prometheus(routed, fields)
        return routed

    def _drop_refused(
        self, routed: list[Routed], requests, refused, ttl: int, fields, owner: str = ""
    ) -> tuple[list[Routed], Counter]:
        """Another worker's breaker changed between our view and dispatch: the refused
        services are taken out of the answer, history is amended to match, and the metrics
        counted for the decisions as they were are corrected: ``(routed, fields)``."""
        import redis

        gone: dict[str, set[str]] = {}
        for request_id, service_id in refused:
            gone.setdefault(request_id, set()).add(service_id)
        amendments = []
        before, after = [], []
        pipe = self.redis_client.pipeline(transaction=False)
        for i, (r, req) in enumerate(zip(routed, requests, strict=True)):
            drop = gone.get(r.request_id)
            if not drop:
                continue
            before.append(r)
            keep = tuple(sid for sid in r.decision.selected if sid not in drop)
            reason = f"{r.decision.reason}; breaker refused {', '.join(sorted(drop))} at dispatch"
            # The propensity is the first pick's probability: void once another serves.
            replaced = r.decision.selected[0] in drop
            decision = r.decision._replace(
                selected=keep,
                scores={k: v for k, v in r.decision.scores.items() if k in keep},
                no_eligible_service=not keep,
                reason=reason,
                propensity=None if replaced else r.decision.propensity,
            )
            routed[i] = r._replace(decision=decision)
            after.append(routed[i])
            amendments.append(amend_record(r.request_id, keep, reason, replaced))
            if keep or batch_base(r.request_id) is not None:
                # A batch item's own entry overrides its batch's (an empty selection too).
                value = pending_value(keep, req.request_type, req.complexity, owner)
                pipe.set(PENDING_KEY + r.request_id, value, ex=ttl)
            else:
                pipe.delete(PENDING_KEY + r.request_id)
        self.history.queue(pipe, amendments)
        fields = self.metrics.queue_correction(pipe, before, after, fields)
        try:
            pipe.execute()
        except redis.RedisError:
            self.history.append(amendments, local=True)
        return routed, fields

    def _commit_local(
        self, live, records, routed, requests, state_recorded=False, owner=""
    ) -> None:
        if not state_recorded and live:
            self.store.record_routed_many(live)
        with self._lock:
            now = time.monotonic()
            pending = self._pending
            for r, req in zip(routed, requests, strict=True):
                selected = r.decision.selected
                if selected:
                    pending[r.request_id] = [
                        selected,
                        (),
                        now,
                        req.request_type,
                        req.complexity,
                        owner,
                    ]
            oldest = now - settings.MOE_PENDING_TTL_SECONDS
            while pending and (
                len(pending) > PENDING_MAX_LOCAL or next(iter(pending.values()))[2] < oldest
            ):
                pending.popitem(last=False)
        self.history.append(records, local=True)
        self.metrics.record_local(routed)

    def _after_commit(
        self,
        routed: Sequence[Routed],
        requests: Sequence[RouteRequest],
        client: int | str | None = None,
    ) -> None:
        """Hand decisions to the live feed: only as many as one coalesced message carries.

        ``client`` (the routing user's id) lets the feed show a client only its own decisions.
        """
        from telemetry.events import publish_routes, route_items_limit, wants_routes

        if not wants_routes():
            return
        first = max(0, len(routed) - route_items_limit())
        publish_routes(
            [
                {
                    "request_id": r.request_id,
                    "selected_services": list(r.decision.selected),
                    "routing_strategy": r.decision.strategy,
                    "requested_strategy": r.decision.requested_strategy,
                    "latency_ms": round(r.decision.latency_ms, 4),
                    "no_eligible_service": r.decision.no_eligible_service,
                    "request_type": req.request_type,
                    "confidence": round(float(r.decision.confidence), 4),
                    "client": client,
                }
                for r, req in zip(routed[first:], requests[first:], strict=True)
            ],
            skipped=first,
        )

    # -- outcomes --------------------------------------------------------------------------

    def _claim_pending(self, request_id: str, service_id: str, caller: str = "*"):
        """Claim ``service_id``'s outcome of a not-yet-flushed decision for ``caller`` (the
        reporting client's :func:`owner_key`, "*" for any): ``(selected, request type,
        complexity)``; "foreign" if the decision is another client's, "dup" if that service
        already reported, ``("?", selected)`` if it was not selected, None if the decision is
        not pending (any more), "unreachable" if Redis, where it may be pending, cannot be
        reached (and it is not pending here either)."""
        unreachable = False
        if self.redis_client is not None:
            import redis

            keys, args = [PENDING_KEY + request_id], [service_id, caller]
            index = batch_index(request_id)
            if index is not None:
                keys.append(PENDING_KEY + batch_base(request_id))
                args.append(index)
            try:
                value = self._mark_reported(keys=keys, args=args)
            except redis.RedisError:
                value, unreachable = None, True
            if value is not None:
                value = value.decode() if isinstance(value, bytes) else value
                if value == "#":
                    return "foreign"
                if value == "!":
                    return "dup"
                parts = value.lstrip("?").split("\n", 3)
                if len(parts) == 3:  # written by a worker from before owners (an upgrade)
                    parts.insert(1, "")
                selected, _, complexity, request_type = parts
                selected = tuple(selected.split(",")) if selected else ()
                if value.startswith("?"):
                    return ("?", selected)
                return selected, request_type, float(complexity)
        with self._lock:
            entry = self._pending.get(request_id)
            if entry is None:
                return "unreachable" if unreachable else None
            selected, reported, _, request_type, complexity, owner = entry
            if caller != "*" and owner != caller:
                return "foreign"
            if service_id not in selected:
                return ("?", selected)
            if service_id in reported:
                return "dup"
            entry[1] = (*reported, service_id)
            return selected, request_type, complexity

    def report_outcome(
        self,
        request_id: str,
        service_id: str,
        success: bool,
        latency_ms: float | None,
        status_code: int | None,
        reporter=None,
    ) -> dict:
        """Record ``service_id``'s outcome of ``request_id``. ``reporter``: the user reporting
        it (None: this process, e.g. the proxy when its call completes). Only the client that
        routed the request may report its outcome, or one that may report any
        (:func:`may_report_any_outcome`); to anyone else the request is unknown (404), so its
        id tells them nothing. Otherwise a client holding another's request id could claim
        that request's outcome: teach the learner what did not happen, and make the owner's
        own report a 409."""
        from routing.models import RoutingDecision

        # A client whose id cannot be written as an owner (see owner_key) owns nothing: "\n"
        # matches no entry.
        caller = "*" if reporter is None else (owner_key(reporter.pk) or "\n")
        claim = self._claim_pending(request_id, service_id, caller)
        if claim == "foreign" and may_report_any_outcome(reporter):
            caller = "*"
            claim = self._claim_pending(request_id, service_id, caller)
        if claim == "foreign":
            raise UnknownRequest(f"No routed request with id {request_id!r}.")
        flushed_row = None
        request_type, complexity = "", 0.5
        unreachable = claim == "unreachable"
        if unreachable or claim is None:
            claim = None
            flushed_row = (
                RoutingDecision.objects.filter(request_id=request_id)
                .only(
                    "request_id",
                    "selected_services",
                    "reported_at",
                    "request_type",
                    "features",
                    "client",
                )
                .first()
            )
            if flushed_row is None and unreachable:
                # Its decision may be pending in Redis, or on its way to the database: a 503 to
                # retry, not a 404 the client would take as final (and lose the outcome).
                raise LiveStateUnavailable(
                    "The live state (Redis) cannot be reached, so this outcome cannot be checked "
                    "now; retry shortly."
                )
            if flushed_row is None or not (
                caller == "*" or flushed_row.client == caller or may_report_any_outcome(reporter)
            ):
                raise UnknownRequest(f"No routed request with id {request_id!r}.")
            selected = tuple(flushed_row.selected_services)
            if service_id not in selected:
                claim = ("?", selected)
            elif flushed_row.reported_at is not None:
                claim = "dup"
            else:
                request_type = flushed_row.request_type
                complexity = float((flushed_row.features or {}).get("complexity", 0.5))
        if claim == "dup":
            raise OutcomeAlreadyReported(
                f"An outcome of {service_id!r} for {request_id!r} was already reported.",
                {"request_id": ["Outcome already reported for this service."]},
            )
        if isinstance(claim, tuple) and claim and claim[0] == "?":
            raise InvalidRoutingInput(
                f"Invalid input: service_id: {service_id!r} was not selected for this request.",
                {"service_id": [f"Not one of the selected services: {', '.join(claim[1])}."]},
            )
        if claim is not None:
            selected, request_type, complexity = claim
        new_state = self.store.record_outcome(request_id, service_id, success, latency_ms)
        # Online learning: the learned strategies see this outcome on their next decision.
        reward = self.engine.learner.observe_outcome(
            service_id, request_type, complexity, success, latency_ms
        )
        primary = bool(selected) and selected[0] == service_id
        record = outcome_record(
            request_id, service_id, success, latency_ms, status_code, reward, primary
        )
        learned = (service_id, request_type, complexity, reward)
        if flushed_row is not None:
            self.history.apply_now([record])
            self._append_outcome(None, learned)
        else:
            self._append_outcome(record, learned)
        self.metrics.record_outcome(service_id, success, reward)
        return {
            "request_id": request_id,
            "service_id": service_id,
            "recorded": True,
            "reward": round(reward, 6),
            "breaker_state": new_state.value if new_state else None,
        }

    def _append_outcome(self, record: dict | None, learned: tuple) -> None:
        """Append the outcome's history ``record`` (None: already written) and, with shared
        learning, the outcome for the other workers' learners, in one round trip."""
        if not self._shares_learning or self.history.stream is None:
            if record is not None:
                self.history.append([record])
            return
        import redis

        try:
            pipe = self.redis_client.pipeline(transaction=False)
            if record is not None:
                self.history.queue(pipe, [record])
            queue_shared_outcome(pipe, self._prefix, *learned)
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            results = [exc]
        if record is not None and isinstance(results[0], Exception):
            logger.warning("history: Redis unavailable, outcome spooled locally")
            self.history.append([record], local=True)

    # -- reporting -------------------------------------------------------------------------

    def live_states(self, service_ids: Sequence[str]) -> dict[str, dict]:
        states = self.store.snapshot_state()
        default = {
            "in_flight": 0,
            "ewma_latency_ms": 0.0,
            "error_rate": 0.0,
            "breaker_state": BreakerState.CLOSED.value,
            "breaker_allows": True,
            "anomaly": 0.0,
        }
        out = {}
        for sid in service_ids:
            state = dict(default)
            state.update(states.get(sid, {}))
            state["cooling_down"] = self.cooldowns.cooling(sid)
            if isinstance(state.get("breaker_state"), BreakerState):
                state["breaker_state"] = state["breaker_state"].value
            out[sid] = state
        return out


class _Commands(CoreCommands):
    """Records Redis commands instead of sending them (redis-py's command methods, so the
    history and metrics writers queue on it as on a pipeline); see scripts.GUARDED."""

    def __init__(self) -> None:
        self.commands: list[tuple] = []

    def execute_command(self, *args, **options) -> None:
        self.commands.append(args)


def _publish_breaker_transition(service_id: str, old: BreakerState, new: BreakerState) -> None:
    from telemetry.events import publish_event

    if new == BreakerState.OPEN:
        publish_event("breaker_opened", {"service_id": service_id, "from": old.value})
    elif new == BreakerState.CLOSED:
        publish_event("breaker_closed", {"service_id": service_id, "from": old.value})


_router: Router | None = None
_router_pid: int | None = None
_router_lock = threading.Lock()


def get_router() -> Router:
    """This process's router (a forked child builds its own)."""
    global _router, _router_pid
    if _router is None or _router_pid != os.getpid():
        with _router_lock:
            if _router is None or _router_pid != os.getpid():
                _router = Router()
                _router_pid = os.getpid()
    return _router


def reset_router() -> None:
    """Drop this process's router (tests, settings changes)."""
    global _router
    with _router_lock:
        if _router is not None:
            _router.close()
        _router = None


def live_states(service_ids: list[str]) -> dict[str, dict]:
    return get_router().live_states(service_ids)

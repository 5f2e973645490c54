"""The routing engine: eligibility -> strategy -> Decision, for one request or a batch.

The engine is pure: the caller brings the fleet snapshot and the live view, and records the
decision (in-flight, history) itself. Per-snapshot work (hash ring, capability masks, the
gate's service side) is cached on the snapshot instance, so a new registry version starts
fresh and an unchanged one pays nothing.

Eligibility (every strategy): status active, health not unhealthy, breaker allows, in-flight
below max capacity, every required capability offered. When the breakers alone shut out every
service able to serve the request, it is routed among those anyway (panic routing, as Envoy
does below its healthy-panic threshold; ``EngineConfig.panic_when_all_breakers_open``) and
the reason says so. With nothing eligible the Decision has ``no_eligible_service=True`` and a
reason that counts why; the engine never raises for that and never picks at random.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from itertools import compress
from operator import attrgetter, not_

import numpy as np

from routing.core.config import EngineConfig
from routing.core.features import featurize
from routing.core.fleet import PreparedFleet, memo
from routing.core.gate import Gate, GateScorer, gate_from_bytes
from routing.core.learning import OutcomeLearner
from routing.core.strategies import (
    STRATEGIES,
    BatchContext,
    Choice,
    RouteContext,
    Strategy,
    StrategyDeps,
    get_strategy,
)
from routing.core.types import (
    Decision,
    FleetSnapshot,
    Health,
    LiveView,
    RouteRequest,
    ServiceStatus,
)

_new = tuple.__new__


PANIC_NOTE = "panic: the breaker of every service able to serve it is open, routed among them"


_anomaly = attrgetter("anomaly_score")


class RoutingEngine:
    """Routes requests over a fleet snapshot. Safe to share between threads."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        gate: Gate | None = None,
        learner: OutcomeLearner | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.gate_trained = gate is not None
        if gate is None:  # deterministic untrained gate: priors + headroom (see gate.py)
            gate = Gate(self.config.gate_config, self.config.device)
        gate.eval()
        # (gate, token): the token identifies this gate in per-snapshot scorer caches and is
        # new on every swap; one attribute so a concurrent reader never mixes two gates.
        self._gate_state = (gate, object())
        cfg = self.config
        self.learner = learner or OutcomeLearner(cfg.learner_config, cfg.objective, cfg.p2c_seed)
        # Set by the caller (the Django side) to the active model version's id.
        self.gate_version: int | str | None = None
        self.rng = random.Random(self.config.p2c_seed)
        deps = StrategyDeps(
            config=self.config,
            rng=self.rng,
            learner=self.learner,
            learned_table=self.learned_table,
            strategy=self.strategy,
            choose_strategy=self.choose_strategy,
            choose_strategies=self.choose_strategies,
        )
        self._strategies: dict[str, Strategy] = {n: cls(deps) for n, cls in STRATEGIES.items()}

    # -- models ----------------------------------------------------------------------------

    @property
    def gate(self) -> Gate:
        return self._gate_state[0]

    def load_gate(self, blob: bytes, version: int | str | None = None) -> None:
        self.set_gate(gate_from_bytes(blob, device=self.config.device), version)

    def set_gate(self, gate: Gate, version: int | str | None = None) -> None:
        """Use ``gate`` from now on. Call it again after changing a gate's weights in place:
        scorers are cached per call, not per weights."""
        gate.eval()
        self._gate_state = (gate, object())
        self.gate_trained = True
        self.gate_version = version if version is not None else self.gate_version

    def load_learner(self, blob: bytes) -> int:
        """Start the online learner again from a saved (retrained, evaluated) state, plus the
        outcomes it observed since that state was trained (returns how many)."""
        return self.learner.load_bytes(blob)

    def gate_scorer(self, fleet: PreparedFleet) -> GateScorer:
        """The numpy scorer of the current gate for this snapshot (built once per pair)."""
        gate, token = self._gate_state
        return memo(fleet.snapshot, ("gate", token), lambda: gate.scorer(fleet.snapshot))

    def learned_table(self, fleet: PreparedFleet, request_type: str):
        """The learner's estimates for this snapshot and request type. With a trained gate,
        services without outcomes of this type start from the gate's predicted reward
        (it generalises from what a service is: type, capabilities, capacity); otherwise
        from the learner's optimistic prior, so untried candidates get tried."""
        if not self.gate_trained:
            return self.learner.table(fleet.snapshot, request_type)
        gate, token = self._gate_state
        knots = self.learner.knot_positions()

        def prior() -> np.ndarray:
            requests = [RouteRequest(request_type=request_type, complexity=c) for c in knots]
            logits = self.gate_scorer(fleet).logits(featurize(requests)).astype(np.float64)
            return 1.0 / (1.0 + np.exp(-logits))

        return self.learner.table(fleet.snapshot, request_type, prior, token)

    def strategy(self, name: str) -> Strategy:
        try:
            return self._strategies[name]
        except KeyError:
            get_strategy(name)  # raises the ValueError listing valid names
            raise

    def _top_k(self, top_k: int | None) -> int:
        if top_k is None:
            return self.config.default_top_k
        return max(1, min(int(top_k), self.config.max_top_k))

    def _prepare(self, snapshot: FleetSnapshot) -> PreparedFleet:
        return PreparedFleet.of(snapshot, self.config.hash_vnodes, self.config.type_rule)

    # -- one request -----------------------------------------------------------------------

    def route(
        self,
        request: RouteRequest,
        snapshot: FleetSnapshot,
        view: LiveView,
        strategy: str,
        top_k: int | None = None,
    ) -> Decision:
        start = time.perf_counter()
        impl = self.strategy(strategy)
        fleet = self._prepare(snapshot)
        rtype, caps = request.request_type, request.capabilities
        static = fleet.candidates(rtype, caps) if fleet.n else None
        if static is None:
            return self._none(
                fleet, view, rtype, caps, strategy, (time.perf_counter() - start) * 1e3
            )
        room = static & (view.in_flight < fleet.capacity)
        if view.cooling is not None:
            room &= ~view.cooling
        eligible, panic = self._eligible(room, view)
        if view.ramp is not None:
            eligible = self._slow_start(eligible, view.ramp)
        idx = np.flatnonzero(eligible)
        if not idx.size:
            return self._none(
                fleet, view, rtype, caps, strategy, (time.perf_counter() - start) * 1e3
            )
        ctx = RouteContext(fleet, view, eligible, idx, self._top_k(top_k))
        choice = impl.route(request, ctx)
        note = fleet.filter_note(rtype, caps)
        excluded = fleet.candidate_count(rtype, caps) - idx.size
        if panic:
            note = f"{note}; {PANIC_NOTE}"
        if excluded:
            cooling = view.cooling is not None and bool((static & view.cooling).any())
            note = f"{note}; {excluded} breaker open or full" + (
                " or cooling down after a 429" if cooling else ""
            )
            ids = fleet.ids
            candidates = tuple([ids[i] for i in idx])
        else:
            candidates = fleet.candidate_ids(rtype, caps)
        return self._decision(
            choice, fleet, strategy, (time.perf_counter() - start) * 1e3, note, candidates, panic
        )

    def _eligible(self, room: np.ndarray, view: LiveView) -> tuple[np.ndarray, bool]:
        """Of the candidates with ``room`` (able to serve, below capacity), those whose breaker
        allows them; if the breakers allow none, all of them (panic routing): ``(mask,
        panicked)``."""
        eligible = room & view.breaker_allows
        if not eligible.any() and room.any() and self.config.panic_when_all_breakers_open:
            return room, True
        return eligible, False

    def _slow_start(self, eligible: np.ndarray, ramp: np.ndarray) -> np.ndarray:
        """Leave each ramping service out with probability ``1 - ramp``, unless that would
        leave the request with no candidate that is not ramping (slow start)."""
        ramping = eligible & (ramp < 1.0)
        if not ramping.any() or not (eligible & ~ramping).any():
            return eligible
        dropped = ramping & (self.learner.np_rng.random(len(ramp)) >= ramp)
        return eligible & ~dropped

    @staticmethod
    def _decision(
        choice: Choice,
        fleet: PreparedFleet,
        requested: str,
        latency_ms: float,
        note: str = "",
        candidates: tuple[str, ...] = (),
        panic: bool = False,
    ) -> Decision:
        sel, raw_scores, confidence, reason, concrete, propensity = choice
        ids = fleet.ids
        if len(sel) == 1:
            selected = (ids[sel[0]],)
            scores = {selected[0]: raw_scores[0]}
        elif len(sel) == 2:
            selected = (ids[sel[0]], ids[sel[1]])
            scores = {selected[0]: raw_scores[0], selected[1]: raw_scores[1]}
        else:
            selected = tuple([ids[i] for i in sel])
            scores = dict(zip(selected, raw_scores, strict=True))
        if note:
            reason = f"{reason}; {note}"
        return Decision(
            selected,
            scores,
            confidence,
            concrete,
            requested,
            reason,
            False,
            latency_ms,
            propensity,
            candidates,
            panic,
        )

    def _none(
        self, fleet, view, request_type, capabilities, requested, latency_ms, reason=None
    ) -> Decision:
        return Decision(
            selected=(),
            scores={},
            confidence=0.0,
            strategy=requested,
            requested_strategy=requested,
            reason=reason or explain_no_eligible(fleet, view, request_type, capabilities),
            no_eligible_service=True,
            latency_ms=latency_ms,
        )

    # -- a batch ---------------------------------------------------------------------------

    def route_batch(
        self,
        requests: Sequence[RouteRequest],
        snapshot: FleetSnapshot,
        view: LiveView,
        strategy: str,
        top_k: int | None = None,
    ) -> list[Decision]:
        """Route many requests at once, in order, never overfilling a service: each
        assignment counts against the capacity seen by the requests after it. Each Decision's
        ``latency_ms`` is the batch's time divided by its size."""
        n = len(requests)
        if n == 0:
            self.strategy(strategy)  # an unknown name is still an error
            return []
        # Batch routing allocates a few small objects per request and creates no cycles; the
        # cyclic GC running mid-batch (it walks every tracked object, torch's included) was
        # measured to cost up to 2x on 10,000 requests. Pause it, restoring the prior state.
        paused = self.config.pause_gc_in_batches and gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._route_batch(requests, snapshot, view, strategy, top_k)
        finally:
            if paused:
                gc.enable()

    def _route_batch(self, requests, snapshot, view, strategy, top_k) -> list[Decision]:
        start = time.perf_counter()
        impl = self.strategy(strategy)
        fleet = self._prepare(snapshot)
        n = len(requests)
        k = self._top_k(top_k)
        bctx = BatchContext(fleet, view, requests)
        room = view.in_flight < fleet.capacity
        if view.cooling is not None:
            room &= ~view.cooling
        groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault((request.request_type, request.capabilities), []).append(i)
        reasons: dict[int, str] = {}
        # (positions, mask) and (positions, note, candidates, panic) of each group with candidates
        eligible: list[tuple[list[int], np.ndarray]] = []
        picks: list[tuple[list[int], str, tuple[str, ...], bool]] = []
        ids = fleet.ids
        for (rtype, caps), positions in groups.items():
            static = fleet.candidates(rtype, caps) if fleet.n else None
            mask, panic = (None, False) if static is None else self._eligible(static & room, view)
            if mask is not None and view.ramp is not None:
                # One draw per group: the expected share is right, a batch is lumpier.
                mask = self._slow_start(mask, view.ramp)
            if mask is None or not mask.any():
                reason = explain_no_eligible(fleet, view, rtype, caps)
                for i in positions:
                    reasons[i] = reason
                continue
            note = fleet.filter_note(rtype, caps)
            if panic:
                note = f"{note}; {PANIC_NOTE}"
            eligible.append((positions, mask))
            picks.append((positions, note, tuple([ids[j] for j in np.flatnonzero(mask)]), panic))
        chosen = impl.route_groups(requests, eligible, k, bctx) if eligible else []
        # Time spent deciding, shared evenly; building the Decision objects is not counted.
        per_request_ms = (time.perf_counter() - start) * 1e3 / n
        out: list[Decision | None] = [None] * n
        missing = len(reasons)
        for positions, note, candidates, panic in picks:
            texts: dict[str, str] = {}  # a group's reasons repeat: format each once
            for i in positions:
                choice = chosen[i]
                if choice is None:
                    missing += 1
                    continue
                sel, scores, confidence, reason, concrete, propensity = choice
                text = texts.get(reason)
                if text is None:
                    text = texts[reason] = f"{reason}; {note}"
                if len(sel) == 1:  # the common case, inlined: one call less per request
                    service_id = ids[sel[0]]
                    out[i] = _new(Decision, (
                        (service_id,),
                        {service_id: scores[0]},
                        confidence,
                        concrete,
                        strategy,
                        text,
                        False,
                        per_request_ms,
                        propensity,
                        candidates,
                        panic,
                    ))  # fmt: skip
                else:
                    out[i] = self._decision(
                        (sel, scores, confidence, text, concrete, propensity),
                        fleet,
                        strategy,
                        per_request_ms,
                        "",
                        candidates,
                        panic,
                    )  # fmt: skip
        if missing:  # (not ``None in out``: that would call Decision.__eq__ per item)
            full = (
                "no eligible service left: every eligible service reached its capacity "
                "within this batch"
            )
            for i, decision in enumerate(out):
                if decision is None:
                    reason = reasons.get(i) or full
                    out[i] = self._none(fleet, view, "", (), strategy, per_request_ms, reason)
        return out

    # -- adaptive --------------------------------------------------------------------------

    def choose_strategy(self, request: RouteRequest) -> tuple[str, str]:
        """The concrete strategy ``adaptive`` uses for a request, and why.

        The learned strategies already learn, per request context, which candidate does best
        under the objective, with exploration and logged propensities; ``adaptive`` adds only
        redundancy: an anomalous request goes to the best ``k >= 2`` (``top_k``), any other to
        the best one (``switch_transformer``).
        """
        ((choice, _),) = self.choose_strategies([request]).items()
        return choice

    def choose_strategies(
        self, requests: Sequence[RouteRequest]
    ) -> dict[tuple[str, str], list[int]]:
        """:meth:`choose_strategy` for many requests: the positions in ``requests`` of each
        ``(strategy, why)``, in order."""
        threshold = self.config.tda_request_threshold
        n = len(requests)
        flags = [(a or 0.0) >= threshold for a in map(_anomaly, requests)]
        learned = ("switch_transformer", "learned")
        if not any(flags):
            return {learned: list(range(n))}
        groups = {
            ("top_k", f"anomalous request (>= {threshold:g})"): list(compress(range(n), flags))
        }
        if not all(flags):
            groups[learned] = list(compress(range(n), map(not_, flags)))
        return groups


def explain_no_eligible(
    fleet: PreparedFleet, view: LiveView, request_type: str, capabilities: tuple[str, ...]
) -> str:
    """Why nothing is eligible, counted per cause (a service may count under several)."""
    n = fleet.n
    if n == 0:
        return "no eligible service: the fleet is empty"
    parts: list[str] = []
    missing = fleet.missing_capabilities(capabilities)
    for cap in missing:
        parts.append(f"no service offers capability {cap!r}")
    types = fleet.type_mask(request_type)
    if types is not None:
        wrong = int((~types).sum())
        if wrong == n:
            parts.append(f"no service serves type {request_type!r}")
        elif wrong:
            parts.append(f"{wrong} do not serve type {request_type!r}")
    for cap in capabilities:
        lacking = int(fleet.lacking(cap).sum())
        if lacking > 0 and cap not in missing:
            parts.append(f"{lacking} lack capability {cap!r}")
    services = fleet.snapshot.services
    for status in (ServiceStatus.DISABLED, ServiceStatus.DRAINING):
        count = sum(1 for s in services if s.status == status)
        if count:
            parts.append(f"{count} {status.value}")
    unhealthy = sum(1 for s in services if s.health == Health.UNHEALTHY)
    if unhealthy:
        parts.append(f"{unhealthy} unhealthy")
    open_breakers = int((~view.breaker_allows).sum())
    if open_breakers:
        parts.append(f"{open_breakers} breaker open")
    at_capacity = int((view.in_flight >= fleet.capacity).sum())
    if at_capacity:
        parts.append(f"{at_capacity} at capacity")
    cooling = 0 if view.cooling is None else int(view.cooling.sum())
    if cooling:
        parts.append(f"{cooling} cooling down after a 429 (Retry-After)")
    return f"no eligible service among {n}: " + ", ".join(parts or ["unknown cause"])

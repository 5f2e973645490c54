"""What every strategy shares: the Choice it returns, the contexts it sees, the dependency
object it is built with, and the capacity-aware assignment used by batch paths.

Every strategy picks from services the engine has already found eligible (candidates for the
request: accepted type, every required capability; routable, breaker allows, under capacity)
and returns a :class:`Choice` of service indices (snapshot order). Each has a single-request
path tuned for latency and a batch path that respects capacity across the batch: the engine
passes a shared ``load`` array (in-flight + assigned so far in this batch) that every batch
path checks and updates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from routing.core.config import EngineConfig
from routing.core.features import featurize
from routing.core.fleet import PreparedFleet
from routing.core.learning import OutcomeLearner
from routing.core.types import LiveView, RouteRequest

NEG_INF = -np.inf


class Choice(NamedTuple):
    """A strategy's pick: service indices in preference order, one score each.

    Batch loops build plain tuples in this field order (cheaper than the NamedTuple call).
    """

    selected: list[int]
    scores: list[float]
    confidence: float
    reason: str
    strategy: str
    # Probability with which selected[0] was chosen (1.0: deterministic; None: unknown).
    propensity: float | None = 1.0


@dataclass(slots=True)
class RouteContext:
    """What a strategy sees for one request."""

    fleet: PreparedFleet
    view: LiveView
    eligible: np.ndarray  # bool (n,)
    eligible_idx: np.ndarray  # int, indices of eligible services
    top_k: int


class BatchContext:
    """Shared state while routing a batch: loads grow as requests are assigned."""

    def __init__(
        self, fleet: PreparedFleet, view: LiveView, requests: Sequence[RouteRequest]
    ) -> None:
        self.fleet = fleet
        self.view = view
        self.requests = requests
        self.load = np.array(view.in_flight, dtype=np.float64)
        self._features: np.ndarray | None = None

    def features(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Feature rows of the requests at ``positions`` (increasing), featurised once."""
        if self._features is None:
            self._features = featurize(self.requests)
        if len(positions) == len(self.requests):  # the whole batch: no copy
            return self._features
        return self._features[np.asarray(positions, dtype=np.int64)]

    def available(self, mask: np.ndarray) -> np.ndarray:
        return mask & (self.load < self.fleet.capacity)


@dataclass(frozen=True)
class StrategyDeps:
    """What strategies need from the engine, and nothing more: the configuration, the RNG,
    the online learner and its per-snapshot tables, and (for ``adaptive``) the other
    strategies and the rule that picks among them."""

    config: EngineConfig
    rng: random.Random
    learner: OutcomeLearner
    learned_table: Callable[[PreparedFleet, str], Any]
    strategy: Callable[[str], Strategy]
    choose_strategy: Callable[[RouteRequest], tuple[str, str]]
    choose_strategies: Callable[[Sequence[RouteRequest]], dict[tuple[str, str], list[int]]]


class Strategy:
    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, deps: StrategyDeps) -> None:
        self.deps = deps
        self.config = deps.config

    def route(self, request: RouteRequest, ctx: RouteContext) -> Choice:
        raise NotImplementedError

    def route_batch(
        self,
        requests: Sequence[RouteRequest],
        positions: Sequence[int],
        mask: np.ndarray,
        top_k: int,
        bctx: BatchContext,
    ) -> list[Choice | None]:
        """Route ``requests`` (at ``positions`` in the batch) among services in ``mask``;
        None for a request that finds every eligible service full. A strategy overrides this
        or :meth:`route_groups` (each defaults to the other); by default, ``requests`` as one
        group."""
        return self.route_groups(requests, [(range(len(requests)), mask)], top_k, bctx)

    def route_groups(
        self,
        requests: Sequence[RouteRequest],
        groups: Sequence[tuple[Sequence[int], np.ndarray]],
        top_k: int,
        bctx: BatchContext,
        prefix: str = "",
    ) -> list[Choice | None]:
        """Route a whole batch, given as ``(positions, mask)`` groups (the requests at
        ``positions`` may go to the services in ``mask``): the choice per batch position, None
        for a position in no group or that found every eligible service full; ``prefix``
        starts every reason. By default :meth:`route_batch` per group, in order."""
        out: list[Choice | None] = [None] * len(requests)
        for positions, mask in groups:
            whole = len(positions) == len(requests)
            group = requests if whole else [requests[i] for i in positions]
            picked = self.route_batch(group, positions, mask, top_k, bctx)
            if prefix:
                picked = [c if c is None else c._replace(reason=prefix + c.reason) for c in picked]
            if whole:
                return picked
            for i, choice in zip(positions, picked, strict=True):
                out[i] = choice
        return out


def capacity_factor_bound(total_load: float, capacity: np.ndarray, factor: float) -> np.ndarray:
    """Switch-style expert capacity: ``factor`` x each service's fair share of the load,
    shares proportional to capacity, at least 1."""
    share = capacity / capacity.sum()
    return np.maximum(1.0, np.ceil(factor * total_load * share))


def assign_in_order(scores: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Give each row its best-scoring column that has room, earlier rows first: row ``i``
    gets what is left after rows ``0..i-1`` took theirs, exactly as one row at a time would.

    ``scores`` (m, n) with -inf where a row may not go (not modified); ``remaining`` (n,)
    slots per column, decremented in place. Returns the column per row, -1 where nothing had
    room. Vectorised per fill: every row from ``start`` on takes its best column with room;
    the first row that would overfill a column is where that column filled, so the rows
    before it are final, the full columns close, and the rest choose again. (A row's logged
    propensity depends on which columns were full at its turn: see
    routing/core/strategies/learned.py ``_after_fills``.)
    """
    m, n = scores.shape
    choice = np.full(m, -1, dtype=np.int64)
    start = 0
    while start < m:
        closed = remaining <= 0
        sub = scores[start:]
        if closed.any():
            sub = sub.copy()
            sub[:, closed] = NEG_INF
        best = sub.argmax(axis=1)
        has = sub[np.arange(len(best)), best] > NEG_INF
        cols = np.where(has, best, n)  # n: nothing with room
        # each row's rank among the earlier rows taking the same column
        order = np.argsort(cols, kind="stable")
        ranked = cols[order]
        rank = np.empty(len(cols), dtype=np.int64)
        rank[order] = np.arange(len(cols)) - np.searchsorted(ranked, ranked, side="left")
        over = has & (rank >= np.append(remaining, np.inf)[cols])
        stop = int(over.argmax()) if over.any() else len(cols)
        taken = cols[:stop]
        kept = taken < n
        choice[start : start + stop] = np.where(kept, taken, -1)
        remaining -= np.bincount(taken[kept], minlength=n).astype(remaining.dtype)
        if stop == len(cols):
            break
        start += stop
    return choice


def softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

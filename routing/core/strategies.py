"""The seven routing strategies and their registry.

Every strategy picks from services the engine has already found eligible (routable, breaker
allows, under capacity, offering every required capability) and returns a :class:`Choice` of
service indices (snapshot order). Each has a single-request path tuned for latency and a batch
path that respects capacity across the batch: the engine passes a shared ``load`` array
(in-flight + assigned so far in this batch) that every batch path checks and updates.

``STRATEGIES`` maps a name to a strategy class; the engine instantiates them with its own
config and RNG (no module-level mutable state).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from routing.core.balancing import DEFAULT_LATENCY_MS, default_latency, p2c_cost, p2c_pick
from routing.core.features import featurize
from routing.core.fleet import PreparedFleet
from routing.core.hashing import key_hash, load_bound, payload_key
from routing.core.types import LiveView, RouteRequest

if TYPE_CHECKING:
    from routing.core.engine import RoutingEngine

_NEG_INF = -np.inf


class Choice(NamedTuple):
    """A strategy's pick: service indices in preference order, one score each.

    Batch loops build plain tuples in this field order (cheaper than the NamedTuple call).
    """

    selected: list[int]
    scores: list[float]
    confidence: float
    reason: str
    strategy: str


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


class Strategy:
    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, engine: RoutingEngine) -> None:
        self.engine = engine
        self.config = engine.config

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
        None for a request that finds every eligible service full."""
        raise NotImplementedError


# -- learned gate: switch_transformer, top_k --------------------------------------------------


def capacity_factor_bound(total_load: float, capacity: np.ndarray, factor: float) -> np.ndarray:
    """Switch-style expert capacity: ``factor`` x each service's fair share of the load,
    shares proportional to capacity, at least 1."""
    share = capacity / capacity.sum()
    return np.maximum(1.0, np.ceil(factor * total_load * share))


def assign_in_order(scores: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Give each row its best-scoring column that has room, earlier rows first.

    ``scores`` (m, n) with -inf where a row may not go (not modified); ``remaining`` (n,)
    slots per column, decremented in place. Returns the column per row, -1 where nothing had
    room. Runs in rounds: every pending row proposes its best open column, each column
    accepts proposals in row order up to its room, columns that filled up close, and the
    rejected rows propose again.
    """
    m, n = scores.shape
    choice = np.full(m, -1, dtype=np.int64)
    rows = np.arange(m)
    sub = scores
    while rows.size:
        closed = remaining <= 0
        if closed.any():
            sub = sub.copy() if sub is scores else sub
            sub[:, closed] = _NEG_INF
        best = sub.argmax(axis=1)
        has = sub[np.arange(len(rows)), best] > _NEG_INF
        if not has.all():
            rows, best = rows[has], best[has]
            if not rows.size:
                break
        order = np.argsort(best, kind="stable")
        cols = best[order]
        rank = np.arange(len(cols)) - np.searchsorted(cols, cols, side="left")
        accepted = rank < remaining[cols]
        choice[rows[order[accepted]]] = cols[accepted]
        remaining -= np.bincount(cols[accepted], minlength=n).astype(remaining.dtype)
        if accepted.all():
            break
        rows = np.sort(rows[order[~accepted]])
        sub = scores[rows]
    return choice


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class _GatedStrategy(Strategy):
    """Shared by switch_transformer (k = 1) and top_k."""

    def k_for(self, top_k: int) -> int:
        return 1

    def _adjusted(self, x: np.ndarray, fleet: PreparedFleet, load: np.ndarray) -> np.ndarray:
        scorer = self.engine.gate_scorer(fleet)
        penalty = (scorer.headroom_coef * (load / fleet.capacity_safe)).astype(np.float32)
        return scorer.logits(x) - penalty

    def route(self, request: RouteRequest, ctx: RouteContext) -> Choice:
        fleet, idx = ctx.fleet, ctx.eligible_idx
        k = min(self.k_for(ctx.top_k), len(idx))
        a = self._adjusted(featurize((request,)), fleet, ctx.view.in_flight)[0, idx]
        load = ctx.view.in_flight[idx]
        bound = capacity_factor_bound(
            load.sum() + k, fleet.capacity[idx], self.config.capacity_factor
        )
        room = load < bound
        p = _softmax(a)
        if k == 1:
            j = int(np.where(room, a, _NEG_INF).argmax())
            if not room[j]:
                j = int(a.argmax())
            order = [j]
        else:
            order = np.lexsort((-a, ~room))[:k].tolist()
        first = int(a.argmax())
        selected = [int(idx[j]) for j in order]
        if k == 1:
            scores = [float(p[order[0]])]
            confidence = scores[0]
            reason = f"gate top-1 of {len(idx)} eligible (p={confidence:.2f})"
        else:
            mass = float(p[order].sum())
            scores = [float(p[j]) / mass for j in order]
            confidence = mass
            reason = f"gate top-{k} of {len(idx)} eligible, weights renormalised over {k}"
        if first not in order:
            reason += (
                f"; first choice {fleet.ids[int(idx[first])]} at its capacity-factor bound "
                f"({int(bound[first])}), spilled"
            )
        return Choice(selected, scores, confidence, reason, self.name)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        m = len(positions)
        open_ = bctx.available(mask)
        n_open = int(open_.sum())
        if not n_open:
            return [None] * m
        k = min(self.k_for(top_k), n_open)
        adj = self._adjusted(bctx.features(positions), fleet, load)
        adj[:, ~open_] = _NEG_INF
        # Softmax numerators and row sums; only the chosen columns are divided out below.
        expd = np.exp(adj - adj.max(axis=1, keepdims=True))
        denom = expd.sum(axis=1, keepdims=True)
        cap = fleet.capacity
        bound = np.zeros_like(cap)
        bound[open_] = capacity_factor_bound(
            load[open_].sum() + m * k, cap[open_], self.config.capacity_factor
        )
        hard_room = np.where(open_, np.floor(cap - load), 0.0)
        room = np.minimum(np.where(open_, bound - load, 0.0), hard_room).clip(min=0)
        used = np.zeros_like(cap)
        chosen = np.full((m, k), -1, dtype=np.int64)
        work = adj.copy()
        for r in range(k):
            col = assign_in_order(work, room)
            missing = np.flatnonzero(col < 0)
            if missing.size:
                # Every service is at its capacity-factor bound for these rows: fall back to
                # the hard capacity (never above max_capacity).
                hard_left = hard_room - used - np.bincount(col[col >= 0], minlength=len(cap))
                col[missing] = assign_in_order(work[missing], hard_left.clip(min=0))
            ok = col >= 0
            chosen[ok, r] = col[ok]
            used += np.bincount(col[ok], minlength=len(cap))
            room = np.minimum(room, (hard_room - used).clip(min=0))
            work[np.flatnonzero(ok), col[ok]] = _NEG_INF
        load += used
        spilled = ~(chosen == adj.argmax(axis=1)[:, None]).any(axis=1)
        picked_p = np.take_along_axis(expd, chosen.clip(min=0), axis=1) / denom
        if k == 1:
            base, spill = "gate top-1", "gate top-1; first choice full in this batch, spilled"
        else:
            base = f"gate top-{k}, weights renormalised"
            spill = base + "; first choice full in this batch, spilled"
        name = self.name
        out: list[Choice | None] = []
        if k == 1:
            for sel, p, was_spilled in zip(
                chosen.tolist(), picked_p.tolist(), spilled.tolist(), strict=True
            ):
                if sel[0] < 0:
                    out.append(None)
                else:
                    out.append((sel, p, p[0], spill if was_spilled else base, name))
            return out
        valid = chosen >= 0
        weights = np.where(valid, picked_p, 0.0)
        mass = weights.sum(axis=1)
        weights /= np.where(mass > 0, mass, 1.0)[:, None]
        if valid.all():
            return [
                (sel, w, total, spill if was_spilled else base, name)
                for sel, w, total, was_spilled in zip(
                    chosen.tolist(), weights.tolist(), mass.tolist(), spilled.tolist(), strict=True
                )
            ]
        for sel, w, total, full, was_spilled in zip(
            chosen.tolist(),
            weights.tolist(),
            mass.tolist(),
            valid.all(axis=1).tolist(),
            spilled.tolist(),
            strict=True,
        ):
            if not full:  # fewer than k services had room for this row
                w = [x for x, c in zip(w, sel, strict=True) if c >= 0]
                sel = [c for c in sel if c >= 0]
                if not sel:
                    out.append(None)
                    continue
            out.append((sel, w, total, spill if was_spilled else base, name))
        return out


class SwitchTransformer(_GatedStrategy):
    name = "switch_transformer"
    description = "learned gate, top-1 with capacity factor and spill"


class TopK(_GatedStrategy):
    name = "top_k"
    description = "learned gate, top-k with renormalised weights"

    def k_for(self, top_k: int) -> int:
        return max(1, top_k)


# -- semantic ---------------------------------------------------------------------------------


class Semantic(Strategy):
    name = "semantic"
    description = "best match of request type and capabilities to specialisations, ties by load"

    def route(self, request, ctx):
        fleet, idx, view = ctx.fleet, ctx.eligible_idx, ctx.view
        base = fleet.semantic_scores(request.request_type, request.capabilities)[idx]
        best = base.max()
        tied = idx[base >= best - 1e-9]
        if len(tied) > 1:
            util = view.in_flight[tied] / fleet.capacity_safe[tied]
            chosen = int(tied[int(util.argmin())])
        else:
            chosen = int(tied[0])
        return self._choice(request, chosen, float(best), len(tied), fleet)

    def _choice(self, request, chosen, score, n_tied, fleet) -> Choice:
        top = PreparedFleet.semantic_max(request.request_type, request.capabilities)
        confidence = score / top if top else 0.0
        if top == 0:
            reason = "no type or capabilities to match: least utilised"
        elif n_tied > 1:
            reason = f"match score {score:.2f} shared by {n_tied}: least utilised"
        else:
            reason = f"best match score {score:.2f} ({fleet.types[chosen]})"
        return Choice([chosen], [score], confidence, reason, self.name)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        cap, cap_safe = fleet.capacity_list, fleet.capacity_safe.tolist()
        name = self.name
        out: list[Choice | None] = [None] * len(requests)
        by_type: dict[str, list[int]] = {}
        for j, r in enumerate(requests):
            by_type.setdefault(r.request_type, []).append(j)
        caps = requests[0].capabilities if requests else ()
        loads = load.tolist()
        for request_type, rows in by_type.items():
            base = fleet.semantic_scores(request_type, caps)
            open_ = np.flatnonzero(mask & (load < fleet.capacity))
            tiers = sorted({float(base[i]) for i in open_}, reverse=True)
            tier_iter = iter(tiers)
            heap: list[tuple[float, int]] = []
            score = 0.0
            top = PreparedFleet.semantic_max(request_type, caps)
            reason = ""
            for j in rows:
                while not heap:
                    score = next(tier_iter, None)
                    if score is None:
                        break
                    reason = (
                        f"match score {score:.2f}: least utilised of the services sharing it"
                        if top
                        else "no type or capabilities to match: least utilised"
                    )
                    heap = [(loads[i] / cap_safe[i], int(i)) for i in open_ if base[i] == score]
                    heap = [(u, i) for u, i in heap if loads[i] < cap[i]]
                    heapq.heapify(heap)
                if not heap:
                    break
                _, i = heapq.heappop(heap)
                loads[i] += 1
                if loads[i] < cap[i]:
                    heapq.heappush(heap, (loads[i] / cap_safe[i], i))
                out[j] = ([i], [score], score / top if top else 0.0, reason, name)
            load[:] = loads
        return out


# -- tda_aware --------------------------------------------------------------------------------


class TdaAware(Strategy):
    name = "tda_aware"
    description = "avoid anomalous services; more redundancy for anomalous requests"

    def k_for(self, request: RouteRequest, top_k: int) -> int:
        if (request.anomaly_score or 0.0) >= self.config.tda_request_threshold:
            return max(2, top_k)
        return 1

    def _costs(self, util, anomaly, error_rate) -> np.ndarray:
        cost = util + self.config.tda_penalty * anomaly + error_rate
        avoid = anomaly >= self.config.tda_avoid_threshold
        if avoid.any() and not avoid.all():
            cost = cost + np.where(avoid, 1e6, 0.0)
        return cost

    def _reason(self, k: int, request: RouteRequest, n_avoided: int) -> str:
        reason = "lowest utilisation + anomaly + error cost"
        if k > 1:
            reason += f"; request anomaly {request.anomaly_score:.2f}: {k} services for redundancy"
        if n_avoided:
            reason += f"; {n_avoided} anomalous service(s) avoided"
        return reason

    def route(self, request, ctx):
        fleet, idx, view = ctx.fleet, ctx.eligible_idx, ctx.view
        k = min(self.k_for(request, ctx.top_k), len(idx))
        anomaly = view.anomaly[idx]
        cost = self._costs(
            view.in_flight[idx] / fleet.capacity_safe[idx], anomaly, view.error_rate[idx]
        )
        order = np.argsort(cost, kind="stable")[:k] if k > 1 else [int(cost.argmin())]
        selected = [int(idx[j]) for j in order]
        scores = [1.0 / (1.0 + float(cost[j])) for j in order]
        n_avoided = int((anomaly >= self.config.tda_avoid_threshold).sum())
        n_avoided = n_avoided if n_avoided < len(idx) else 0
        return Choice(selected, scores, scores[0], self._reason(k, request, n_avoided), self.name)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, view, load = bctx.fleet, bctx.view, bctx.load
        open_ = np.flatnonzero(bctx.available(mask))
        out: list[Choice | None] = [None] * len(requests)
        if not open_.size:
            return out
        static = self._costs(np.zeros(len(open_)), view.anomaly[open_], view.error_rate[open_])
        static_cost = dict(zip(open_.tolist(), static.tolist(), strict=True))
        n_avoided = int((view.anomaly[open_] >= self.config.tda_avoid_threshold).sum())
        n_avoided = n_avoided if n_avoided < len(open_) else 0
        cap, cap_safe = fleet.capacity_list, fleet.capacity_safe.tolist()
        loads = load.tolist()
        heap = [(static_cost[i] + loads[i] / cap_safe[i], i) for i in static_cost]
        heapq.heapify(heap)
        reasons: dict[int, str] = {}
        name = self.name
        for j, request in enumerate(requests):
            k = min(self.k_for(request, top_k), len(heap))
            if k == 0:
                break
            picked = [heapq.heappop(heap) for _ in range(k)]
            for _, i in picked:
                loads[i] += 1
                if loads[i] < cap[i]:
                    heapq.heappush(heap, (static_cost[i] + loads[i] / cap_safe[i], i))
            scores = [1.0 / (1.0 + c) for c, _ in picked]
            reason = reasons.get(k) if k == 1 else self._reason(k, request, n_avoided)
            if reason is None:
                reason = reasons[k] = self._reason(k, request, n_avoided)
            out[j] = ([i for _, i in picked], scores, scores[0], reason, name)
        load[:] = loads
        return out


# -- consistent_hash --------------------------------------------------------------------------


def routing_key(request: RouteRequest) -> tuple[str, str]:
    """The string a request is hashed by, and where it came from."""
    if request.key is not None:
        return str(request.key), "key"
    if request.payload is not None:
        return payload_key(request.payload), "payload"
    caps = ",".join(request.capabilities)
    return f"{request.request_type}|{caps}|{' '.join(request.tokens)}", "request"


class ConsistentHash(Strategy):
    name = "consistent_hash"
    description = "bounded-load consistent hashing on the request key"

    _OWN = {src: f"hash of {src}: own ring position" for src in ("key", "payload", "request")}

    def _choice(self, found, source: str, bound: int, fleet) -> Choice:
        service, skipped = found
        if not skipped:
            return Choice([service], [1.0], 1.0, self._OWN[source], self.name)
        reason = (
            f"hash of {source}: {skipped} service(s) ahead on the ring ineligible or at "
            f"the load bound {bound}"
        )
        confidence = 1.0 / (1 + skipped)
        return Choice([service], [confidence], confidence, reason, self.name)

    def route(self, request, ctx):
        fleet, view = ctx.fleet, ctx.view
        key, source = routing_key(request)
        in_flight = view.in_flight
        total = float(in_flight @ ctx.eligible) + 1.0
        bound = load_bound(total, len(ctx.eligible_idx), self.config.hash_eps)
        found = fleet.ring.lookup(key_hash(key), ctx.eligible, in_flight, bound)
        if found is None:  # everyone at the bound is impossible, but never fail on it
            found = fleet.ring.lookup(key_hash(key), ctx.eligible)
        return self._choice(found, source, bound, fleet)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        ring, eps = fleet.ring, self.config.hash_eps
        eligible = mask.tolist()
        loads = load.tolist()
        limits = fleet.capacity_list
        n_elig = sum(eligible)
        total = sum(x for x, e in zip(loads, eligible, strict=True) if e)
        points, owners, start = ring.points, ring.owners, ring.start
        own, name, scale = self._OWN, self.name, (1.0 + eps) / max(n_elig, 1)
        out: list[Choice | None] = []
        for request in requests:
            key, source = routing_key(request)
            h = key_hash(key)
            bound = max(1, math.ceil(scale * (total + 1)))  # hashing.load_bound, inlined
            # Fast path: the key's own service is eligible and under both limits.
            owner = owners[start(h)] if points else -1
            if (
                owner >= 0
                and eligible[owner]
                and loads[owner] < bound
                and loads[owner] < limits[owner]
            ):
                loads[owner] += 1
                total += 1
                out.append(([owner], [1.0], 1.0, own[source], name))
                continue
            found = ring.lookup(h, eligible, loads, bound, limits)
            if found is None:
                found = ring.lookup(h, eligible, loads, math.inf, limits)
            if found is None:
                out.append(None)
                continue
            loads[found[0]] += 1
            total += 1
            out.append(self._choice(found, source, bound, fleet))
        load[:] = loads
        return out


# -- power_of_two -----------------------------------------------------------------------------


_P2C_BATCH_REASON = "lower EWMA latency x (in-flight + 1) / weight of two random choices"


class PowerOfTwo(Strategy):
    name = "power_of_two"
    description = "two random eligible services, the lower EWMA latency x (in-flight+1)/weight"

    @staticmethod
    def _choice(chosen, other, cost, other_cost, fleet) -> Choice:
        if other is None:
            return Choice([chosen], [1.0], 1.0, "only one eligible service", PowerOfTwo.name)
        confidence = other_cost / (cost + other_cost) if cost + other_cost > 0 else 0.5
        reason = f"cost {cost:.3g} beat {fleet.ids[other]} at {other_cost:.3g}"
        return Choice([chosen], [confidence], confidence, reason, PowerOfTwo.name)

    def route(self, request, ctx):
        fleet, view, idx = ctx.fleet, ctx.view, ctx.eligible_idx
        n = len(idx)
        if n == 1:
            return self._choice(int(idx[0]), None, 0.0, 0.0, fleet)
        rnd = self.engine.rng.random
        i = int(rnd() * n)
        j = int(rnd() * (n - 1))
        if j >= i:
            j += 1
        a, b = int(idx[i]), int(idx[j])
        lat = view.ewma_latency_ms
        lat_a, lat_b = float(lat[a]), float(lat[b])
        if lat_a == 0.0 or lat_b == 0.0:
            fallback = default_latency(lat[idx].tolist())
            lat_a, lat_b = lat_a or fallback, lat_b or fallback
        load, weight = view.in_flight, fleet.weight_list
        cost_a = p2c_cost(lat_a, float(load[a]), weight[a])
        cost_b = p2c_cost(lat_b, float(load[b]), weight[b])
        cap = fleet.capacity_safe
        if cost_b < cost_a or (cost_b == cost_a and load[b] / cap[b] < load[a] / cap[a]):
            return self._choice(b, a, cost_b, cost_a, fleet)
        return self._choice(a, b, cost_a, cost_b, fleet)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, view, load = bctx.fleet, bctx.view, bctx.load
        candidates = np.flatnonzero(bctx.available(mask)).tolist()
        lat = view.ewma_latency_ms.tolist()
        fallback = default_latency([lat[i] for i in candidates]) if candidates else 1.0
        fallback = fallback or DEFAULT_LATENCY_MS
        loads, weight = load.tolist(), fleet.weight_list
        cap = fleet.capacity_list
        cap_safe = fleet.capacity_safe.tolist()
        rng = self.engine.rng
        name = self.name
        out: list[Choice | None] = []
        for _ in requests:
            if not candidates:
                out.append(None)
                continue
            chosen, other, cost, other_cost = p2c_pick(
                candidates, lat, loads, weight, cap_safe, rng, fallback
            )
            loads[chosen] += 1
            if loads[chosen] >= cap[chosen]:
                candidates.remove(chosen)
            if other is None:
                out.append(([chosen], [1.0], 1.0, "only one eligible service", name))
                continue
            confidence = other_cost / (cost + other_cost) if cost + other_cost > 0 else 0.5
            out.append(([chosen], [confidence], confidence, _P2C_BATCH_REASON, name))
        load[:] = loads
        return out


# -- adaptive ---------------------------------------------------------------------------------


class Adaptive(Strategy):
    name = "adaptive"
    description = "a learned policy picks the strategy from the request's context"

    def route(self, request, ctx):
        name, why = self.engine.choose_strategies((request,), ctx.fleet, ctx.view, ctx.eligible)[0]
        choice = self.engine.strategy(name).route(request, ctx)
        return choice._replace(reason=f"adaptive chose {name} ({why}): {choice.reason}")

    def route_batch(self, requests, positions, mask, top_k, bctx):
        features = bctx.features(positions) if self.engine.policy is not None else None
        picks = self.engine.choose_strategies(
            requests, bctx.fleet, bctx.view, mask, features=features
        )
        groups: dict[str, list[int]] = {}
        for j, (name, _) in enumerate(picks):
            groups.setdefault(name, []).append(j)
        out: list[Choice | None] = [None] * len(requests)
        texts: dict[tuple[str, str], str] = {}  # batch reasons repeat: format each pair once
        for name, rows in groups.items():
            sub = self.engine.strategy(name).route_batch(
                [requests[j] for j in rows], [positions[j] for j in rows], mask, top_k, bctx
            )
            for j, choice in zip(rows, sub, strict=True):
                if choice is not None:
                    sel, scores, confidence, reason, concrete = choice
                    text = texts.get((picks[j][1], reason))
                    if text is None:
                        text = f"adaptive chose {name} ({picks[j][1]}): {reason}"
                        texts[(picks[j][1], reason)] = text
                    choice = (sel, scores, confidence, text, concrete)
                out[j] = choice
        return out


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (SwitchTransformer, TopK, Semantic, TdaAware, ConsistentHash, PowerOfTwo, Adaptive)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``; ValueError naming the valid ones."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown routing strategy {name!r}; valid: {', '.join(STRATEGY_NAMES)}"
        ) from None

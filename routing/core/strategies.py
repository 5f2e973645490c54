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
from routing.core.learning import complexity_bin
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


# Temperature of the top-k weights over the chosen services' estimated rewards.
TOPK_WEIGHT_TEMPERATURE = 0.1


class _GatedStrategy(Strategy):
    """Shared by switch_transformer (k = 1) and top_k: the online learner's estimates.

    Each candidate's score is its estimated reward for this request type and complexity
    (:mod:`routing.core.learning`) minus a small load term; a candidate above its Switch
    capacity-factor share loses ``spill_margin``, so it spills to a candidate about as good,
    never to a clearly worse one. The first service is chosen epsilon-greedily and its
    probability is the decision's propensity; top-k adds the next best by score.
    """

    def k_for(self, top_k: int) -> int:
        return 1

    def _reason(self, k, n, mean, evidence, explored, eps, spilled) -> str:
        if k == 1:
            text = f"learned: est. reward {mean:.2f} from {evidence:.0f} outcomes, best of {n}"
        else:
            text = f"learned top-{k} of {n}: first est. reward {mean:.2f} ({evidence:.0f} outcomes)"
        if explored:
            text += f"; exploring (epsilon {eps:.3f})"
        if spilled:
            text += "; best one above its capacity-factor share, spilled to an equal"
        return text

    def route(self, request: RouteRequest, ctx: RouteContext) -> Choice:
        fleet, idx, view = ctx.fleet, ctx.eligible_idx, ctx.view
        learner = self.engine.learner
        lcfg = learner.config
        table = self.engine.learned_table(fleet, request.request_type)
        b = complexity_bin(request.complexity, lcfg.bins)
        mean = table.mean[b, idx]
        evidence = table.evidence[b, idx]
        load = view.in_flight[idx]
        k = min(self.k_for(ctx.top_k), len(idx))
        bound = capacity_factor_bound(
            load.sum() + k, fleet.capacity[idx], self.config.capacity_factor
        )
        over = load >= bound
        score = mean - lcfg.load_penalty * (load / fleet.capacity_safe[idx])
        if over.any():
            score = score - lcfg.spill_margin * over
        chosen, greedy, propensity, eps = learner.choose(score, float(evidence.sum()))
        order = [chosen]
        if k > 1:
            order += [int(j) for j in np.argsort(-score, kind="stable") if j != chosen][: k - 1]
        selected = [int(idx[j]) for j in order]
        best_unpenalised = int(
            (mean - lcfg.load_penalty * load / fleet.capacity_safe[idx]).argmax()
        )
        reason = self._reason(
            k,
            len(idx),
            float(mean[chosen]),
            float(evidence[chosen]),
            chosen != greedy,
            eps,
            greedy != best_unpenalised and bool(over[best_unpenalised]),
        )
        if k == 1:
            scores = [float(mean[chosen])]
        else:
            scores = _softmax(score[order] / TOPK_WEIGHT_TEMPERATURE).tolist()
        return Choice(selected, scores, propensity, reason, self.name, propensity)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        m = len(positions)
        open_ = bctx.available(mask)
        open_idx = np.flatnonzero(open_)
        n_open = len(open_idx)
        if not n_open:
            return [None] * m
        k = min(self.k_for(top_k), n_open)
        learner = self.engine.learner
        lcfg = learner.config
        # The engine groups a batch by (type, capabilities): one request type here.
        table = self.engine.learned_table(fleet, requests[0].request_type)
        complexity = np.fromiter((r.complexity for r in requests), np.float64, m)
        bins = np.clip((np.nan_to_num(complexity) * lcfg.bins).astype(np.int64), 0, lcfg.bins - 1)
        mean = table.mean[bins]  # (m, n)
        evidence = table.evidence[bins][:, open_idx].sum(axis=1)
        util = load / fleet.capacity_safe
        score = mean - lcfg.load_penalty * util
        score[:, ~open_] = _NEG_INF
        greedy = score.argmax(axis=1)
        scale = lcfg.evidence_scale
        eps = np.maximum(lcfg.epsilon_min, lcfg.epsilon * scale / (scale + evidence))
        if n_open == 1:
            eps[:] = 0.0
        rng = learner.np_rng
        explore = np.flatnonzero(rng.random(m) < eps)
        work = score.copy()
        if explore.size:
            work[explore, open_idx[rng.integers(0, n_open, explore.size)]] = np.inf
        cap = fleet.capacity
        remaining = np.where(open_, np.floor(cap - load), 0.0).clip(min=0)
        chosen = np.full((m, k), -1, dtype=np.int64)
        for r in range(k):
            col = assign_in_order(work, remaining)
            ok = col >= 0
            chosen[ok, r] = col[ok]
            work[np.flatnonzero(ok), col[ok]] = _NEG_INF
        used = np.bincount(chosen[chosen >= 0], minlength=len(cap))
        load += used
        first = chosen[:, 0]
        propensity = eps / n_open + np.where(first == greedy, 1.0 - eps, 0.0)
        first_mean = np.take_along_axis(mean, first.clip(min=0)[:, None], axis=1)[:, 0]
        name = self.name
        base = "learned top-1" if k == 1 else f"learned top-{k}"
        explored_text = base + "; exploring"
        explored = np.zeros(m, dtype=bool)
        explored[explore] = True
        out: list[Choice | None] = []
        if k == 1:
            for sel, mu, p, x in zip(
                first.tolist(), first_mean.tolist(), propensity.tolist(), explored.tolist(),
                strict=True,
            ):  # fmt: skip
                if sel < 0:
                    out.append(None)
                else:
                    out.append(([sel], [mu], p, explored_text if x else base, name, p))
            return out
        weights = np.take_along_axis(score, chosen.clip(min=0), axis=1)
        weights = np.where(chosen >= 0, weights, _NEG_INF)
        weights = _softmax(weights / TOPK_WEIGHT_TEMPERATURE)
        for sel, w, p, x in zip(
            chosen.tolist(), weights.tolist(), propensity.tolist(), explored.tolist(), strict=True
        ):
            if sel[0] < 0:
                out.append(None)
                continue
            if -1 in sel:
                w = [wi for wi, c in zip(w, sel, strict=True) if c >= 0]
                sel = [c for c in sel if c >= 0]
            out.append((sel, w, p, explored_text if x else base, name, p))
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
                out[j] = ([i], [score], score / top if top else 0.0, reason, name, 1.0)
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
            out[j] = ([i for _, i in picked], scores, scores[0], reason, name, 1.0)
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
                out.append(([owner], [1.0], 1.0, own[source], name, 1.0))
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
    def _choice(chosen, other, cost, other_cost, fleet, propensity=None) -> Choice:
        if other is None:
            return Choice([chosen], [1.0], 1.0, "only one eligible service", PowerOfTwo.name)
        confidence = other_cost / (cost + other_cost) if cost + other_cost > 0 else 0.5
        reason = f"cost {cost:.3g} beat {fleet.ids[other]} at {other_cost:.3g}"
        return Choice([chosen], [confidence], confidence, reason, PowerOfTwo.name, propensity)

    @staticmethod
    def propensity(n: int, worse: int) -> float:
        """P(a service is chosen) when ``worse`` of the other ``n - 1`` candidates cost more:
        it must be sampled (2/n) with one of those as its pair (worse / (n - 1))."""
        return 2.0 * worse / (n * (n - 1))

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
            a, b, cost_a, cost_b = b, a, cost_b, cost_a
        # Ties counted as worse: a slight overestimate where costs are exactly equal.
        lat_all = lat[idx]
        if not lat_all.all():
            lat_all = np.where(lat_all > 0, lat_all, default_latency(lat_all.tolist()))
        costs = lat_all * (load[idx] + 1.0) / fleet.weight[idx]
        worse = np.count_nonzero(costs >= cost_a) - 1
        p = self.propensity(n, max(int(worse), 1))
        return self._choice(a, b, cost_a, cost_b, fleet, p)

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
                out.append(([chosen], [1.0], 1.0, "only one eligible service", name, 1.0))
                continue
            confidence = other_cost / (cost + other_cost) if cost + other_cost > 0 else 0.5
            out.append(([chosen], [confidence], confidence, _P2C_BATCH_REASON, name, None))
        load[:] = loads
        return out


# -- adaptive ---------------------------------------------------------------------------------


class Adaptive(Strategy):
    name = "adaptive"
    description = "learned choice of service, with redundancy for anomalous requests"

    def route(self, request, ctx):
        name, why = self.engine.choose_strategy(request)
        if name == "top_k" and ctx.top_k < 2:
            ctx = RouteContext(ctx.fleet, ctx.view, ctx.eligible, ctx.eligible_idx, 2)
        choice = self.engine.strategy(name).route(request, ctx)
        return choice._replace(reason=f"adaptive chose {name} ({why}): {choice.reason}")

    def route_batch(self, requests, positions, mask, top_k, bctx):
        picks = [self.engine.choose_strategy(r) for r in requests]
        groups: dict[str, list[int]] = {}
        for j, (name, _) in enumerate(picks):
            groups.setdefault(name, []).append(j)
        out: list[Choice | None] = [None] * len(requests)
        texts: dict[tuple[str, str], str] = {}  # batch reasons repeat: format each pair once
        for name, rows in groups.items():
            k = max(2, top_k) if name == "top_k" else top_k
            sub = self.engine.strategy(name).route_batch(
                [requests[j] for j in rows], [positions[j] for j in rows], mask, k, bctx
            )
            for j, choice in zip(rows, sub, strict=True):
                if choice is not None:
                    sel, scores, confidence, reason, concrete, propensity = choice
                    text = texts.get((picks[j][1], reason))
                    if text is None:
                        text = f"adaptive chose {name} ({picks[j][1]}): {reason}"
                        texts[(picks[j][1], reason)] = text
                    choice = (sel, scores, confidence, text, concrete, propensity)
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

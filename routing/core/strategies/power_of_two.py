"""power_of_two: two random candidates, the lower EWMA latency x (in-flight + 1) / weight."""

from __future__ import annotations

import numpy as np

from routing.core.balancing import DEFAULT_LATENCY_MS, default_latency, p2c_cost, p2c_pick
from routing.core.strategies.base import Choice, Strategy

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
    def propensity(n: int, worse: float) -> float:
        """P(a service is chosen) when it beats ``worse`` of the other ``n - 1`` candidates (a
        tie counting half): it must be sampled with one of them as its pair, each pair drawn
        with probability 2 / (n (n - 1)), and it wins that pair (or, tied, half of the time)."""
        return 2.0 * worse / (n * (n - 1))

    def route(self, request, ctx):
        fleet, view, idx = ctx.fleet, ctx.view, ctx.eligible_idx
        n = len(idx)
        if n == 1:
            return self._choice(int(idx[0]), None, 0.0, 0.0, fleet)
        rnd = self.deps.rng.random
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
        # Which pairs it wins: a cheaper cost, or an equal cost and a lower load share; a
        # pair equal in both keeps the one sampled first, so it wins half of the time.
        lat_all = lat[idx]
        if not lat_all.all():
            lat_all = np.where(lat_all > 0, lat_all, default_latency(lat_all.tolist()))
        costs = lat_all * (load[idx] + 1.0) / fleet.weight[idx]
        beaten = int(np.count_nonzero(costs > cost_a))  # (plain ints: numpy scalars would
        ties = int(np.count_nonzero(costs >= cost_a)) - beaten - 1  # slow all that follows)
        if ties:  # (rare once latencies are measured; every pair on an idle, alike fleet)
            tied = costs == cost_a
            share, share_a = load[idx] / cap[idx], load[a] / cap[a]
            beaten += int(np.count_nonzero(tied & (share > share_a)))
            beaten += 0.5 * (int(np.count_nonzero(tied & (share == share_a))) - 1)
        p = self.propensity(n, max(beaten, 0.5))
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
        rng = self.deps.rng
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

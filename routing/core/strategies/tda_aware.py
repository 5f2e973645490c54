"""tda_aware: avoid anomalous services; more redundancy for anomalous requests."""

from __future__ import annotations

import heapq

import numpy as np

from routing.core.strategies.base import Choice, Strategy
from routing.core.types import RouteRequest


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

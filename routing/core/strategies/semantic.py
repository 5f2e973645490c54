"""semantic: the best match of request type and capabilities to specialisations, ties by load."""

from __future__ import annotations

import heapq

import numpy as np

from routing.core.fleet import PreparedFleet
from routing.core.strategies.base import Choice, Strategy


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

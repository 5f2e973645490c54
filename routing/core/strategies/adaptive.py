"""adaptive: the learned choice of service, with redundancy for anomalous requests."""

from __future__ import annotations

import numpy as np

from routing.core.strategies.base import Choice, RouteContext, Strategy


class Adaptive(Strategy):
    name = "adaptive"
    description = "learned choice of service, with redundancy for anomalous requests"

    def route(self, request, ctx):
        name, why = self.deps.choose_strategy(request)
        if name == "top_k" and ctx.top_k < 2:
            ctx = RouteContext(ctx.fleet, ctx.view, ctx.eligible, ctx.eligible_idx, 2)
        choice = self.deps.strategy(name).route(request, ctx)
        return choice._replace(reason=f"adaptive chose {name} ({why}): {choice.reason}")

    def route_groups(self, requests, groups, top_k, bctx, prefix=""):
        """The learned strategy each request's ``(strategy, why)`` names, every group of it in
        one pass; the reasons say which and why."""
        parts: list[tuple[list[int], list[Choice | None]]] = []
        for (name, why), rows in self.deps.choose_strategies(requests).items():
            k = max(2, top_k) if name == "top_k" else top_k
            if len(rows) == len(requests):
                subgroups = groups
            else:
                member = np.zeros(len(requests), dtype=bool)
                member[rows] = True
                subgroups = []
                for positions, mask in groups:
                    kept = np.asarray(positions, dtype=np.int64)
                    kept = kept[member[kept]]
                    if kept.size:
                        subgroups.append((kept, mask))
            text = f"{prefix}adaptive chose {name} ({why}): "
            parts.append(
                (rows, self.deps.strategy(name).route_groups(requests, subgroups, k, bctx, text))
            )
        # Each strategy's list holds its own rows (None elsewhere): the longest takes the others'.
        parts.sort(key=lambda part: len(part[0]), reverse=True)
        out = parts[0][1]
        for rows, sub in parts[1:]:
            for j in rows:
                out[j] = sub[j]
        return out

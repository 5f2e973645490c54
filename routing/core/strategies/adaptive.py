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

    def route_groups(self, requests, groups, top_k, bctx):
        out: list[Choice | None] = [None] * len(requests)
        for (name, why), rows in self.deps.choose_strategies(requests).items():
            k = max(2, top_k) if name == "top_k" else top_k
            if len(rows) == len(requests):
                subgroups = groups
            else:
                member = np.zeros(len(requests), dtype=bool)
                member[rows] = True
                subgroups = []
                for positions, mask in groups:
                    kept = [i for i in positions if member[i]]
                    if kept:
                        subgroups.append((kept, mask))
            sub = self.deps.strategy(name).route_groups(requests, subgroups, k, bctx)
            prefix = f"adaptive chose {name} ({why}): "
            texts: dict[str, str] = {}  # a batch's reasons repeat: format each once
            for j in rows:
                choice = sub[j]
                if choice is not None:
                    sel, scores, confidence, reason, concrete, propensity = choice
                    text = texts.get(reason)
                    if text is None:
                        text = texts[reason] = prefix + reason
                    out[j] = (sel, scores, confidence, text, concrete, propensity)
        return out

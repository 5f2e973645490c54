"""adaptive: the learned choice of service, with redundancy for anomalous requests."""

from __future__ import annotations

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

    def route_batch(self, requests, positions, mask, top_k, bctx):
        picks = [self.deps.choose_strategy(r) for r in requests]
        groups: dict[str, list[int]] = {}
        for j, (name, _) in enumerate(picks):
            groups.setdefault(name, []).append(j)
        out: list[Choice | None] = [None] * len(requests)
        texts: dict[tuple[str, str], str] = {}  # batch reasons repeat: format each pair once
        for name, rows in groups.items():
            k = max(2, top_k) if name == "top_k" else top_k
            sub = self.deps.strategy(name).route_batch(
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

"""switch_transformer and top_k: the online learner's estimates, epsilon-greedy, with logged
propensities."""

from __future__ import annotations

from operator import attrgetter

import numpy as np

from routing.core.strategies.base import (
    NEG_INF,
    Choice,
    RouteContext,
    Strategy,
    assign_in_order,
    capacity_factor_bound,
    softmax,
)
from routing.core.types import RouteRequest

# Temperature of the top-k weights over the chosen services' estimated rewards.
TOPK_WEIGHT_TEMPERATURE = 0.1

_complexity = attrgetter("complexity")


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
        learner = self.deps.learner
        lcfg = learner.config
        table = self.deps.learned_table(fleet, request.request_type)
        mean, evidence, optimistic = table.at(request.complexity)
        mean, evidence, optimistic = mean[idx], evidence[idx], optimistic[idx]
        load = view.in_flight[idx]
        k = min(self.k_for(ctx.top_k), len(idx))
        bound = capacity_factor_bound(
            load.sum() + k, fleet.capacity[idx], self.config.capacity_factor
        )
        over = load >= bound
        base = optimistic - lcfg.load_penalty * (load / fleet.capacity_safe[idx])
        score = base
        if over.any():
            score = score - lcfg.spill_margin * over
        chosen, greedy, propensity, eps = learner.choose(score, float(evidence.sum()), evidence)
        order = [chosen]
        if k > 1:
            order += [int(j) for j in np.argsort(-score, kind="stable") if j != chosen][: k - 1]
        selected = [int(idx[j]) for j in order]
        best_unpenalised = int(base.argmax())
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
            scores = softmax(score[order] / TOPK_WEIGHT_TEMPERATURE).tolist()
        return Choice(selected, scores, propensity, reason, self.name, propensity)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        m = len(positions)
        rows = np.arange(m)
        open_ = bctx.available(mask)
        open_idx = np.flatnonzero(open_)
        n_open = len(open_idx)
        if not n_open:
            return [None] * m
        k = min(self.k_for(top_k), n_open)
        learner = self.deps.learner
        lcfg = learner.config
        # The engine groups a batch by (type, capabilities): one request type here.
        table = self.deps.learned_table(fleet, requests[0].request_type)
        complexity = np.fromiter(map(_complexity, requests), np.float64, m)
        mean, evidence, optimistic = table.at_many(complexity)  # (m, n) each
        per_candidate = evidence[:, open_idx]
        evidence = per_candidate.sum(axis=1)
        util = load / fleet.capacity_safe
        score = optimistic - lcfg.load_penalty * util
        score[:, ~open_] = NEG_INF
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
        # Forced sampling (OutcomeLearner.choose): an under-sampled candidate instead of the
        # greedy one in forced_share of the rows that did not explore elsewhere.
        held = 1.0 - eps + eps / n_open
        share = lcfg.forced_share
        greedy_pos = np.searchsorted(open_idx, greedy)
        under = np.zeros((m, n_open), dtype=bool)
        if share > 0 and n_open > 1:
            need = lcfg.forced_scale * np.log1p(np.maximum(evidence, 0.0))
            under = per_candidate < need[:, None]
            under[rows, greedy_pos] = False
        n_under = under.sum(axis=1)
        stays = np.ones(m, dtype=bool)
        stays[explore] = work[explore, greedy[explore]] == np.inf  # drew the greedy one
        forced = np.flatnonzero(stays & (n_under > 0) & (rng.random(m) < share))
        if forced.size:
            pick = np.argmax(under[forced] * rng.random((forced.size, n_open)), axis=1)
            work[forced, open_idx[pick]] = np.inf
            work[forced, greedy[forced]] = np.where(
                work[forced, greedy[forced]] == np.inf,
                score[forced, greedy[forced]],
                work[forced, greedy[forced]],
            )
        cap = fleet.capacity
        remaining = np.where(open_, np.floor(cap - load), 0.0).clip(min=0)
        chosen = np.full((m, k), -1, dtype=np.int64)
        for r in range(k):
            col = assign_in_order(work, remaining)
            ok = col >= 0
            chosen[ok, r] = col[ok]
            work[np.flatnonzero(ok), col[ok]] = NEG_INF
        used = np.bincount(chosen[chosen >= 0], minlength=len(cap))
        load += used
        first = chosen[:, 0]
        first_pos = np.searchsorted(open_idx, first.clip(min=0))
        in_under = under[rows, first_pos.clip(max=n_open - 1)] & (first >= 0)
        propensity = np.where(
            first == greedy,
            np.where(n_under > 0, held * (1.0 - share), held),
            eps / n_open + np.where(in_under, held * share / np.maximum(n_under, 1), 0.0),
        )
        first_mean = mean[rows, first.clip(min=0)]
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
        weights = score[rows[:, None], chosen.clip(min=0)]
        weights = np.where(chosen >= 0, weights, NEG_INF)
        weights = softmax(weights / TOPK_WEIGHT_TEMPERATURE)
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
    description = "learned top-1: best estimated reward, capacity factor, exploration"


class TopK(_GatedStrategy):
    name = "top_k"
    description = "learned top-k: the k best estimates, weights renormalised over k"

    def k_for(self, top_k: int) -> int:
        return max(1, top_k)

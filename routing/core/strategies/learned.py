"""switch_transformer and top_k: the online learner's estimates, epsilon-greedy, with logged
propensities."""

from __future__ import annotations

from operator import attrgetter

import numpy as np

from routing.core.learning import at_many_of
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

# Rows x services per pass of the batch rule: its float arrays stay at 256 KB each. (At 10,000
# rows x 64 services in one pass, ~5 MB each, the learned strategies ran at ~2/3 the rate:
# every temporary that large is fresh memory from the OS.)
CHUNK_CELLS = 1 << 15
# Temperature of the top-k weights over the chosen services' estimated rewards.
TOPK_WEIGHT_TEMPERATURE = 0.1
# How much the untried candidate whose turn a batch row takes is raised above the alike others:
# a tie break (see _GatedStrategy._take_turns), below any real difference.
PENDING_PROBE_STEP = 1e-9
# Said of a pick that measures a candidate with little evidence near the request's complexity
# instead of the greedy one (forced sampling; routing/core/learning.py).
MEASURING = "measuring (little evidence here)"

_complexity = attrgetter("complexity")


def _any_of(mask: np.ndarray, counts: np.ndarray, rng) -> np.ndarray:
    """A uniformly random true column of each row of ``mask`` (``counts``: its true cells,
    all > 0): the j-th true column, j < count."""
    j = (rng.random(len(mask)) * counts).astype(np.int64)
    return (mask.cumsum(axis=1) > j[:, None]).argmax(axis=1)


class _GatedStrategy(Strategy):
    """Shared by switch_transformer (k = 1) and top_k: the online learner's estimates.

    Each candidate's score is its estimated reward for this request type and complexity
    (:mod:`routing.core.learning`) minus a small load term; a candidate above its Switch
    capacity-factor share, and loaded (``EngineConfig.spill_floor`` of its capacity), loses
    ``spill_margin``, so it spills to a candidate about as good, never to a clearly worse
    one. The first service is chosen epsilon-greedily and its probability is the decision's
    propensity; top-k adds the next best by score.
    """

    def k_for(self, top_k: int) -> int:
        return 1

    def _reason(self, k, n, mean, evidence, explored, eps, spilled, measuring=False) -> str:
        if k == 1:
            text = f"learned: est. reward {mean:.2f} from {evidence:.0f} outcomes, best of {n}"
        else:
            text = f"learned top-{k} of {n}: first est. reward {mean:.2f} ({evidence:.0f} outcomes)"
        if measuring:
            text += f"; {MEASURING}"
        elif explored:
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
        cap = fleet.capacity[idx]
        bound = capacity_factor_bound(load.sum() + k, cap, self.config.capacity_factor)
        over = (load >= bound) & (load >= self.config.spill_floor * cap)
        base = optimistic - lcfg.load_penalty * (load / fleet.capacity_safe[idx])
        score = base
        if over.any():
            score = score - lcfg.spill_margin * over
        stale = table.stale()[idx]
        chosen, greedy, propensity, eps = learner.choose(
            score, float(evidence.sum()), evidence, optimistic - mean, stale
        )
        order = [chosen]
        if k > 1:
            order += [int(j) for j in np.argsort(-score, kind="stable") if j != chosen][: k - 1]
        selected = [int(idx[j]) for j in order]
        best_unpenalised = int(base.argmax())
        # Not the greedy pick: an under-sampled candidate (forced sampling, or epsilon landing
        # on one) is being measured; any other is an epsilon exploration.
        measuring = chosen != greedy and chosen in learner.undersampled(
            evidence, greedy, score, optimistic - mean, stale
        )
        reason = self._reason(
            k,
            len(idx),
            float(mean[chosen]),
            float(evidence[chosen]),
            chosen != greedy,
            eps,
            greedy != best_unpenalised and bool(over[best_unpenalised]),
            measuring,
        )
        if k == 1:
            scores = [float(mean[chosen])]
        else:
            scores = softmax(score[order] / TOPK_WEIGHT_TEMPERATURE).tolist()
        return Choice(selected, scores, propensity, reason, self.name, propensity)

    def route_groups(self, requests, groups, top_k, bctx, prefix=""):
        """Every group in one pass: the rows are the groups' requests in batch order, each with
        its group's mask, so a batch of many (type, capabilities) groups costs the numpy calls
        of one, and capacity goes to the earlier requests of the batch first. The engine groups
        by request type (and capabilities): a group's first request gives its type."""
        if not groups:
            return [None] * len(requests)
        kinds: dict[str, int] = {}
        kind_of = [kinds.setdefault(requests[p[0]].request_type, len(kinds)) for p, _ in groups]
        if len(groups) == 1:  # one mask for every row, one request type
            ((positions, masks),) = groups
            row_kind = None
        else:
            positions = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in groups])
            group_of = np.repeat(np.arange(len(groups)), [len(p) for p, _ in groups])
            order = np.argsort(positions, kind="stable")
            positions, group_of = positions[order].tolist(), group_of[order]
            masks = np.stack([m for _, m in groups])[group_of]
            row_kind = np.array(kind_of)[group_of]
        # Distinct positions in order: as many as the requests means every one, in order.
        whole = len(positions) == len(requests)
        rows = requests if whole else [requests[i] for i in positions]
        picked = self._route_chunks(rows, masks, top_k, bctx, list(kinds), row_kind, prefix)
        if whole:
            return picked
        out: list[Choice | None] = [None] * len(requests)
        for i, choice in zip(positions, picked, strict=True):
            out[i] = choice
        return out

    def _route_chunks(self, rows, masks, top_k, bctx, kinds, row_kind, prefix):
        """:meth:`_route_rows` a chunk of rows at a time, in order (see ``CHUNK_CELLS``): each
        chunk sees the capacity the earlier ones took, as one pass would."""
        size = max(256, CHUNK_CELLS // max(bctx.fleet.n, 1))
        if len(rows) <= size:
            return self._route_rows(rows, masks, top_k, bctx, kinds, row_kind, prefix)
        out: list[Choice | None] = []
        for start in range(0, len(rows), size):
            part = slice(start, start + size)
            out += self._route_rows(
                rows[part],
                masks if masks.ndim == 1 else masks[part],
                top_k,
                bctx,
                kinds,
                None if row_kind is None else row_kind[part],
                prefix,
            )
        return out

    def _route_rows(self, requests, masks, top_k, bctx, kinds, row_kind, prefix):
        """The batch rule for ``requests`` (batch order), row ``i`` among ``masks[i]`` (or
        among ``masks`` for every row, given one ``(n,)`` mask): the same estimates,
        exploration and forced sampling as :meth:`OutcomeLearner.choose`, with each row's own
        open candidates, and each service filled in row order. ``kinds``: the request types
        in the rows, ``row_kind``: each row's index in it (None: one type); ``prefix`` starts
        every reason."""
        fleet, load = bctx.fleet, bctx.load
        m = len(requests)
        rows = np.arange(m)
        cap = fleet.capacity
        avail = load < cap
        open_ = np.broadcast_to(masks & avail, (m, cap.size))
        n_open = open_.sum(axis=1)
        learner = self.deps.learner
        lcfg = learner.config
        mean, evidence, optimistic = self._estimates(requests, fleet, kinds, row_kind)
        per_candidate = np.where(open_, evidence, 0.0)
        evidence = per_candidate.sum(axis=1)
        util = load / fleet.capacity_safe
        score = np.where(open_, optimistic - lcfg.load_penalty * util, NEG_INF)
        untried = self._untried(fleet, kinds)
        if untried.any():
            cold = open_ & (untried[0] if row_kind is None else untried[row_kind])
            if cold.any():
                turns = self._take_turns(score, cold, row_kind)
                if turns is not None:
                    # Its pick raised, not the others lowered: the others stay exactly as
                    # good as the pick's estimate, so exploration still counts them as
                    # candidates that may be better.
                    optimistic = np.array(optimistic, dtype=np.float64)  # tables' are shared
                    optimistic[turns] += PENDING_PROBE_STEP
                    score[turns] += PENDING_PROBE_STEP
        greedy = score.argmax(axis=1)
        scale = lcfg.evidence_scale
        eps = np.maximum(lcfg.epsilon_min, lcfg.epsilon * scale / (scale + evidence))
        eps[n_open <= 1] = 0.0
        uniform = np.minimum(lcfg.epsilon_uniform, eps)
        per_open = uniform / np.maximum(n_open, 1)
        # Plausible (OutcomeLearner.plausible): open, not the greedy one, and its score reaches
        # the greedy one's without the greedy one's optimism.
        at = rows, greedy
        # the greedy pick's estimate (less load)
        floor = score[at] - (optimistic[at] - mean[at])
        plausible = open_ & (score >= floor[:, None])
        plausible[at] = False
        n_plausible = plausible.sum(axis=1)
        per_plausible = np.where(n_plausible > 0, (eps - uniform) / np.maximum(n_plausible, 1), 0)
        rng = learner.np_rng
        draw = rng.random(m)
        work = score.copy()
        # uniform among the row's open candidates, or among its plausible ones
        explore = np.flatnonzero(draw < uniform)
        if explore.size:
            work[explore, _any_of(open_[explore], n_open[explore], rng)] = np.inf
        directed = np.flatnonzero((draw >= uniform) & (draw < eps) & (n_plausible > 0))
        if directed.size:
            work[directed, _any_of(plausible[directed], n_plausible[directed], rng)] = np.inf
        # P(greedy) before forced sampling: the directed share stays with it when no other
        # candidate is plausible.
        held = 1.0 - eps + per_open + np.where(n_plausible > 0, 0.0, eps - uniform)
        # Forced sampling (OutcomeLearner.choose): an under-sampled candidate instead of the
        # greedy one in forced_share of the rows that drew the greedy one.
        share = lcfg.forced_share
        if share > 0:
            need = lcfg.forced_scale * np.log1p(np.maximum(evidence, 0.0))
            under = open_ & (per_candidate < need[:, None])
            under[at] = False
            under[n_open <= 1] = False
            if lcfg.forced_width != np.inf:
                # Not one the data rule out unless it is stale (OutcomeLearner.undersampled).
                # Only the under-sampled cells, usually few, are looked at: whole-array
                # temporaries here cost a third of the batch rate (fresh memory each).
                r, c = np.nonzero(under)
                if r.size:
                    bonus = optimistic[r, c] - mean[r, c]
                    keep = score[r, c] + (lcfg.forced_width - 1.0) * bonus >= floor[r]
                    keep |= per_candidate[r, c] < lcfg.forced_rule_out * need[r]
                    stale = np.stack([self.deps.learned_table(fleet, t).stale() for t in kinds])
                    keep |= stale[0 if row_kind is None else row_kind[r], c]
                    under[r[~keep], c[~keep]] = False
        else:
            under = np.zeros(open_.shape, dtype=bool)
        n_under = under.sum(axis=1)
        stays = np.ones(m, dtype=bool)
        stays[directed] = False
        stays[explore] = work[explore, greedy[explore]] == np.inf  # drew the greedy one
        forced = np.flatnonzero(stays & (n_under > 0) & (rng.random(m) < share))
        if forced.size:
            pick = np.argmax(under[forced] * rng.random((forced.size, under.shape[1])), axis=1)
            at_greedy = forced, greedy[forced]
            kept = work[at_greedy]
            work[forced, pick] = np.inf
            work[at_greedy] = np.where(kept == np.inf, score[at_greedy], kept)
        remaining = np.where(avail, np.floor(cap - load), 0.0).clip(min=0)
        k = min(self.k_for(top_k), int(n_open.max(initial=0)))
        if k == 0:
            return [None] * m
        room = remaining.copy()
        chosen = np.full((m, k), -1, dtype=np.int64)
        for r in range(k):
            col = assign_in_order(work, remaining)
            ok = col >= 0
            chosen[ok, r] = col[ok]
            work[np.flatnonzero(ok), col[ok]] = NEG_INF
        load += np.bincount(chosen[chosen >= 0], minlength=len(cap))
        first = chosen[:, 0]
        first_ok = first.clip(min=0)
        in_under = under[rows, first_ok] & (first >= 0)
        greedy_mass = np.where(n_under > 0, held * (1.0 - share), held)
        forced_each = held * share / np.maximum(n_under, 1)

        def draw_share(r, c):
            """The probability that row ``r``'s draw targets column ``c`` (index arrays of
            one shape): the greedy pick's mass (its uniform share included), or the uniform,
            directed and forced shares of another."""
            return np.where(
                c == greedy[r],
                greedy_mass[r],
                per_open[r] * open_[r, c]
                + per_plausible[r] * plausible[r, c]
                + forced_each[r] * under[r, c],
            )

        propensity = draw_share(rows, first_ok)
        filled = np.flatnonzero(
            np.bincount(first[first >= 0], minlength=len(cap)) >= np.maximum(room, 1)
        )
        if filled.size:
            self._after_fills(propensity, filled, room, first, score, open_, draw_share)
        # 0: greedy, 1: epsilon exploration, 2: an under-sampled candidate measured instead of
        # the greedy one (forced sampling, or epsilon landing on one: as route() says).
        label = np.zeros(m, dtype=np.int64)
        label[explore] = 1
        label[directed] = 1
        label[first == greedy] = 0
        label[in_under] = 2
        name = self.name
        out: list[Choice | None] = []
        if k == 1:
            base = prefix + "learned top-1"
            texts1 = (base, base + "; exploring", f"{base}; {MEASURING}")
            for sel, mu, p, x in zip(
                first.tolist(), mean[rows, first_ok].tolist(), propensity.tolist(),
                label.tolist(), strict=True,
            ):  # fmt: skip
                if sel < 0:
                    out.append(None)
                else:
                    out.append(([sel], [mu], p, texts1[x], name, p))
            return out
        weights = score[rows[:, None], chosen.clip(min=0)]
        weights = np.where(chosen >= 0, weights, NEG_INF)
        with np.errstate(invalid="ignore"):  # a row with nothing chosen: NaN, dropped below
            weights = softmax(weights / TOPK_WEIGHT_TEMPERATURE)
        k_row = np.minimum(n_open, self.k_for(top_k)).tolist()
        texts = {  # (k, label) -> reason, for the few k a batch has
            (kr, x): f"{prefix}learned top-{kr}" + ("", "; exploring", f"; {MEASURING}")[x]
            for kr in set(k_row)
            for x in (0, 1, 2)
        }
        for sel, w, p, x, kr in zip(
            chosen.tolist(), weights.tolist(), propensity.tolist(), label.tolist(), k_row,
            strict=True,
        ):  # fmt: skip
            if sel[0] < 0:
                out.append(None)
                continue
            if -1 in sel:
                w = [wi for wi, c in zip(w, sel, strict=True) if c >= 0]
                sel = [c for c in sel if c >= 0]
            out.append((sel, w, p, texts[kr, x], name, p))
        return out

    @staticmethod
    def _after_fills(propensity, filled, room, first, score, open_, draw_share) -> None:
        """Correct, in place, the propensities of the rows decided after a service filled up
        during the batch. Such a row's draw may still target the full service (as greedy,
        exploration or forced pick); the assignment then gives it its best-scoring candidate
        with room, ``g'``. So that candidate's probability is its own share plus the shares of
        every service already full at the row's turn (each row's turn counted in batch order);
        another candidate keeps its own. Without this, the rows after the greedy service
        filled went to the next one with probability ~1 but logged its exploration share."""
        taken = first[:, None] == filled[None, :]
        # each row's count of earlier rows given the service, against its room
        before = np.cumsum(taken, axis=0) - taken
        full = before >= room[filled][None, :]
        rows = np.flatnonzero(full.any(axis=1) & (first >= 0))
        if not rows.size:
            return
        full = full[rows]
        cols = np.broadcast_to(filled, full.shape)
        r2 = np.broadcast_to(rows[:, None], full.shape)
        moved = (draw_share(r2, cols) * full).sum(axis=1)
        open_rows = np.where(open_[rows], score[rows], NEG_INF)
        open_rows[np.nonzero(full)[0], cols[full]] = NEG_INF
        fallback = open_rows.argmax(axis=1)
        propensity[rows] += np.where(first[rows] == fallback, moved, 0.0)

    def _untried(self, fleet, kinds) -> np.ndarray:
        """``(len(kinds), n)``: the services no outcome of each request type has been
        reported for (a new one, or every one at a cold start)."""
        tables = [self.deps.learned_table(fleet, kind) for kind in kinds]
        return np.stack([t.evidence.sum(axis=0) == 0 for t in tables])

    @staticmethod
    def _take_turns(score, cold, row_kind):
        """A batch's rows take turns among the untried candidates tied at the top. An
        untried candidate's score is its prior (optimistic, or the gate's prediction), the
        same for every row of a batch, so a cold start's batch went whole to the first listed
        of the alike untried, and a client routing one request at a time spreads them as its
        outcomes come back. Here the rows whose best candidates are several untried ones,
        alike (the same request type and the same tied set), take them in turn, in batch
        order (round robin, as if each earlier row's pick were a probe pending there, which
        batched bandits count: Desautels et al. 2014): each such row's pick is raised by
        ``PENDING_PROBE_STEP`` above the rest of its tied set. Nothing believed
        changes (an untried candidate with a better prior still takes them all), each row's
        scores follow from the batch's state and its position alone (no random draw), so its
        logged propensity stays exact, and a batch's first row is decided as a single route.

        ``score``: each row's scores (less load, ``NEG_INF`` where not open); returns the
        ``(rows, columns)`` of the picks to raise, or None when no row has such a tie."""
        tied = cold & (score >= score.max(axis=1, keepdims=True))
        n_tied = tied.sum(axis=1)
        rows = np.flatnonzero(n_tied > 1)
        if not rows.size:
            return None
        tied, n_tied = tied[rows], n_tied[rows]
        kinds = None if row_kind is None else row_kind[rows]
        if (tied == tied[0]).all() and (kinds is None or (kinds == kinds[0]).all()):
            turn = np.arange(rows.size)  # one group (the usual cold batch): no sort
        else:
            signature = np.packbits(tied, axis=1).astype(np.int64)
            if kinds is not None:
                signature = np.column_stack([kinds, signature])
            _, group = np.unique(signature, axis=0, return_inverse=True)
            group = group.ravel()
            # each row's turn: how many earlier rows of the batch are in its group
            order = np.argsort(group, kind="stable")
            first_of_group = np.r_[True, group[order][1:] != group[order][:-1]]
            starts = np.maximum.accumulate(np.where(first_of_group, np.arange(order.size), 0))
            turn = np.empty_like(order)
            turn[order] = np.arange(order.size) - starts
        pick = (tied.cumsum(axis=1) > (turn % n_tied)[:, None]).argmax(axis=1)
        return rows, pick

    def _estimates(self, requests, fleet, kinds, row_kind):
        """``(m, n)`` estimates, evidence and optimistic scores of each row's request type and
        complexity: one lookup in the tables of every request type in the rows."""
        complexity = np.fromiter(map(_complexity, requests), np.float64, len(requests))
        tables = [self.deps.learned_table(fleet, kind) for kind in kinds]
        return at_many_of(tables, row_kind, complexity)


class SwitchTransformer(_GatedStrategy):
    name = "switch_transformer"
    description = "learned top-1: best estimated reward, capacity factor, exploration"


class TopK(_GatedStrategy):
    name = "top_k"
    description = "learned top-k: the k best estimates, weights renormalised over k"

    def k_for(self, top_k: int) -> int:
        return max(1, top_k)

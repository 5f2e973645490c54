"""Learning from outcomes: which candidate is best for which request, online.

The learned strategies treat routing as a **contextual bandit** (Li et al. 2010; Langford &
Zhang 2007): for each request, the arms are the candidate services, the context is the request
(its type and complexity, and the candidates' current load), and the reward is the operator's
:class:`~routing.core.objective.Objective` of the reported outcome.

Reward model
    One arm per ``(service_id, request_type)``. Its expected reward as a function of the
    request's complexity ``c`` in [0, 1] is piecewise linear: values ``theta`` at ``bins + 1``
    evenly spaced knots, linearly interpolated between them (a hat basis: an outcome at ``c``
    informs the two knots around it, in proportion to how close it is). ``theta`` is the
    ridge-regularised weighted least-squares fit::

        theta = (A + w0 I + mu D'D + mu1 D1'D1)^-1 (b + w0 prior)

    where ``A`` and ``b`` are the usual normal-equation sums, ``D'D`` penalises second
    differences of neighbouring knots (a knot with little data continues its neighbours'
    trend: a service whose success falls with complexity stays falling past the point where
    it stops being chosen, instead of bouncing back toward its mean), ``D1'D1`` (lighter)
    plain differences (so a single outcome far from the rest does not set the whole trend:
    one early failure would otherwise shut a good service out of a range), and the weak prior
    (``w0`` = 0.1 outcome) is the arm's own mean reward when it has outcomes, else
    ``prior_mean`` (optimistic, so an untried candidate gets tried). A crossover (the best
    service changing with complexity) is located between knots, not rounded to a bin.

    Forgetting is per segment between two knots: a new outcome first multiplies that
    segment's sums by ``discount``, so the last ~``1/(1-discount)`` outcomes of a segment
    dominate it, while its evidence for other complexities does not fade. A change is
    caught by a drift detector on the arm's recent residuals (at least ``drift_min_shift``
    of reward, several standard errors): the arm's past is then mostly forgotten, so a
    reliable service that starts failing is overtaken within three of its outcomes (a noisy
    one, whose failures are common anyway, takes longer: its breaker opens first). The same
    detector takes a service back when it recovers: the successes exploration still sends it
    are a shift too (the noise estimate it judges against does not follow a shift while one
    builds), so the incident is forgotten rather than held against it for good.

    The posterior variance of the knots (what the UCB bonus reads) is the inverse system
    matrix times the reward noise *near each knot*: the fit's squared residuals in the
    segments beside it (kept as a squared-reward sum per segment), since a service's noise
    depends on complexity (a coin flip where it fails half the time, nearly none where it
    always succeeds).

Exploration, with logged propensities
    epsilon-greedy over the candidates' scores (optimistic estimate minus a small load term),
    where epsilon decays with the evidence the candidates hold near this complexity:
    ``epsilon = max(epsilon_min, epsilon0 * evidence_scale / (evidence_scale + evidence))``.
    The exploring share is *directed*: ``epsilon_uniform`` of the decisions go to a uniformly
    random candidate (so every candidate keeps a known, non-zero probability, which off-policy
    evaluation needs), the rest of epsilon to a random *plausible* candidate, one whose
    optimistic score reaches the greedy pick's estimate (it could be the better one), never
    to one the data already rules out (a broken or clearly worse service); with no plausible
    candidate it stays with the greedy pick. Then forced sampling (``LearnerConfig``): in a
    share of the greedy picks, a candidate with little evidence near this complexity that
    the data does not rule out (within ``forced_width`` standard deviations) is measured
    instead. The probability of the chosen service under this mixture is returned with every
    decision and written to history, which makes off-policy evaluation of any other policy
    on the logged data possible (:mod:`routing.core.offpolicy`).

State is per process; with Redis, every worker also learns from the outcomes reported to the
others (routing/shared_learning.py feeds them to :meth:`OutcomeLearner.observe`). A retrained
version carries a snapshot of the statistics (:meth:`OutcomeLearner.to_bytes`) that every
worker loads, so workers start again from the same, evaluated state. Updates take a lock;
readers do not (a decision that reads a column being rewritten sees the old or the new value
of each cell).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import orjson

from routing.core.objective import Objective
from routing.core.types import FleetSnapshot

FORMAT_VERSION = 2
_TABLES = 32  # (snapshot, request type, prior) score tables kept per learner
_NONE = np.zeros(0, dtype=np.int64)
# Outcomes a learner remembers (with their wall-clock time) so that loading a retrained state
# replays those observed after the state was trained instead of dropping them.
RECENT_OUTCOMES = 10_000
# Reward noise variance assumed before an arm has outcomes (rewards in [0, 1]: sd ~0.3).
_PRIOR_NOISE = 0.1
_NOISE_FLOOR = 0.02
# Local noise: pseudo-outcomes of prior noise per knot, and its floor (a service that has only
# succeeded near a complexity is not taken as certain there).
_NOISE_PSEUDO = 2.0
_LOCAL_NOISE_FLOOR = 0.005


@dataclass(frozen=True)
class LearnerConfig:
    # Segments of the complexity axis (knots = bins + 1).
    bins: int = 5
    # Penalty on the second differences of neighbouring knots (in outcomes' weight): where a
    # complexity has little data, its value continues the trend of its neighbours instead of
    # being pulled toward the arm's mean (which overestimates a service whose success falls
    # with complexity past the point where it stops being chosen). Order 1 penalises plain
    # differences (flattening). Chosen on the seeded replay (tests/performance/learner_replay.py).
    smoothing: float = 20.0
    smoothing_order: int = 2
    # A lighter penalty on plain differences as well: without it one early failure at a
    # complexity where a service has no other data sets the slope of the whole arm (the
    # second-difference fit extrapolates linearly from it), and the service is never chosen
    # there again (tests/routing/test_learning.py: one unlucky failure). 0.3: no loss on the
    # replay's 120 seeds per profile set (docs/PERFORMANCE.md).
    smoothing_first: float = 0.3
    discount: float = 0.998
    # Drift: when an arm's recent residuals (reward minus estimate, EWMA with drift_alpha)
    # stray more than drift_sigmas standard errors from zero, its past is mostly forgotten
    # (kept at drift_keep): a service that starts failing or slowing is re-learned in a few
    # outcomes, while a steady one keeps a long memory (discount) and precise estimates.
    drift_alpha: float = 0.15
    drift_sigmas: float = 5.0
    # A shift upward (the service does better than believed) is judged at fewer standard
    # errors: a false alarm there costs only a few re-measurements, and a service that
    # recovered after an incident is otherwise held to its incident (the estimate rises with
    # each success, so the residuals shrink before the 5-sigma limit is reached).
    drift_sigmas_up: float = 3.0
    drift_keep: float = 0.05
    # ... and only a shift of at least this much reward counts: residuals of a reward that is
    # mostly 0 or 1 are far from normal, and two failures in a row of a 98.5% service would
    # otherwise wipe its (correct) history. A reliable service that starts failing every call
    # crosses it on its third failure (a noisy one, at ~0.1 reward variance, on its sixth or
    # later); smaller changes are left to ``discount``.
    drift_min_shift: float = 0.3
    prior_mean: float = 1.0
    # Weight of the ridge prior (in outcomes): small, so the data and the smoothness decide.
    prior_weight: float = 0.1
    # Optimism in the face of uncertainty: a candidate's score is its estimate plus this many
    # posterior standard deviations (reward units), so a candidate the router knows little
    # about at this complexity gets tried there (UCB), not just at random.
    ucb: float = 1.0
    # Exploration: epsilon decays from ``epsilon`` to ``epsilon_min`` as evidence grows; of it,
    # ``epsilon_uniform`` goes to any candidate (support for off-policy evaluation) and the
    # rest to a plausible one (its optimistic score reaches the greedy pick's estimate).
    # Directed rather than uniform, on 120 replay seeds per fleet, paired (epsilon 0.1 ->
    # 0.05 with it): phase-3 regret 0.0036 -> 0.0028 / 0.0033 -> 0.0026 / 0.0039 -> 0.0035 /
    # 0.0068 -> 0.0060 (default / alt / random / docs/fleets/stress.json), optimal +0.56 /
    # +0.13 / +0.11 / +0.59 points (docs/PERFORMANCE.md, seventh pass).
    epsilon: float = 0.05
    epsilon_min: float = 0.01
    epsilon_uniform: float = 0.002
    # Forced sampling (Goldenshluger & Zeevi 2013): in this share of the greedy picks, a
    # candidate with less than forced_scale * log(1 + evidence) outcomes near this complexity
    # is tried instead, so one that drew bad outcomes early is measured again at a slowly
    # growing rate rather than left out for good. 120 replay seeds per profile set: phase-3
    # optimal +0.6 points (default, alt), +0.2 (random fleets).
    forced_share: float = 0.3
    forced_scale: float = 1.0
    # ... but only a candidate the data does not rule out: its estimate plus forced_width
    # posterior standard deviations reaches the greedy pick's estimate. Forced sampling of
    # services known to be bad (a broken one, a slow distractor) was most of the remaining
    # regret. With the re-check below, 120 replay seeds per fleet, paired: phase-3 regret
    # 0.0028 -> 0.0022 / 0.0027 -> 0.0023 / 0.0034 -> 0.0029 / 0.0060 -> 0.0049 (default /
    # alt / random / stress), optimal +0.00 / -0.10 / +0.39 / +0.50 points (+-0.2-0.7;
    # docs/PERFORMANCE.md, eighth pass). inf: every under-sampled candidate, as before.
    forced_width: float = 2.5
    # ... except one not observed in the last forced_recheck outcomes of the request type:
    # what ruled it out may be over (an incident, a slow spell), and nothing else would
    # measure it again. Without this a service that recovered was taken back only by the
    # uniform exploration share, thousands of requests later or never (tests/routing/core/
    # test_a_service_that_starts_failing_is_avoided_without_a_retrain.py). A re-check goes on
    # while the service does better than believed (its residual EWMA above zero), so a
    # recovered one is measured a few times in a row, not once per forced_recheck outcomes:
    # back after 894 requests on average instead of 1,425 (16 seeds of that test's fleet), at
    # +0.0002 phase-3 regret on random and stress fleets (120 replay seeds; docs/PERFORMANCE.md,
    # ninth pass).
    forced_recheck: int = 500
    # ... and only once it has forced_rule_out * need outcomes there: one or two early
    # failures do not rule a service out (the estimate of a service seen once is its one
    # outcome).
    forced_rule_out: float = 0.5
    evidence_scale: float = 20.0
    load_penalty: float = 0.05
    # Reward noise per complexity (the fit's squared residuals near each knot) rather than
    # one figure per arm: a service whose success falls with complexity is nearly noise-free
    # where it succeeds and a coin flip where it fails, so one arm-wide figure overstates its
    # uncertainty (and its optimism) at one end and understates it at the other. 120 replay
    # seeds per profile set, paired: phase-3 optimal -0.09 / +0.28 / +0.68 points (default /
    # alt / random fleets), regret 0.0036 / 0.0033 / 0.0039 (was 0.0036 / 0.0035 / 0.0043).
    # False: the arm-wide figure (the drift detector's EWMA of squared residuals).
    local_noise: bool = True
    # A service above its capacity-factor share loses this much score: it spills to a
    # candidate that is about as good, never to one that is clearly worse.
    spill_margin: float = 0.03

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError("bins must be >= 1")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError("discount must be in (0, 1]")
        if not 0.0 <= self.epsilon_min <= self.epsilon <= 1.0:
            raise ValueError("need 0 <= epsilon_min <= epsilon <= 1")
        if not 0.0 <= self.epsilon_uniform <= 1.0:
            raise ValueError("need 0 <= epsilon_uniform <= 1")
        if min(self.smoothing, self.smoothing_first) < 0:
            raise ValueError("smoothing and smoothing_first must be >= 0")
        if self.prior_weight <= 0 or self.evidence_scale <= 0:
            raise ValueError("prior_weight > 0 and evidence_scale > 0")
        if self.ucb < 0:
            raise ValueError("ucb must be >= 0")
        if not 0.0 <= self.forced_share <= 1.0 or self.forced_scale < 0:
            raise ValueError("need 0 <= forced_share <= 1 and forced_scale >= 0")
        if not self.forced_width >= 0 or self.forced_recheck < 1 or self.forced_rule_out < 0:
            raise ValueError("need forced_width >= 0, forced_recheck >= 1, forced_rule_out >= 0")
        if self.drift_sigmas_up <= 0 or self.drift_sigmas <= 0:
            raise ValueError("drift_sigmas and drift_sigmas_up must be > 0")

    @property
    def knots(self) -> int:
        return self.bins + 1


def knot_position(complexity: float, bins: int) -> tuple[int, float]:
    """The segment ``j`` (between knots j and j + 1) holding ``complexity`` and the weight
    ``w`` of knot j + 1 (0 at knot j, 1 at knot j + 1)."""
    if complexity != complexity:  # NaN
        complexity = 0.0
    x = min(1.0, max(0.0, float(complexity))) * bins
    j = min(bins - 1, int(x))
    return j, x - j


_SEG_COLUMNS = 8


class _Arm:
    """Per-segment sums: ``seg[s] = (a00, a01, a11, b0, b1, n, r, q)`` for the 2x2 normal
    equations of knots (s, s + 1), the outcomes' weight, their reward sum and their squared
    reward sum."""

    __slots__ = ("seg", "theta", "evidence", "var", "cov", "drift", "noise", "drifts", "last")

    def __init__(self, bins: int, prior: float) -> None:
        self.seg = np.zeros((bins, _SEG_COLUMNS))
        self.drift = 0.0  # EWMA of recent residuals
        self.noise = 0.1  # slow EWMA of squared residuals (reward noise variance)
        self.drifts = 0
        self.theta = np.full(bins + 1, prior)
        self.evidence = np.zeros(bins + 1)
        # Posterior (co)variance of the knot values: the diagonal and the first off-diagonal
        # of the inverse system matrix (all interpolation needs), times the reward noise.
        self.var = np.zeros(bins + 1)
        self.cov = np.zeros(bins)
        # The request type's outcome count at this arm's last outcome (not moved by one that
        # goes on a re-check: see OutcomeLearner._apply).
        self.last = 0.0


class _Table:
    """Knot values, evidence and posterior (co)variances of every service of one snapshot for
    one request type: arrays ``(knots, n_services)`` (``cov``: ``(knots - 1, n)``), read by
    interpolation at a request's complexity; ``last``: each service's :attr:`_Arm.last`,
    ``clock``: the type's outcome count (one cell, shared with the learner)."""

    __slots__ = (
        "snapshot", "request_type", "theta", "evidence", "var", "cov", "bins", "ucb", "last",
        "clock", "recheck",
    )  # fmt: skip

    def __init__(
        self, snapshot, request_type, theta, evidence, var, cov, bins, ucb, last, clock, recheck
    ) -> None:
        self.snapshot = snapshot
        self.request_type = request_type
        self.theta = theta
        self.evidence = evidence
        self.var = var
        self.cov = cov
        self.bins = bins
        self.ucb = ucb
        self.last = last
        self.clock = clock
        self.recheck = recheck

    def stale(self) -> np.ndarray:
        """Which services have not been observed in the last ``forced_recheck`` outcomes of
        this type, or are being re-checked (forced sampling may measure them even where the
        data rules them out)."""
        return self.clock[0] - self.last > self.recheck

    def at(self, complexity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Estimated reward, evidence and optimistic score of every service at one
        complexity."""
        j, w = knot_position(complexity, self.bins)
        v = 1.0 - w
        theta, evidence = self.theta, self.evidence
        mean = v * theta[j] + w * theta[j + 1]
        var = v * v * self.var[j] + 2.0 * v * w * self.cov[j] + w * w * self.var[j + 1]
        score = mean + self.ucb * np.sqrt(np.maximum(var, 0.0))
        return mean, v * evidence[j] + w * evidence[j + 1], score

    def at_many(self, complexity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(m, n_services)`` estimates, evidence and scores for ``m`` complexities."""
        return at_many_of([self], None, complexity)


def at_many_of(
    tables: Sequence[_Table], which: np.ndarray | None, complexity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`_Table.at_many` for rows of several tables of one snapshot (one request type
    each): row ``i`` reads ``tables[which[i]]`` (``which`` None: every row the first). One set
    of numpy calls for a whole batch, whatever the number of request types in it."""
    first = tables[0]
    bins = first.bins
    x = np.asarray(complexity, dtype=np.float64)
    # clipped to [0, 1], NaN as 0 (nan_to_num + clip, in two ufuncs instead of ~20 calls)
    x = np.where(x >= 0.0, np.minimum(x, 1.0), 0.0) * bins
    j = np.minimum(bins - 1, x.astype(np.int64))
    w = (x - j)[:, None]
    v = 1.0 - w
    if len(tables) == 1:
        theta, evidence, var, cov = first.theta, first.evidence, first.var, first.cov
        jc = j
    else:  # the tables stacked: knot rows of table t start at t * (bins + 1)
        theta, evidence, var, cov = (
            np.concatenate([getattr(t, name) for t in tables])
            for name in ("theta", "evidence", "var", "cov")
        )
        jc = j + which * bins  # cov has bins rows per table
        j = j + which * (bins + 1)
    mean = v * theta[j] + w * theta[j + 1]
    spread = v * v * var[j] + 2.0 * v * w * cov[jc] + w * w * var[j + 1]
    score = mean + first.ucb * np.sqrt(np.maximum(spread, 0.0))
    return mean, v * evidence[j] + w * evidence[j + 1], score


class OutcomeLearner:
    """Online reward estimates per (service, request type, complexity) and the exploration
    rule. Thread-safe; see the module docstring."""

    def __init__(
        self,
        config: LearnerConfig | None = None,
        objective: Objective | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = cfg = config or LearnerConfig()
        self.objective = objective or Objective()
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        k = cfg.knots
        # Differences of neighbouring knots (order 1), or second differences (order 2: sparse
        # knots continue their neighbours' trend instead of flattening toward them).
        order = min(cfg.smoothing_order, k - 1)
        diff = np.diff(np.eye(k), n=order, axis=0) if order else np.zeros((0, k))
        # The fixed part of the system matrix: ridge toward the prior plus smoothness.
        self._regulariser = cfg.prior_weight * np.eye(k) + cfg.smoothing * diff.T @ diff
        if cfg.smoothing_first and k > 1:
            first = np.diff(np.eye(k), axis=0)
            self._regulariser += cfg.smoothing_first * first.T @ first
        prior_inv = np.linalg.inv(self._regulariser)
        self._prior_var = np.diag(prior_inv).copy()
        self._prior_cov = np.diag(prior_inv, 1).copy()
        self._arms: dict[tuple[str, str], _Arm] = {}
        self._tables: OrderedDict[tuple, _Table] = OrderedDict()
        self._lock = threading.Lock()
        self.outcomes = 0
        # Outcomes per request type (one float cell each, shared with the score tables).
        self._clocks: dict[str, np.ndarray] = {}
        self._recent: deque[tuple[float, str, str, float, float]] = deque(maxlen=RECENT_OUTCOMES)

    # -- learning --------------------------------------------------------------------------

    def observe(self, service_id: str, request_type: str, complexity: float, reward: float) -> None:
        """Count one outcome (reward in [0, 1]) of ``service_id`` for such a request."""
        reward = min(1.0, max(0.0, float(reward)))
        with self._lock:
            self._recent.append((time.time(), service_id, request_type, complexity, reward))
            self._apply(service_id, request_type, complexity, reward)

    def _apply(self, service_id: str, request_type: str, complexity: float, reward: float) -> None:
        """``observe`` with the lock held."""
        cfg = self.config
        j, w = knot_position(complexity, cfg.bins)
        p0, p1 = 1.0 - w, w
        arm = self._arms.get((service_id, request_type))
        if arm is None:
            arm = self._arms[(service_id, request_type)] = _Arm(cfg.bins, cfg.prior_mean)
        residual = reward - (p0 * arm.theta[j] + p1 * arm.theta[j + 1])
        self._watch_drift(arm, residual)
        clock = self._clock_cell(request_type)
        stale = clock[0] - arm.last > cfg.forced_recheck
        clock[0] += 1.0
        if not (stale and arm.drift > 0.0):
            # A re-check that finds the service better than believed (its recent residuals
            # above zero) goes on: it stays stale until the change detector fires or the
            # residuals turn. One success is not enough to take a recovered service back, and
            # one re-measurement per forced_recheck outcomes took thousands of requests.
            arm.last = float(clock[0])
        seg = arm.seg[j]
        seg *= cfg.discount
        seg += (p0 * p0, p0 * p1, p1 * p1, p0 * reward, p1 * reward, 1.0, reward, reward * reward)
        self._refresh(arm)
        self.outcomes += 1
        for table in self._tables.values():
            if table.request_type == request_type:
                i = table.snapshot.index.get(service_id)
                if i is not None:
                    table.theta[:, i] = arm.theta
                    table.evidence[:, i] = arm.evidence
                    table.var[:, i] = arm.var
                    table.cov[:, i] = arm.cov
                    table.last[i] = arm.last

    def observe_outcome(
        self,
        service_id: str,
        request_type: str,
        complexity: float,
        success: bool,
        latency_ms: float | None,
    ) -> float:
        reward = self.objective.reward(success, latency_ms)
        self.observe(service_id, request_type, complexity, reward)
        return reward

    def _watch_drift(self, arm: _Arm, residual: float) -> None:
        cfg = self.config
        a = cfg.drift_alpha
        arm.drift = (1 - a) * arm.drift + a * residual
        if arm.seg[:, 5].sum() < 10:  # too little history to call anything a change
            arm.noise = 0.98 * arm.noise + 0.02 * residual * residual
            return
        # The noise floor keeps one rare failure of a near-perfect service from counting as
        # a change (its residual variance is tiny until then).
        sigmas = cfg.drift_sigmas_up if arm.drift > 0 else cfg.drift_sigmas
        limit = sigmas * math.sqrt(max(arm.noise, _NOISE_FLOOR) * a / (2 - a))
        limit = max(limit, cfg.drift_min_shift)
        if abs(arm.drift) > limit:
            arm.seg *= cfg.drift_keep
            arm.drift = 0.0
            arm.drifts += 1
        elif abs(arm.drift) <= 0.75 * limit:
            # Not while a shift is building: a lasting change would otherwise pass into the
            # noise estimate, and the limit would rise with it and never be crossed (a
            # service that failed during an incident and then recovered was never taken
            # back: tests/routing/core/test_a_service_that_starts_failing_is_avoided...).
            arm.noise = 0.98 * arm.noise + 0.02 * residual * residual

    def _refresh(self, arm: _Arm) -> None:
        cfg = self.config
        seg = arm.seg
        k = cfg.knots
        a = self._regulariser.copy()
        b = np.zeros(k)
        s = np.arange(cfg.bins)
        a[s, s] += seg[:, 0]
        a[s, s + 1] += seg[:, 1]
        a[s + 1, s] += seg[:, 1]
        a[s + 1, s + 1] += seg[:, 2]
        b[:-1] += seg[:, 3]
        b[1:] += seg[:, 4]
        total, reward_sum = seg[:, 5].sum(), seg[:, 6].sum()
        prior = cfg.prior_mean
        if total > 1e-9:
            # Back off to the arm's own mean, still a little optimistic where it has no data.
            prior = (reward_sum + cfg.prior_weight * cfg.prior_mean) / (total + cfg.prior_weight)
        inverse = np.linalg.inv(a)
        arm.theta = inverse @ (b + cfg.prior_weight * prior)
        if cfg.local_noise:
            noise = self._knot_noise(seg, arm.theta)
            root = [math.sqrt(x) for x in noise]
            arm.var = np.diag(inverse) * noise
            arm.cov = np.diag(inverse, 1) * [a * b for a, b in zip(root, root[1:], strict=False)]
        else:
            arm.var = np.diag(inverse) * arm.noise
            arm.cov = np.diag(inverse, 1) * arm.noise
        evidence = np.zeros(k)
        evidence[:-1] += seg[:, 0] + seg[:, 1]
        evidence[1:] += seg[:, 2] + seg[:, 1]
        arm.evidence = evidence

    @staticmethod
    def _knot_noise(seg: np.ndarray, theta: np.ndarray) -> list[float]:
        """Reward noise variance at each knot: the squared residuals of the fit ``theta`` in
        the segments on either side (exact, from the sums: ``q - 2 theta'b + theta'A
        theta`` per segment), shrunk toward ``_PRIOR_NOISE`` by ``_NOISE_PSEUDO`` outcomes
        (a knot without data keeps the prior's uncertainty) and floored. Plain floats: a
        handful of segments, where numpy's per-call cost would triple the time."""
        rows = seg.tolist()
        t = theta.tolist()
        ss = [_NOISE_PSEUDO * _PRIOR_NOISE] * (len(rows) + 1)
        df = [_NOISE_PSEUDO] * (len(rows) + 1)
        for j, (a00, a01, a11, b0, b1, n, _r, q) in enumerate(rows):
            t0, t1 = t[j], t[j + 1]
            squares = q - 2.0 * (t0 * b0 + t1 * b1) + t0 * t0 * a00 + 2.0 * t0 * t1 * a01
            squares += t1 * t1 * a11
            if squares > 0.0:
                ss[j] += squares
                ss[j + 1] += squares
            if n > 1.0:
                df[j] += n - 1.0
                df[j + 1] += n - 1.0
        return [max(_LOCAL_NOISE_FLOOR, a / b) for a, b in zip(ss, df, strict=True)]

    # -- scoring ---------------------------------------------------------------------------

    def table(
        self,
        snapshot: FleetSnapshot,
        request_type: str,
        prior: Callable[[], np.ndarray] | None = None,
        prior_token: object = None,
    ) -> _Table:
        """Knot values and evidence of every service of ``snapshot`` for ``request_type``.

        ``prior()`` may give ``(knots, n)`` prior values (a trained gate's predictions) for
        the services with no outcome of this type yet; ``prior_token`` names that prior in the
        cache (a new gate means new tables). Without it they start at ``prior_mean``.
        """
        key = (id(snapshot), request_type, prior_token)
        table = self._tables.get(key)
        if table is not None and table.snapshot is snapshot:
            return table
        cfg = self.config
        start = prior() if prior is not None else None
        with self._lock:
            n = len(snapshot)
            theta = np.full((cfg.knots, n), cfg.prior_mean) if start is None else start.copy()
            evidence = np.zeros((cfg.knots, n))
            var = np.repeat(self._prior_var[:, None] * _PRIOR_NOISE, n, axis=1)
            cov = np.repeat(self._prior_cov[:, None] * _PRIOR_NOISE, n, axis=1)
            last = np.zeros(n)
            for i, spec in enumerate(snapshot.services):
                arm = self._arms.get((spec.service_id, request_type))
                if arm is not None:
                    theta[:, i] = arm.theta
                    evidence[:, i] = arm.evidence
                    var[:, i] = arm.var
                    cov[:, i] = arm.cov
                    last[i] = arm.last
            table = _Table(
                snapshot, request_type, theta, evidence, var, cov, cfg.bins, cfg.ucb, last,
                self._clock_cell(request_type), cfg.forced_recheck,
            )  # fmt: skip
            self._tables[key] = table
            while len(self._tables) > _TABLES:
                self._tables.popitem(last=False)
        return table

    def knot_positions(self) -> np.ndarray:
        return np.arange(self.config.knots) / self.config.bins

    def estimates(
        self, request_type: str, complexity: float, service_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimated reward and evidence of each service for one request (no snapshot)."""
        mean, evidence, _ = self.scores(request_type, complexity, service_ids)
        return mean, evidence

    def scores(
        self, request_type: str, complexity: float, service_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Estimate, evidence and optimistic score (what the greedy choice ranks by, before
        load) of each service for one request."""
        cfg = self.config
        j, w = knot_position(complexity, cfg.bins)
        v = 1.0 - w
        k = len(service_ids)
        mean = np.full(k, cfg.prior_mean)
        evidence = np.zeros(k)
        var = _PRIOR_NOISE * np.full(
            k,
            v * v * self._prior_var[j]
            + 2 * v * w * self._prior_cov[j]
            + w * w * self._prior_var[j + 1],
        )
        for i, sid in enumerate(service_ids):
            arm = self._arms.get((sid, request_type))
            if arm is not None:
                mean[i] = v * arm.theta[j] + w * arm.theta[j + 1]
                evidence[i] = v * arm.evidence[j] + w * arm.evidence[j + 1]
                var[i] = v * v * arm.var[j] + 2 * v * w * arm.cov[j] + w * w * arm.var[j + 1]
        return mean, evidence, mean + cfg.ucb * np.sqrt(np.maximum(var, 0.0))

    def _clock_cell(self, request_type: str) -> np.ndarray:
        """The type's outcome count: one cell, shared with its score tables (lock held)."""
        clock = self._clocks.get(request_type)
        if clock is None:
            clock = self._clocks[request_type] = np.zeros(1)
        return clock

    def _clock(self, request_type: str) -> float:
        clock = self._clocks.get(request_type)
        return 0.0 if clock is None else float(clock[0])

    def stale(self, request_type: str, service_ids: Sequence[str]) -> np.ndarray:
        """:meth:`_Table.stale` for one request (no snapshot)."""
        now = self._clock(request_type)
        last = [getattr(self._arms.get((sid, request_type)), "last", 0.0) for sid in service_ids]
        return now - np.array(last, dtype=np.float64) > self.config.forced_recheck

    def epsilon(self, evidence: float) -> float:
        cfg = self.config
        scale = cfg.evidence_scale
        return max(cfg.epsilon_min, cfg.epsilon * scale / (scale + max(evidence, 0.0)))

    def undersampled(
        self,
        evidence: np.ndarray,
        greedy: int,
        scores: np.ndarray | None = None,
        bonus: np.ndarray | None = None,
        stale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Positions of the candidates other than ``greedy`` with less local evidence than
        ``forced_scale * log(1 + total evidence)``: forced sampling gives them a share of
        the greedy decisions, so every candidate keeps being measured at every complexity,
        at a slowly growing rate, however badly its first outcomes went. Given ``scores``
        and ``bonus`` (as for :meth:`plausible`), only those the data does not rule out:
        their estimate plus ``forced_width`` posterior standard deviations reaches the greedy
        pick's estimate (a service known to fail is not measured again at every
        complexity), or that are ``stale`` (not observed for ``forced_recheck`` outcomes of
        the type: it may have recovered)."""
        cfg = self.config
        if cfg.forced_share <= 0 or len(evidence) < 2:
            return _NONE
        need = cfg.forced_scale * math.log1p(max(float(evidence.sum()), 0.0))
        under = np.flatnonzero(evidence < need)
        under = under[under != greedy]
        if bonus is not None and len(under) and cfg.forced_width != math.inf:
            reach = scores[under] + (cfg.forced_width - 1.0) * bonus[under]
            keep = reach >= scores[greedy] - bonus[greedy]
            keep |= evidence[under] < cfg.forced_rule_out * need
            if stale is not None:
                keep |= stale[under]
            under = under[keep]
        return under

    @staticmethod
    def plausible(scores: np.ndarray, greedy: int, bonus: np.ndarray | None) -> np.ndarray:
        """Positions of the candidates other than ``greedy`` that may be better than it: their
        score reaches the greedy one's without its optimism (``bonus``: each candidate's
        optimistic score minus its estimate). ``bonus`` None: every other candidate."""
        if bonus is None:
            out = np.arange(len(scores))
        else:
            out = np.flatnonzero(scores >= scores[greedy] - bonus[greedy])
        return out[out != greedy]

    def choose(
        self,
        scores: np.ndarray,
        evidence: float,
        per_candidate: np.ndarray | None = None,
        bonus: np.ndarray | None = None,
        stale: np.ndarray | None = None,
    ) -> tuple[int, int, float, float]:
        """epsilon-greedy over ``scores`` (candidates), directed (``epsilon_uniform`` to any
        candidate, the rest of epsilon to a :meth:`plausible` one), then forced sampling of
        an under-sampled candidate (``per_candidate``: each one's local evidence) in
        ``forced_share`` of the greedy picks: ``(chosen, greedy, propensity, epsilon)``;
        positions are into ``scores``."""
        k = len(scores)
        greedy = int(scores.argmax())
        if k == 1:
            return 0, 0, 1.0, 0.0
        eps = self.epsilon(evidence)
        uniform = min(self.config.epsilon_uniform, eps)
        plausible = self.plausible(scores, greedy, bonus)
        n_plausible = len(plausible)
        draw = self.rng.random()
        if draw < uniform:
            chosen = self.rng.randrange(k)
        elif draw < eps and n_plausible:
            chosen = int(plausible[self.rng.randrange(n_plausible)])
        else:
            chosen = greedy
        # P(greedy) before forced sampling; the directed share stays with it when no other
        # candidate is plausible.
        held = 1.0 - eps + uniform / k + (0.0 if n_plausible else eps - uniform)
        under = (
            _NONE
            if per_candidate is None
            else self.undersampled(per_candidate, greedy, scores, bonus, stale)
        )
        share = self.config.forced_share if len(under) else 0.0
        if share and chosen == greedy and self.rng.random() < share:
            chosen = int(under[self.rng.randrange(len(under))])
        if chosen == greedy:
            return chosen, greedy, held * (1.0 - share), eps
        propensity = uniform / k
        if n_plausible and chosen in plausible:
            propensity += (eps - uniform) / n_plausible
        if share and chosen in under:
            propensity += held * share / len(under)
        return chosen, greedy, propensity, eps

    def probabilities(
        self,
        scores: np.ndarray,
        evidence: float,
        per_candidate: np.ndarray | None = None,
        bonus: np.ndarray | None = None,
        stale: np.ndarray | None = None,
    ) -> np.ndarray:
        """The probability of each candidate under :meth:`choose` (for evaluation). Exact
        ties share the greedy mass: online they are broken by load, which the log does not
        keep, so a learner with nothing to go on counts as uniform."""
        k = len(scores)
        p = np.zeros(k)
        if k == 0:
            return p
        if k == 1:
            p[0] = 1.0
            return p
        eps = self.epsilon(evidence)
        uniform = min(self.config.epsilon_uniform, eps)
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        for g in best:  # each tied greedy pick with an equal share
            q = np.full(k, uniform / k)
            plausible = self.plausible(scores, int(g), bonus)
            if len(plausible):
                q[plausible] += (eps - uniform) / len(plausible)
                q[g] += 1.0 - eps
            else:
                q[g] += 1.0 - uniform
            under = (
                _NONE
                if per_candidate is None
                else self.undersampled(per_candidate, int(g), scores, bonus, stale)
            )
            if len(under):
                share = self.config.forced_share
                moved = q[g] * share
                q[g] -= moved
                q[under] += moved / len(under)
            p += q / len(best)
        return p

    # -- persistence -----------------------------------------------------------------------

    def stats(self) -> dict:
        with self._lock:
            return {
                "arms": len(self._arms),
                "outcomes": self.outcomes,
                "config": asdict(self.config),
                "objective": self.objective.as_dict(),
            }

    def to_bytes(self, through: float | None = None) -> bytes:
        """The statistics, serialised. ``through``: the wall-clock time up to which they
        include outcomes (a retrain's start); a learner loading them replays the outcomes it
        observed since (see :meth:`load_bytes`)."""
        with self._lock:
            arms = [
                [
                    sid,
                    rtype,
                    arm.seg.round(6).tolist(),
                    round(float(arm.noise), 6),
                    # outcomes of its type since it was last observed (forced_recheck)
                    self._clock(rtype) - arm.last,
                ]
                for (sid, rtype), arm in self._arms.items()
            ]
            return orjson.dumps(
                {
                    "format": FORMAT_VERSION,
                    "config": asdict(self.config),
                    "outcomes": self.outcomes,
                    "through": through,
                    "arms": arms,
                }
            )

    def load_bytes(self, blob: bytes) -> int:
        """Replace this learner's statistics with a saved state (config stays this one's).

        A state saved with ``through`` is brought up to date: the outcomes this learner
        observed at or after that time (its last ``RECENT_OUTCOMES``) are applied on top, so a
        worker that loads a retrained version keeps what it learned while the version was
        trained and evaluated. Returns how many were replayed. (Times are wall-clock: the
        machine that trained and the worker should agree to well under a second.)"""
        data = orjson.loads(blob)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported learner format {data.get('format')!r}")
        bins = self.config.bins
        arms: dict[tuple[str, str], _Arm] = {}
        for sid, rtype, seg, *rest in data["arms"]:
            seg = np.asarray(seg, dtype=np.float64)
            if seg.shape == (bins, 7):
                # Saved before squared rewards were kept: rewards in [0, 1] have r^2 <= r,
                # so the reward sum bounds them (the noise is overstated, never understated).
                seg = np.column_stack([seg, seg[:, 6]])
            if seg.shape != (bins, _SEG_COLUMNS):
                continue  # saved with another segment count: start that arm afresh
            arm = _Arm(bins, self.config.prior_mean)
            arm.seg = seg
            if rest:  # the reward noise it had learned (its optimism depends on it)
                arm.noise = float(rest[0])
            if len(rest) > 1:  # unobserved for this many outcomes: the type's clock restarts
                arm.last = -float(rest[1])
            self._refresh(arm)
            arms[(sid, rtype)] = arm
        through = data.get("through")
        with self._lock:
            self._arms = arms
            self._tables.clear()
            self._clocks = {}  # restarts at 0 (each arm's last: minus its age when saved)
            self.outcomes = int(data.get("outcomes", 0))
            if through is None:
                return 0
            since = [entry for entry in self._recent if entry[0] >= through]
            for _, service_id, request_type, complexity, reward in since:
                self._apply(service_id, request_type, complexity, reward)
            return len(since)

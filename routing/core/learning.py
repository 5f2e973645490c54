"""Learning from outcomes: which candidate is best for which request, online.

The learned strategies treat routing as a **contextual bandit** (Li et al. 2010; Langford &
Zhang 2007): for each request, the arms are the candidate services, the context is the request
(its type and complexity, and the candidates' current load), and the reward is the operator's
:class:`~routing.core.objective.Objective` of the reported outcome.

Reward model
    One arm per ``(service_id, request_type)``. An arm keeps discounted sufficient statistics
    (evidence ``n`` and reward sum ``s``) in ``bins`` complexity bins; each new outcome first
    multiplies its bin's statistics by ``discount`` (so the last ~``1/(1-discount)`` outcomes
    of that bin dominate and a service that starts failing or slowing is overtaken within a
    few outcomes), then adds to it. The estimate for a bin is a Nadaraya-Watson smoothing over
    neighbouring bins (Gaussian kernel, ``bandwidth`` bins) shrunk toward a prior::

        mean[j] = (sum_i K(j, i) s[i] + w0 * prior) / (sum_i K(j, i) n[i] + w0)

    The prior is the arm's own mean over every bin when it has evidence, else
    ``prior_mean`` (optimistic: an untried candidate looks good, so it gets tried), with weight
    ``prior_weight``. Smoothing shares evidence between nearby complexities, so the best
    service may change with complexity and ~2,000 outcomes are enough to find where.

Exploration, with logged propensities
    epsilon-greedy over the candidates' scores, ``score = mean - load_penalty * utilisation``,
    where epsilon decays with the evidence the candidates hold for this context:
    ``epsilon = max(epsilon_min, epsilon0 * evidence_scale / (evidence_scale + evidence))``.
    The probability of the chosen service, ``(1 - epsilon) [greedy] + epsilon / K``, is
    returned with every decision and written to history, which makes off-policy evaluation of
    any other policy on the logged data possible (:mod:`routing.core.offpolicy`).

State is per process (every worker learns from the outcomes it receives); a retrained version
carries a snapshot of the statistics (:meth:`OutcomeLearner.to_bytes`) that every worker loads,
so workers start again from the same, evaluated state. Updates take a lock; readers do not
(a decision that reads a column being rewritten sees the old or the new value of each cell).
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import orjson

from routing.core.objective import Objective
from routing.core.types import FleetSnapshot

FORMAT_VERSION = 1
_TABLES = 32  # (snapshot, request type) score tables kept per learner


@dataclass(frozen=True)
class LearnerConfig:
    bins: int = 10
    bandwidth: float = 0.7
    discount: float = 0.98
    prior_mean: float = 1.0
    prior_weight: float = 1.0
    epsilon: float = 0.2
    epsilon_min: float = 0.02
    evidence_scale: float = 20.0
    load_penalty: float = 0.05
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
        if self.bandwidth <= 0 or self.prior_weight <= 0 or self.evidence_scale <= 0:
            raise ValueError("bandwidth, prior_weight and evidence_scale must be > 0")


def complexity_bin(complexity: float, bins: int) -> int:
    if complexity != complexity:  # NaN
        return 0
    return min(bins - 1, max(0, int(complexity * bins)))


class _Arm:
    __slots__ = ("n", "s", "mean", "evidence")

    def __init__(self, bins: int, prior: float) -> None:
        self.n = np.zeros(bins)
        self.s = np.zeros(bins)
        self.mean = np.full(bins, prior)
        self.evidence = np.zeros(bins)


class _Table:
    """Dense (bins, n_services) means and evidence for one snapshot and request type."""

    __slots__ = ("snapshot", "request_type", "mean", "evidence")

    def __init__(self, snapshot: FleetSnapshot, request_type: str, mean, evidence) -> None:
        self.snapshot = snapshot
        self.request_type = request_type
        self.mean = mean
        self.evidence = evidence


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
        idx = np.arange(cfg.bins)
        self._kernel = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / cfg.bandwidth) ** 2)
        self._arms: dict[tuple[str, str], _Arm] = {}
        self._tables: OrderedDict[tuple, _Table] = OrderedDict()
        self._lock = threading.Lock()
        self.outcomes = 0

    # -- learning --------------------------------------------------------------------------

    def observe(self, service_id: str, request_type: str, complexity: float, reward: float) -> None:
        """Count one outcome (reward in [0, 1]) of ``service_id`` for such a request."""
        cfg = self.config
        b = complexity_bin(complexity, cfg.bins)
        reward = min(1.0, max(0.0, float(reward)))
        with self._lock:
            arm = self._arms.get((service_id, request_type))
            if arm is None:
                arm = self._arms[(service_id, request_type)] = _Arm(cfg.bins, cfg.prior_mean)
            # Forget per bin: a service's evidence for simple requests does not fade because
            # it keeps serving complex ones.
            arm.n[b] = arm.n[b] * cfg.discount + 1.0
            arm.s[b] = arm.s[b] * cfg.discount + reward
            self._refresh(arm)
            self.outcomes += 1
            for table in self._tables.values():
                if table.request_type == request_type:
                    i = table.snapshot.index.get(service_id)
                    if i is not None:
                        table.mean[:, i] = arm.mean
                        table.evidence[:, i] = arm.evidence

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

    def _refresh(self, arm: _Arm) -> None:
        cfg = self.config
        total = arm.n.sum()
        prior = cfg.prior_mean
        if total > 1e-9:
            # Back off to the arm's own mean, still a little optimistic where it has no data.
            prior = (arm.s.sum() + cfg.prior_weight * cfg.prior_mean) / (total + cfg.prior_weight)
        evidence = self._kernel @ arm.n
        arm.evidence = evidence
        arm.mean = (self._kernel @ arm.s + cfg.prior_weight * prior) / (evidence + cfg.prior_weight)

    # -- scoring ---------------------------------------------------------------------------

    def table(
        self,
        snapshot: FleetSnapshot,
        request_type: str,
        prior: Callable[[], np.ndarray] | None = None,
        prior_token: object = None,
    ) -> _Table:
        """Means and evidence of every service of ``snapshot`` for ``request_type``.

        ``prior()`` may give ``(bins, n)`` prior means (a trained gate's predictions) for the
        services with no outcome of this type yet; ``prior_token`` names that prior in the
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
            mean = np.full((cfg.bins, n), cfg.prior_mean) if start is None else start.copy()
            evidence = np.zeros((cfg.bins, n))
            for i, spec in enumerate(snapshot.services):
                arm = self._arms.get((spec.service_id, request_type))
                if arm is not None:
                    mean[:, i] = arm.mean
                    evidence[:, i] = arm.evidence
            table = _Table(snapshot, request_type, mean, evidence)
            self._tables[key] = table
            while len(self._tables) > _TABLES:
                self._tables.popitem(last=False)
        return table

    def estimates(
        self, request_type: str, complexity: float, service_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimated reward and evidence of each service for one request (no snapshot)."""
        cfg = self.config
        b = complexity_bin(complexity, cfg.bins)
        mean = np.full(len(service_ids), cfg.prior_mean)
        evidence = np.zeros(len(service_ids))
        for i, sid in enumerate(service_ids):
            arm = self._arms.get((sid, request_type))
            if arm is not None:
                mean[i] = arm.mean[b]
                evidence[i] = arm.evidence[b]
        return mean, evidence

    def epsilon(self, evidence: float) -> float:
        cfg = self.config
        scale = cfg.evidence_scale
        return max(cfg.epsilon_min, cfg.epsilon * scale / (scale + max(evidence, 0.0)))

    def choose(self, scores: np.ndarray, evidence: float) -> tuple[int, int, float, float]:
        """epsilon-greedy over ``scores`` (candidates): ``(chosen, greedy, propensity,
        epsilon)``; positions are into ``scores``."""
        k = len(scores)
        greedy = int(scores.argmax())
        if k == 1:
            return 0, 0, 1.0, 0.0
        eps = self.epsilon(evidence)
        chosen = self.rng.randrange(k) if self.rng.random() < eps else greedy
        propensity = eps / k + (1.0 - eps if chosen == greedy else 0.0)
        return chosen, greedy, propensity, eps

    def probabilities(self, scores: np.ndarray, evidence: float) -> np.ndarray:
        """The probability of each candidate under :meth:`choose` (for evaluation)."""
        k = len(scores)
        p = np.zeros(k)
        if k == 0:
            return p
        eps = self.epsilon(evidence) if k > 1 else 0.0
        p += eps / k
        p[int(scores.argmax())] += 1.0 - eps
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

    def to_bytes(self) -> bytes:
        with self._lock:
            arms = [
                [sid, rtype, arm.n.round(6).tolist(), arm.s.round(6).tolist()]
                for (sid, rtype), arm in self._arms.items()
            ]
            return orjson.dumps(
                {
                    "format": FORMAT_VERSION,
                    "config": asdict(self.config),
                    "outcomes": self.outcomes,
                    "arms": arms,
                }
            )

    def load_bytes(self, blob: bytes) -> None:
        """Replace this learner's statistics with a saved state (config stays this one's)."""
        data = orjson.loads(blob)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported learner format {data.get('format')!r}")
        bins = self.config.bins
        arms: dict[tuple[str, str], _Arm] = {}
        for sid, rtype, n, s in data["arms"]:
            if len(n) != bins or len(s) != bins:
                continue  # saved with another bin count: start that arm afresh
            arm = _Arm(bins, self.config.prior_mean)
            arm.n = np.asarray(n, dtype=np.float64)
            arm.s = np.asarray(s, dtype=np.float64)
            self._refresh(arm)
            arms[(sid, rtype)] = arm
        with self._lock:
            self._arms = arms
            self._tables.clear()
            self.outcomes = int(data.get("outcomes", 0))

    def copy(self) -> OutcomeLearner:
        other = OutcomeLearner(self.config, self.objective)
        other.load_bytes(self.to_bytes())
        return other


def replay(
    learner: OutcomeLearner,
    rows: Sequence[tuple[str, str, float, float]],
) -> OutcomeLearner:
    """Feed ``(service_id, request_type, complexity, reward)`` rows, oldest first."""
    for service_id, request_type, complexity, reward in rows:
        learner.observe(service_id, request_type, complexity, reward)
    return learner


def effective_memory(discount: float) -> float:
    """How many recent outcomes of an arm carry most of its weight (1 / (1 - discount))."""
    return math.inf if discount >= 1.0 else 1.0 / (1.0 - discount)

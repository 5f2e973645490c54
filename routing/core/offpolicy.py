"""Off-policy evaluation: how would another policy have done on decisions logged by this one?

Each logged decision carries the candidates that were eligible, the service chosen, the
probability (propensity) with which the logging policy chose it, and the reward of its
outcome. For a target policy ``pi`` that gives a probability to every candidate:

- **IPS** (inverse propensity scoring): ``mean(w_i r_i)`` with ``w_i = pi(a_i|x_i) / p_i``;
  unbiased when every action ``pi`` may take had a positive logging probability. Weights are
  capped at ``MAX_WEIGHT`` (clipping: less variance, and a bias, see below).
- **SNIPS** (self-normalised): ``sum(w_i r_i) / sum(w_i)``: a little biased, far less variance.
- **DR** (doubly robust, Dudik et al. 2011): ``mean(sum_a pi(a|x_i) q(x_i, a)
  + w_i (r_i - q(x_i, a_i)))`` with a reward model ``q``: unbiased if either the propensities
  or ``q`` are right, lower variance than IPS when ``q`` is decent.
- **ESS** (effective sample size, Kish): ``(sum w)^2 / sum w^2``: how many logged decisions
  the estimate really rests on; a small ESS means a few rare decisions carry it.
- **support**: the mean importance weight, ``mean(w)``, is 1 in expectation when the log
  tried everything the target policy does; far below 1, the target mostly does what the log
  never tried (a deterministic logger), and the estimate is the reward model's guess.

Every figure above uses the clipped weights ``min(w_i, MAX_WEIGHT)`` (so IPS, SNIPS, DR, ESS
and support describe one estimator). Clipping biases DR toward the reward model: in
expectation it misses ``E[(w - w_clipped) (r - q(x, a))]``, the correction of the decisions
the log made rarely (propensity below ``pi / MAX_WEIGHT``). The router's directed exploration
logs its alternatives at 0.01-0.05 and its uniform share at ~0.001, so wherever a policy
departs from the logging one the clipped DR is mostly the reward model's opinion; and the
reward model is the candidate's own learner, which prefers what the candidate does. So the
clipped figures are reported, but the gate's bound is taken on a *pessimistic* pair: for the
candidate the clipped-away part of a correction is restored where it lowers its estimate
(``r < q``), for the baseline where it raises it (``r > q``). Each is then biased only
against the candidate (``E[low] <= V(candidate)``, ``E[high] >= V(baseline)``), whatever the
reward model, and a candidate the log shows to be worse where it departs from it is not
carried by its own reward model.

:func:`compare` estimates the improvement of a candidate over a baseline as the mean of
paired per-decision (clipped) DR differences, with a one-sided normal lower confidence bound
on the pessimistic pair; a candidate should go live only when that bound is above zero and
the ESS and support of both policies are large enough (the DR of a policy the log barely
tried is the reward model's guess, and that guess is the candidate's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    request_type: str
    complexity: float
    candidates: tuple[str, ...]
    action: str
    propensity: float
    reward: float


# A policy: for a logged decision, the probability of each of its candidates (in order).
Policy = Callable[[LoggedDecision], np.ndarray]
# A reward model: for a logged decision, the expected reward of each of its candidates.
RewardModel = Callable[[LoggedDecision], np.ndarray]


@dataclass(frozen=True)
class Estimate:
    ips: float
    snips: float
    dr: float
    ess: float
    n: int
    # Per-decision DR terms, for paired comparisons.
    dr_terms: np.ndarray
    support: float = 1.0
    # Per-decision DR terms with the part of the correction clipping took away restored where
    # it lowers (``low_terms``) or raises (``high_terms``) the estimate; None: no clipping.
    low_terms: np.ndarray | None = None
    high_terms: np.ndarray | None = None
    # Share of the decisions whose importance weight was capped.
    clipped: float = 0.0

    def as_dict(self) -> dict:
        return {
            "ips": round(self.ips, 6),
            "snips": round(self.snips, 6),
            "dr": round(self.dr, 6),
            "ess": round(self.ess, 1),
            "support": round(self.support, 4),
            "clipped": round(self.clipped, 4),
            "n": self.n,
        }

    @property
    def low(self) -> np.ndarray:
        return self.dr_terms if self.low_terms is None else self.low_terms

    @property
    def high(self) -> np.ndarray:
        return self.dr_terms if self.high_terms is None else self.high_terms


def usable(rows: Sequence[LoggedDecision]) -> list[LoggedDecision]:
    """Rows off-policy evaluation can use: a known positive propensity, and the chosen
    service among the logged candidates."""
    return [
        r
        for r in rows
        if r.propensity is not None
        and r.propensity > 0
        and math.isfinite(r.reward)
        and r.action in r.candidates
    ]


# Importance weights are capped here (clipped DR, as Vowpal Wabbit and most production
# off-policy evaluators do): an exploratory pick logged at propensity 0.003 would otherwise
# weigh 300 decisions and its variance would hide any real difference. A little bias toward
# the reward model, far less variance.
MAX_WEIGHT = 20.0


def estimate(
    rows: Sequence[LoggedDecision],
    policy: Policy,
    model: RewardModel,
    max_weight: float = MAX_WEIGHT,
) -> Estimate:
    n = len(rows)
    if n == 0:
        return Estimate(0.0, 0.0, 0.0, 0.0, 0, np.zeros(0))
    w = np.empty(n)
    r = np.empty(n)
    dr = np.empty(n)
    # the correction clipping took away: (w - w_clipped) (r - q(a))
    excess = np.empty(n)
    capped = 0
    for i, row in enumerate(rows):
        pi = policy(row)
        q = model(row)
        a = row.candidates.index(row.action)
        raw = pi[a] / row.propensity
        w[i] = min(raw, max_weight)
        r[i] = row.reward
        residual = row.reward - q[a]
        dr[i] = float(pi @ q) + w[i] * residual
        excess[i] = (raw - w[i]) * residual
        capped += raw > max_weight
    wsum = w.sum()
    return Estimate(
        ips=float((w * r).mean()),
        snips=float((w * r).sum() / wsum) if wsum > 0 else 0.0,
        dr=float(dr.mean()),
        ess=float(wsum**2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0,
        n=n,
        dr_terms=dr,
        support=float(w.mean()),
        low_terms=dr + np.minimum(excess, 0.0),
        high_terms=dr + np.maximum(excess, 0.0),
        clipped=float(capped) / n,
    )


def logged_value(rows: Sequence[LoggedDecision]) -> Estimate:
    """The logging policy's own value (on-policy: the mean observed reward)."""
    r = np.array([row.reward for row in rows], dtype=np.float64)
    mean = float(r.mean()) if len(r) else 0.0
    return Estimate(mean, mean, mean, float(len(r)), len(r), r)


# Below this mean importance weight the log seldom tried what the candidate would do, and the
# DR estimate would rest mostly on the reward model. (A deterministic logger that spread
# requests evenly over two services gives a candidate that always picks one of them ~0.5.)
MIN_SUPPORT = 0.3


def compare(
    candidate: Estimate,
    baseline: Estimate,
    confidence: float = 0.95,
    min_ess: float = 30.0,
    min_support: float = MIN_SUPPORT,
) -> dict:
    """Is ``candidate`` better than ``baseline`` on the same rows, with confidence?

    ``improvement`` is the mean paired difference of the (clipped) DR terms; the one-sided
    ``lower_bound`` is taken on the pessimistic pair (the candidate's ``low`` terms minus the
    baseline's ``high`` ones, see the module docstring), so clipping never counts for the
    candidate."""
    n = candidate.n
    if n < 2 or baseline.n != n:
        return {
            "improvement": 0.0,
            "std_error": None,
            "lower_bound": None,
            "confidence": confidence,
            "better": False,
            "decision": f"not enough logged decisions to compare ({n})",
        }
    mean = float((candidate.dr_terms - baseline.dr_terms).mean())
    pessimistic = candidate.low - baseline.high
    se = float(pessimistic.std(ddof=1) / math.sqrt(n))
    z = NormalDist().inv_cdf(confidence)
    lower = float(pessimistic.mean()) - z * se
    if candidate.ess < min_ess:
        better, why = False, f"ESS {candidate.ess:.0f} < {min_ess:g}: too little support"
    elif min(candidate.support, baseline.support) < min_support:
        better = False
        which = "candidate" if candidate.support < min_support else "baseline"
        support = min(candidate.support, baseline.support)
        why = (
            f"mean importance weight of the {which} {support:.2f} < {min_support:g}: the log "
            f"seldom tried what the {which} would do, too little support"
        )
    else:
        better = lower > 0
        why = f"DR improvement {mean:+.4f}, {confidence:.0%} lower bound {lower:+.4f} " + (
            "> 0" if better else "<= 0"
        )
        if max(candidate.clipped, baseline.clipped) > 0:
            why += " (pessimistic about clipped weights)"
    return {
        "improvement": round(mean, 6),
        "std_error": round(se, 6),
        "lower_bound": round(lower, 6),
        "confidence": confidence,
        "better": better,
        "decision": why,
    }

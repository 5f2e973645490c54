"""IPS, SNIPS, DR, ESS and support (routing/core/offpolicy.py) against their formulas, and
against the truth: on synthetic logs drawn from a known logging policy with known mean
rewards, IPS and DR are unbiased for a target policy's true value with full support, DR stays
unbiased with a wrong reward model, and clipping only ever makes the gate's bound more
pessimistic. Monte Carlo runs are seeded (deterministic) and take well under 5 s each."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.core import offpolicy
from routing.core.offpolicy import LoggedDecision
from tests.routing.core.fleets import PROPERTY_SETTINGS

ACTIONS = ("a", "b", "c")


# -- synthetic world: 4 contexts, 3 actions, Bernoulli rewards ------------------------------

CONTEXTS = 4
# True mean reward of each action in each context.
TRUE = np.array(
    [
        [0.9, 0.5, 0.2],
        [0.3, 0.8, 0.4],
        [0.5, 0.5, 0.6],
        [0.1, 0.2, 0.7],
    ]
)
# Logging policy: full support, far from uniform (a greedy-ish logger).
LOGGER = np.array(
    [
        [0.80, 0.15, 0.05],
        [0.10, 0.60, 0.30],
        [0.20, 0.20, 0.60],
        [0.05, 0.15, 0.80],
    ]
)


def draw_log(rng, n, logger=LOGGER, truth=TRUE):
    """``n`` decisions: a uniformly random context, an action drawn from ``logger`` with its
    propensity logged, a Bernoulli reward of mean ``truth``."""
    x = rng.integers(CONTEXTS, size=n)
    cum = np.cumsum(logger[x], axis=1)
    a = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(ACTIONS) - 1)
    r = (rng.random(n) < truth[x, a]).astype(float)
    p = logger[x, a]
    return [
        LoggedDecision("t", x[i] / 10, ACTIONS, ACTIONS[a[i]], float(p[i]), float(r[i]))
        for i in range(n)
    ]


def context(row):
    return round(row.complexity * 10)


def table_policy(probabilities):
    probabilities = np.asarray(probabilities, dtype=float)
    return lambda row: probabilities[context(row)]


def table_model(values):
    values = np.asarray(values, dtype=float)
    return lambda row: values[context(row)]


def true_value(probabilities, truth=TRUE):
    return float((np.asarray(probabilities) * truth).sum(axis=1).mean())


TARGET = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.1, 0.8],
        [0.3, 0.3, 0.4],
        [0.0, 0.5, 0.5],
    ]
)
RIGHT = TRUE
WRONG = np.clip(TRUE + 0.35, 0.0, 1.0)  # optimistic, like an untried arm's prior


def replicate(draws, n, seed, *policies, model=RIGHT, max_weight=math.inf):
    """IPS and DR of each policy over ``draws`` independent logs: arrays (draws, policies)."""
    rng = np.random.default_rng(seed)
    ips = np.empty((draws, len(policies)))
    dr = np.empty((draws, len(policies)))
    for d in range(draws):
        rows = draw_log(rng, n)
        for j, pi in enumerate(policies):
            est = offpolicy.estimate(rows, table_policy(pi), table_model(model), max_weight)
            ips[d, j], dr[d, j] = est.ips, est.dr
    return ips, dr


def assert_unbiased(samples, truth):
    """The mean of independent estimates is within 4 standard errors of the truth."""
    se = samples.std(ddof=1) / math.sqrt(len(samples))
    assert abs(samples.mean() - truth) < 4 * se + 1e-9, (samples.mean(), truth, se)


# -- Monte Carlo: unbiasedness ---------------------------------------------------------------


def test_ips_and_dr_are_unbiased_for_a_target_policys_true_value_with_full_support():
    truth = true_value(TARGET)
    ips, dr = replicate(300, 200, 1, TARGET)
    assert_unbiased(ips[:, 0], truth)
    assert_unbiased(dr[:, 0], truth)
    # and they are not trivially so: the logger's own value is far from the target's
    assert abs(true_value(LOGGER) - truth) > 0.05


def test_dr_stays_unbiased_with_a_wrong_reward_model():
    truth = true_value(TARGET)
    _, dr = replicate(300, 200, 2, TARGET, model=WRONG)
    assert_unbiased(dr[:, 0], truth)
    # the direct method with that model alone would be far off
    direct = float((TARGET * WRONG).sum(axis=1).mean())
    assert abs(direct - truth) > 0.2


def test_with_a_right_reward_model_dr_has_less_variance_than_ips():
    ips, dr = replicate(200, 200, 3, TARGET, model=RIGHT)
    assert dr[:, 0].var() < 0.9 * ips[:, 0].var()


def test_snips_is_consistent():
    rng = np.random.default_rng(4)
    rows = draw_log(rng, 20_000)
    est = offpolicy.estimate(rows, table_policy(TARGET), table_model(WRONG), math.inf)
    assert est.snips == pytest.approx(true_value(TARGET), abs=0.02)
    assert est.support == pytest.approx(1.0, abs=0.03)  # full support: E[w] = 1


# -- Monte Carlo: the gate ---------------------------------------------------------------------


def gate_draws(draws, n, seed, candidate, baseline, model, logger=LOGGER, truth=TRUE):
    rng = np.random.default_rng(seed)
    verdicts = []
    for _ in range(draws):
        rows = draw_log(rng, n, logger, truth)
        new = offpolicy.estimate(rows, table_policy(candidate), table_model(model))
        old = offpolicy.estimate(rows, table_policy(baseline), table_model(model))
        verdicts.append(offpolicy.compare(new, old, confidence=0.95, min_ess=30))
    return verdicts


ALWAYS_BEST = np.eye(3)[TRUE.argmax(axis=1)]
ALWAYS_SECOND = np.eye(3)[np.argsort(-TRUE, axis=1)[:, 1]]


def test_a_candidate_whose_true_value_is_lower_is_refused():
    assert true_value(ALWAYS_SECOND) < true_value(ALWAYS_BEST) - 0.1
    verdicts = gate_draws(100, 400, 5, ALWAYS_SECOND, ALWAYS_BEST, WRONG)
    assert not any(v["better"] for v in verdicts)


def test_a_candidate_whose_true_value_is_higher_is_accepted():
    verdicts = gate_draws(50, 1500, 6, ALWAYS_BEST, ALWAYS_SECOND, RIGHT)
    assert sum(v["better"] for v in verdicts) >= 45


# Two policies of exactly equal true value, choosing differently: the candidate always takes
# action a, the baseline always b, and both have mean reward 0.6 everywhere.
EQUAL_TRUTH = np.tile([0.6, 0.6, 0.2], (CONTEXTS, 1))
TAKES_A = np.tile([1.0, 0.0, 0.0], (CONTEXTS, 1))
TAKES_B = np.tile([0.0, 1.0, 0.0], (CONTEXTS, 1))


@pytest.mark.parametrize(
    "logger, model",
    [
        (np.tile([0.3, 0.4, 0.3], (CONTEXTS, 1)), np.full((CONTEXTS, 3), 0.5)),
        # a candidate the log seldom tried (weights 25, clipped at 20), and a reward model
        # that flatters it: clipping must not count for it
        (np.tile([0.04, 0.9, 0.06], (CONTEXTS, 1)), np.tile([0.95, 0.6, 0.2], (CONTEXTS, 1))),
    ],
    ids=["unclipped", "clipped-flattering-model"],
)
def test_an_equal_candidate_is_activated_at_most_at_about_the_nominal_rate(logger, model):
    draws = 300
    verdicts = gate_draws(draws, 500, 7, TAKES_A, TAKES_B, model, logger, EQUAL_TRUTH)
    rate = sum(v["better"] for v in verdicts) / draws
    # nominal 5%; three binomial standard errors of slack (~3.8 points)
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws), rate


def test_a_worse_candidate_the_log_seldom_tried_is_not_carried_by_its_own_reward_model():
    """The log tried a 2% of the time (weight 50, clipped to 20); the candidate always takes
    a, truly worth 0.5, and its reward model says 0.9; the baseline takes b, worth 0.6. The
    clipped DR is mostly that model (about 0.76): before the bound was made pessimistic about
    clipped weights, this worse candidate went live in 95 of 100 draws."""
    truth = np.tile([0.5, 0.6, 0.3], (CONTEXTS, 1))
    logger = np.tile([0.02, 0.96, 0.02], (CONTEXTS, 1))
    flattering = np.tile([0.9, 0.6, 0.3], (CONTEXTS, 1))
    verdicts = gate_draws(40, 3000, 8, TAKES_A, TAKES_B, flattering, logger, truth)
    assert not any(v["better"] for v in verdicts), [v["decision"] for v in verdicts[:3]]
    # the clipped point estimate is still reported (it is what the figures describe)
    assert np.mean([v["improvement"] for v in verdicts]) > 0.1


def test_a_baseline_the_log_never_tried_is_not_judged_by_the_candidates_reward_model():
    """A deterministic log that always took a: the candidate (always a) is fully supported,
    the baseline (always b) not at all, so its DR is the reward model's opinion of b, and
    that model is the candidate's. b is truly better; the model thinks it poor."""
    truth = np.tile([0.5, 0.9, 0.3], (CONTEXTS, 1))
    logger = np.tile([1.0, 0.0, 0.0], (CONTEXTS, 1))
    model = np.tile([0.5, 0.2, 0.3], (CONTEXTS, 1))
    (verdict,) = gate_draws(1, 1000, 9, TAKES_A, TAKES_B, model, logger, truth)
    assert not verdict["better"]
    assert "baseline" in verdict["decision"] and "too little support" in verdict["decision"]


# -- properties of the formulas ------------------------------------------------------------

propensities = st.floats(0.001, 1.0)
probability_rows = st.lists(
    st.sampled_from([0.0, 1.0]) | st.floats(0.01, 1.0), min_size=3, max_size=3
).map(lambda v: np.array(v) / sum(v) if sum(v) > 0 else np.full(3, 1 / 3))
logged_rows = st.lists(
    st.tuples(
        st.sampled_from(ACTIONS),
        propensities,
        st.floats(0.0, 1.0),
        probability_rows,
        st.lists(st.floats(-0.5, 1.5), min_size=3, max_size=3),
    ),
    min_size=1,
    max_size=40,
)


def unpack(data):
    rows = [LoggedDecision("t", i, ACTIONS, a, p, r) for i, (a, p, r, _, _) in enumerate(data)]
    pis = [pi for *_, pi, _ in data]
    qs = [np.array(q) for *_, q in data]

    def policy(row):
        return pis[int(row.complexity)]

    def model(row):
        return qs[int(row.complexity)]

    return rows, policy, model, pis, qs


@PROPERTY_SETTINGS
@given(logged_rows, st.floats(1.0, 50.0))
def test_every_figure_follows_its_formula_with_the_clipped_weights(data, cap):
    rows, policy, model, pis, qs = unpack(data)
    est = offpolicy.estimate(rows, policy, model, cap)
    a = [ACTIONS.index(r.action) for r in rows]
    raw = np.array([pis[i][a[i]] / r.propensity for i, r in enumerate(rows)])
    w = np.minimum(raw, cap)
    reward = np.array([r.reward for r in rows])
    q_a = np.array([qs[i][a[i]] for i in range(len(rows))])
    direct = np.array([pis[i] @ qs[i] for i in range(len(rows))])
    assert est.n == len(rows)
    assert est.ips == pytest.approx((w * reward).mean())
    if (w**2).sum() > 0:
        assert est.snips == pytest.approx((w * reward).sum() / w.sum())
        assert est.ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
        assert 1.0 - 1e-9 <= est.ess <= len(rows) + 1e-9  # Kish: between 1 and n
    assert est.dr_terms == pytest.approx(direct + w * (reward - q_a))
    assert est.dr == pytest.approx(est.dr_terms.mean())
    assert est.support == pytest.approx(w.mean())
    assert est.clipped == pytest.approx((raw > cap).mean())
    # the pessimistic and optimistic terms bracket the clipped ones, and restore exactly the
    # part of the correction clipping removed
    assert np.all(est.low <= est.dr_terms + 1e-12) and np.all(est.dr_terms <= est.high + 1e-12)
    unclipped = direct + raw * (reward - q_a)
    assert np.minimum(est.dr_terms, unclipped) == pytest.approx(est.low)
    assert np.maximum(est.dr_terms, unclipped) == pytest.approx(est.high)


@PROPERTY_SETTINGS
@given(logged_rows)
def test_evaluating_the_logging_policy_itself_gives_weights_of_one(data):
    rows, _, model, _, _ = unpack(data)

    def logger(row):  # puts on the logged action exactly its logged propensity
        p = np.full(3, (1 - row.propensity) / 2)
        p[ACTIONS.index(row.action)] = row.propensity
        return p

    est = offpolicy.estimate(rows, logger, model)
    mean = float(np.mean([r.reward for r in rows]))
    assert est.ips == pytest.approx(mean) and est.snips == pytest.approx(mean)
    assert est.ess == pytest.approx(len(rows)) and est.support == pytest.approx(1.0)
    assert est.clipped == 0.0
    assert offpolicy.logged_value(rows).dr == pytest.approx(mean)


@PROPERTY_SETTINGS
@given(logged_rows, logged_rows)
def test_compare_is_antisymmetric_and_its_bound_never_above_the_estimate(first, second):
    n = min(len(first), len(second))
    rows, pol1, model, _, _ = unpack(first[:n])
    _, pol2, _, _, _ = unpack([(a, p, r, pi, q) for (a, p, r, _, q), (*_, pi, _) in
                               zip(first[:n], second[:n], strict=True)])  # fmt: skip
    one = offpolicy.estimate(rows, pol1, model)
    two = offpolicy.estimate(rows, pol2, model)
    forward, backward = offpolicy.compare(one, two), offpolicy.compare(two, one)
    assert forward["improvement"] == pytest.approx(-backward["improvement"], abs=2e-6)
    if n >= 2:
        assert forward["lower_bound"] <= forward["improvement"] + 1e-6
        assert backward["lower_bound"] <= backward["improvement"] + 1e-6
        # never better in both directions
        assert not (forward["better"] and backward["better"])
    else:
        assert not forward["better"] and forward["lower_bound"] is None
    same = offpolicy.compare(one, one)
    assert not same["better"] and same["improvement"] == 0.0


def test_the_one_sided_bound_is_the_normal_quantile_of_the_paired_differences():
    rng = np.random.default_rng(10)
    rows = draw_log(rng, 400)
    new = offpolicy.estimate(rows, table_policy(TARGET), table_model(RIGHT))
    old = offpolicy.estimate(rows, table_policy(LOGGER), table_model(RIGHT))
    assert new.clipped == old.clipped == 0.0  # no clipping: the pessimistic pair is the pair
    diff = new.dr_terms - old.dr_terms
    verdict = offpolicy.compare(new, old, confidence=0.9, min_ess=1)
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert verdict["improvement"] == pytest.approx(diff.mean(), abs=1e-6)
    assert verdict["std_error"] == pytest.approx(se, abs=1e-6)
    assert verdict["lower_bound"] == pytest.approx(diff.mean() - 1.2815516 * se, abs=1e-6)


@pytest.mark.parametrize(
    "row",
    [
        LoggedDecision("t", 0.5, ACTIONS, "a", None, 1.0),
        LoggedDecision("t", 0.5, ACTIONS, "a", 0.0, 1.0),
        LoggedDecision("t", 0.5, ACTIONS, "a", -0.2, 1.0),
        LoggedDecision("t", 0.5, ACTIONS, "a", float("nan"), 1.0),
        LoggedDecision("t", 0.5, ACTIONS, "a", 0.5, float("nan")),
        LoggedDecision("t", 0.5, ACTIONS, "z", 0.5, 1.0),  # not among its candidates
        LoggedDecision("t", 0.5, (), "a", 0.5, 1.0),  # candidates not logged
    ],
    ids=["none", "zero", "negative", "nan-propensity", "nan-reward", "outside", "no-candidates"],
)
def test_a_row_off_policy_evaluation_cannot_use_is_left_out(row):
    good = LoggedDecision("t", 0.5, ACTIONS, "b", 0.5, 1.0)
    assert offpolicy.usable([row, good]) == [good]


def test_nothing_usable_is_refused_without_a_crash():
    empty = offpolicy.estimate([], table_policy(TARGET), table_model(RIGHT))
    verdict = offpolicy.compare(empty, empty)
    assert not verdict["better"] and "not enough logged decisions" in verdict["decision"]
    assert offpolicy.logged_value([]).as_dict()["n"] == 0

"""Power-of-two-choices load balancing and the load-balance score.

P2C (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing") samples two
distinct eligible services and keeps the cheaper one, where

    cost = EWMA latency * (in-flight + 1) / weight

A service with no latency measured yet is costed at the mean EWMA of the measured candidates
(1 ms when none is measured), so newcomers neither win every draw nor starve. Equal costs go to
the lower utilisation (in-flight / capacity), then to the first draw. The RNG is a
``random.Random`` the caller owns and may seed, so tests are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

DEFAULT_LATENCY_MS = 1.0


def p2c_cost(latency_ms: float, in_flight: float, weight: float) -> float:
    return latency_ms * (in_flight + 1.0) / max(weight, 1e-9)


def default_latency(latencies: Sequence[float]) -> float:
    """Latency assumed for a service with nothing measured: mean of the measured ones."""
    measured = [x for x in latencies if x > 0]
    return sum(measured) / len(measured) if measured else DEFAULT_LATENCY_MS


def p2c_pick(
    candidates: Sequence[int],
    latency_ms: Sequence[float],
    in_flight: Sequence[float],
    weight: Sequence[float],
    capacity: Sequence[float],
    rng: random.Random,
    fallback_latency_ms: float = DEFAULT_LATENCY_MS,
) -> tuple[int, int | None, float, float]:
    """Pick among ``candidates`` (service indices) by two random choices.

    Returns ``(chosen, other, chosen_cost, other_cost)``; ``other`` is None when there was
    only one candidate.
    """
    n = len(candidates)
    if n == 1:
        only = candidates[0]
        lat = latency_ms[only] or fallback_latency_ms
        return only, None, p2c_cost(lat, in_flight[only], weight[only]), 0.0
    i = int(rng.random() * n)
    j = int(rng.random() * (n - 1))
    if j >= i:
        j += 1
    a, b = candidates[i], candidates[j]
    cost_a = p2c_cost(latency_ms[a] or fallback_latency_ms, in_flight[a], weight[a])
    cost_b = p2c_cost(latency_ms[b] or fallback_latency_ms, in_flight[b], weight[b])
    if cost_b < cost_a or (
        cost_b == cost_a and in_flight[b] / capacity[b] < in_flight[a] / capacity[a]
    ):
        return b, a, cost_b, cost_a
    return a, b, cost_a, cost_b


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2), in [1/n, 1]; 1.0 when all equal.

    The load-balance score is this over utilisation (load / capacity) of healthy services;
    an all-idle fleet counts as perfectly balanced.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 1.0
    squares = float(np.dot(x, x))
    if squares == 0.0:
        return 1.0
    return float(x.sum() ** 2 / (x.size * squares))

"""The fleet context recorded with every decision in history (load, eligibility, anomalies,
errors at decision time), for operators and for off-line analysis of routing outcomes."""

from __future__ import annotations

import numpy as np

CONTEXT_DIM = 4


def fleet_context(
    in_flight: np.ndarray,
    capacity: np.ndarray,
    anomaly: np.ndarray,
    error_rate: np.ndarray,
    eligible: np.ndarray,
) -> np.ndarray:
    """Mean utilisation and share of eligible services, highest anomaly score, mean error
    rate: float32 ``(CONTEXT_DIM,)``."""
    n = len(capacity)
    if n == 0 or not eligible.any():
        return np.zeros(CONTEXT_DIM, dtype=np.float32)
    util = in_flight[eligible] / np.maximum(capacity[eligible], 1.0)
    return np.array(
        [util.mean(), eligible.mean(), anomaly.max(), error_rate.mean()], dtype=np.float32
    )

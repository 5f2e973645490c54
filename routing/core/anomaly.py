"""Per-service anomaly scores from telemetry outliers, for ``tda_aware``.

A service is anomalous when its EWMA latency or error rate sits far above the rest of the
fleet. Deviations are robust z-scores (median and MAD, so one sick service cannot hide by
inflating the spread); only the bad direction counts. The larger of the two z-scores maps
linearly to [0, 1] between ``z_low`` (0) and ``z_high`` (1). The telemetry job calls this and
stores the result with ``LiveStateStore.set_anomaly``; an external detector may set scores
directly instead.
"""

from __future__ import annotations

import numpy as np

# MAD of a normal distribution times this is its standard deviation.
_MAD_TO_SIGMA = 1.4826


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """(x - median) / (1.4826 * MAD), with the spread floored at ``floor``."""
    if values.size == 0:
        return np.zeros(0)
    median = np.median(values)
    spread = max(_MAD_TO_SIGMA * float(np.median(np.abs(values - median))), floor)
    return (values - median) / spread


def outlier_scores(
    latency_ms: np.ndarray,
    error_rate: np.ndarray,
    z_low: float = 2.0,
    z_high: float = 6.0,
    min_services: int = 3,
) -> np.ndarray:
    """Anomaly score in [0, 1] per service (same order as the inputs).

    Services with no latency measured (0) are left out of the latency statistics and get no
    latency score. With fewer than ``min_services`` services nothing is an outlier.
    """
    latency_ms = np.asarray(latency_ms, dtype=np.float64)
    error_rate = np.asarray(error_rate, dtype=np.float64)
    z = np.zeros(len(latency_ms))
    if len(latency_ms) < min_services:
        return z
    measured = latency_ms > 0
    if measured.sum() >= min_services:
        lat = latency_ms[measured]
        # A 10% spread floor: a tight, healthy fleet must not flag a service 5% slower.
        z[measured] = robust_z(lat, floor=0.1 * float(np.median(lat)) + 1e-9)
    # Two percentage points of spread at least, for the same reason.
    z = np.maximum(z, robust_z(error_rate, floor=0.02))
    return np.clip((z - z_low) / (z_high - z_low), 0.0, 1.0)

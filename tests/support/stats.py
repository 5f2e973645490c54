"""Percentiles as the benchmarks report them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (``q`` in 0..100) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return float(sorted_values[min(len(sorted_values), max(1, rank)) - 1])

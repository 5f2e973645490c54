"""The one objective every learned part of the router optimises, and how it is scored.

An operator picks it with ``MOE_OBJECTIVE`` (and its parameters); the same :class:`Objective`
turns an outcome into a reward for online learning, for retraining, for the off-policy
evaluation that decides whether a new version goes live, for the dashboard and for the fleet
simulation's oracle. Rewards are in [0, 1]; higher is better.

``success_minus_latency`` (default)
    ``1 - latency_ms / latency_cost_ms`` for a success (floored at 0), ``0`` for a failure:
    a failure costs as much as ``latency_cost_ms`` of latency, so among services that succeed
    equally often the faster one wins, and a slow success still beats a failure.
``success_within_slo``
    ``1`` when the call succeeded within ``slo_ms``, else ``0`` (a success that missed the
    latency SLO counts as a miss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBJECTIVES = ("success_minus_latency", "success_within_slo")


@dataclass(frozen=True, slots=True)
class Objective:
    kind: str = "success_minus_latency"
    latency_cost_ms: float = 1000.0
    slo_ms: float = 1000.0

    def __post_init__(self) -> None:
        if self.kind not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.kind!r}; valid: {', '.join(OBJECTIVES)}")
        if self.latency_cost_ms <= 0 or self.slo_ms <= 0:
            raise ValueError("latency_cost_ms and slo_ms must be > 0")

    def reward(self, success: bool, latency_ms: float | None) -> float:
        """The reward of one outcome (no latency reported counts as 0 ms)."""
        if not success:
            return 0.0
        latency = float(latency_ms) if latency_ms is not None and latency_ms > 0 else 0.0
        if self.kind == "success_within_slo":
            return 1.0 if latency <= self.slo_ms else 0.0
        return max(0.0, 1.0 - latency / self.latency_cost_ms)

    def rewards(self, success: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`reward`; NaN or negative latency counts as 0 ms."""
        ok = np.asarray(success, dtype=bool)
        lat = np.nan_to_num(np.asarray(latency_ms, dtype=np.float64), nan=0.0).clip(min=0.0)
        if self.kind == "success_within_slo":
            return (ok & (lat <= self.slo_ms)).astype(np.float64)
        return np.where(ok, (1.0 - lat / self.latency_cost_ms).clip(min=0.0), 0.0)

    def describe(self) -> str:
        """One line an operator can read."""
        if self.kind == "success_within_slo":
            return f"success within {self.slo_ms:g} ms (1 if so, else 0)"
        return (
            f"success minus latency: 1 - latency/{self.latency_cost_ms:g} ms for a success "
            "(at least 0), 0 for a failure"
        )

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "latency_cost_ms": self.latency_cost_ms,
            "slo_ms": self.slo_ms,
            "description": self.describe(),
        }

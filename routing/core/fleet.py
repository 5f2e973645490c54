"""Per-snapshot precomputation for the strategies (built once per snapshot, then cached).

A :class:`PreparedFleet` hangs off its :class:`FleetSnapshot` instance, so it lives exactly as
long as the snapshot and a new registry version gets a fresh one. It holds Python-list copies of
the static arrays (indexing a list is cheaper than indexing numpy for one element), the
consistent-hash ring, per-capability-set eligibility masks and semantic base scores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from routing.core.hashing import HashRing
from routing.core.types import FleetSnapshot

T = TypeVar("T")

# Request-dependent caches (capability sets, semantic score vectors) stop growing here.
_MAX_CACHED = 4096

# Semantic score weights: same type, request type among the service's capabilities, and the
# Jaccard overlap of required and offered capabilities (specialists beat generalists).
SEMANTIC_TYPE_WEIGHT = 1.0
SEMANTIC_TYPE_AS_CAPABILITY_WEIGHT = 0.5
SEMANTIC_CAPABILITY_WEIGHT = 1.0

_memo_lock = threading.Lock()


def memo(snapshot: FleetSnapshot, key: Any, factory: Callable[[], T]) -> T:
    """Cache ``factory()`` on the snapshot instance (FleetSnapshot is frozen, not slotted)."""
    cache = snapshot.__dict__.get("_core_memo")
    if cache is None:
        with _memo_lock:
            cache = snapshot.__dict__.setdefault("_core_memo", {})
    value = cache.get(key)
    if value is None:
        value = factory()
        cache[key] = value
    return value


class PreparedFleet:
    def __init__(self, snapshot: FleetSnapshot, vnodes: int) -> None:
        self.snapshot = snapshot
        self.n = len(snapshot)
        self.ids = list(snapshot.service_ids)
        self.capacity = np.maximum(snapshot.capacity.astype(np.float64), 0.0)
        self.capacity_list = self.capacity.tolist()
        # Utilisation divides by capacity; a zero-capacity service is never eligible anyway.
        self.capacity_safe = np.maximum(self.capacity, 1.0)
        self.weight = np.maximum(snapshot.weight.astype(np.float64), 1e-9)
        self.weight_list = self.weight.tolist()
        self.routable = snapshot.routable.astype(bool)
        self.types = [s.service_type for s in snapshot.services]
        self.capability_sets = [s.capabilities for s in snapshot.services]
        self._cap_index = {c: j for j, c in enumerate(snapshot.capability_names)}
        self._vnodes = vnodes
        self._ring: HashRing | None = None
        self._static_masks: dict[tuple[str, ...], np.ndarray | None] = {}
        self._semantic: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    @classmethod
    def of(cls, snapshot: FleetSnapshot, vnodes: int) -> PreparedFleet:
        return memo(snapshot, ("prepared", vnodes), lambda: cls(snapshot, vnodes))

    @property
    def ring(self) -> HashRing:
        if self._ring is None:
            self._ring = HashRing(self.ids, self._vnodes)
        return self._ring

    def static_mask(self, capabilities: tuple[str, ...]) -> np.ndarray | None:
        """Routable services offering every capability; None when some capability is offered
        by no service in the fleet at all."""
        if not capabilities:
            return self.routable
        mask = self._static_masks.get(capabilities, False)
        if mask is not False:
            return mask
        result: np.ndarray | None = self.routable.copy()
        matrix = self.snapshot.capability_matrix
        for cap in capabilities:
            j = self._cap_index.get(cap)
            if j is None:
                result = None
                break
            result &= matrix[:, j]
        if len(self._static_masks) < _MAX_CACHED:
            self._static_masks[capabilities] = result
        return result

    def missing_capabilities(self, capabilities: tuple[str, ...]) -> list[str]:
        return [c for c in capabilities if c not in self._cap_index]

    def lacking(self, capability: str) -> np.ndarray:
        """Services without ``capability``."""
        j = self._cap_index.get(capability)
        if j is None:
            return np.ones(self.n, dtype=bool)
        return ~self.snapshot.capability_matrix[:, j]

    def semantic_scores(self, request_type: str, capabilities: tuple[str, ...]) -> np.ndarray:
        """How well each service's specialisation matches the request (higher is better)."""
        key = (request_type, capabilities)
        scores = self._semantic.get(key)
        if scores is not None:
            return scores
        wanted = frozenset(capabilities)
        out = np.zeros(self.n)
        for i, (stype, caps) in enumerate(zip(self.types, self.capability_sets, strict=True)):
            score = 0.0
            if request_type:
                if stype == request_type:
                    score += SEMANTIC_TYPE_WEIGHT
                if request_type in caps:
                    score += SEMANTIC_TYPE_AS_CAPABILITY_WEIGHT
            if wanted:
                union = len(wanted | caps)
                score += SEMANTIC_CAPABILITY_WEIGHT * len(wanted & caps) / union
            out[i] = score
        out.flags.writeable = False
        if len(self._semantic) < _MAX_CACHED:
            self._semantic[key] = out
        return out

    @staticmethod
    def semantic_max(request_type: str, capabilities: tuple[str, ...]) -> float:
        best = 0.0
        if request_type:
            best += SEMANTIC_TYPE_WEIGHT + SEMANTIC_TYPE_AS_CAPABILITY_WEIGHT
        if capabilities:
            best += SEMANTIC_CAPABILITY_WEIGHT
        return best

"""Per-snapshot precomputation for the strategies (built once per snapshot, then cached).

A :class:`PreparedFleet` hangs off its :class:`FleetSnapshot` instance, so it lives exactly as
long as the snapshot and a new registry version gets a fresh one. It holds Python-list copies of
the static arrays (indexing a list is cheaper than indexing numpy for one element), the
consistent-hash ring, per-capability-set eligibility masks and semantic base scores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TypeRule:
    """Which service types may serve a request of a given type.

    ``accepts`` maps a request type to the service types that serve it; a type not in it is
    served by services of the same ``service_type``. A request without a type may go to any
    service; a request whose type is neither mapped nor any service's type (``unknown``) goes
    to any service when ``unknown == "any"`` and to none when ``"reject"``.
    """

    accepts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    unknown: str = "any"

    def __post_init__(self) -> None:
        if self.unknown not in ("any", "reject"):
            raise ValueError("unknown must be 'any' or 'reject'")

    @classmethod
    def from_mapping(cls, accepts: dict[str, Sequence[str]], unknown: str = "any") -> TypeRule:
        return cls(tuple(sorted((k, tuple(v)) for k, v in accepts.items())), unknown)

    def accepted(self, request_type: str, fleet_types: frozenset[str]) -> frozenset[str] | None:
        """Service types that may serve ``request_type``; None means every type."""
        if not request_type:
            return None
        for key, types in self.accepts:
            if key == request_type:
                return frozenset(types)
        if request_type in fleet_types:
            return frozenset((request_type,))
        return None if self.unknown == "any" else frozenset()


class PreparedFleet:
    def __init__(
        self, snapshot: FleetSnapshot, vnodes: int, type_rule: TypeRule | None = None
    ) -> None:
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
        self.type_rule = type_rule or TypeRule()
        self._type_array = np.array(self.types, dtype=object)
        self._fleet_types = frozenset(self.types)
        self._candidates: dict[tuple[str, tuple[str, ...]], np.ndarray | None] = {}
        self._notes: dict[tuple[str, tuple[str, ...]], str] = {}
        self._candidate_ids: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self.capability_sets = [s.capabilities for s in snapshot.services]
        self._cap_index = {c: j for j, c in enumerate(snapshot.capability_names)}
        self._vnodes = vnodes
        self._ring: HashRing | None = None
        self._static_masks: dict[tuple[str, ...], np.ndarray | None] = {}
        self._semantic: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    @classmethod
    def of(
        cls, snapshot: FleetSnapshot, vnodes: int, type_rule: TypeRule | None = None
    ) -> PreparedFleet:
        return memo(
            snapshot, ("prepared", vnodes, type_rule), lambda: cls(snapshot, vnodes, type_rule)
        )

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

    def type_mask(self, request_type: str) -> np.ndarray | None:
        """Services whose type may serve ``request_type``; None when every type may."""
        accepted = self.type_rule.accepted(request_type, self._fleet_types)
        if accepted is None:
            return None
        return np.array([t in accepted for t in self.types], dtype=bool)

    def candidates(self, request_type: str, capabilities: tuple[str, ...]) -> np.ndarray | None:
        """Routable services that can serve the request: an accepted type and every required
        capability. None when some capability is offered by no service at all."""
        key = (request_type, capabilities)
        mask = self._candidates.get(key, False)
        if mask is not False:
            return mask
        mask = self.static_mask(capabilities)
        if mask is not None:
            types = self.type_mask(request_type)
            if types is not None:
                mask = mask & types
            mask.flags.writeable = False
        if len(self._candidates) < _MAX_CACHED:
            self._candidates[key] = mask
        return mask

    def candidate_count(self, request_type: str, capabilities: tuple[str, ...]) -> int:
        return len(self.candidate_ids(request_type, capabilities))

    def candidate_ids(self, request_type: str, capabilities: tuple[str, ...]) -> tuple[str, ...]:
        """Ids of :meth:`candidates` (cached)."""
        key = (request_type, capabilities)
        ids = self._candidate_ids.get(key)
        if ids is None:
            mask = self.candidates(request_type, capabilities)
            ids = () if mask is None else tuple(self.ids[i] for i in np.flatnonzero(mask))
            if len(self._candidate_ids) < _MAX_CACHED:
                self._candidate_ids[key] = ids
        return ids

    def filter_note(self, request_type: str, capabilities: tuple[str, ...]) -> str:
        """Who the static filters removed, for a decision's reason (cached)."""
        key = (request_type, capabilities)
        note = self._notes.get(key)
        if note is not None:
            return note
        mask = self.candidates(request_type, capabilities)
        n_cand = 0 if mask is None else int(mask.sum())
        # Each filter counts the services it removes of those the ones before it left, so the
        # counts add up to the services that cannot serve it.
        parts = []
        left = np.ones(self.n, dtype=bool)
        types = self.type_mask(request_type)
        if types is not None:
            accepted = self.type_rule.accepted(request_type, self._fleet_types) or frozenset()
            wrong = int((left & ~types).sum())
            left &= types
            if wrong:
                parts.append(f"{wrong} not of type {'/'.join(sorted(accepted)) or 'none'}")
        for cap in capabilities:
            lacks = self.lacking(cap)
            lacking = int((left & lacks).sum())
            left &= ~lacks
            if lacking:
                parts.append(f"{lacking} {'more ' if parts else ''}lack {cap!r}")
        down = int((left & ~self.routable).sum())
        if down:
            parts.append(f"{down} {'more ' if parts else ''}not routable")
        note = f"{n_cand} of {self.n} can serve it" + (f" ({', '.join(parts)})" if parts else "")
        if len(self._notes) < _MAX_CACHED:
            self._notes[key] = note
        return note

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

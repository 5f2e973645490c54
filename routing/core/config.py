"""The engine's configuration: one frozen dataclass handed to the engine and its strategies."""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.core.fleet import TypeRule
from routing.core.gate import GateConfig
from routing.core.learning import LearnerConfig
from routing.core.objective import Objective


@dataclass(frozen=True)
class EngineConfig:
    default_top_k: int = 2
    max_top_k: int = 8
    # Switch capacity factor: a service may take this multiple of its fair share of the load
    # (learned top-1: above it, the best candidate spills to one about as good) ...
    capacity_factor: float = 1.25
    # ... once it holds at least this share of its own capacity: below it the service is not
    # loaded, and spilling would only send requests to a worse service. Without this floor 16
    # concurrent clients on a fleet of 1,000-slot services made the best service spill at 2
    # requests in flight (0.2% of its capacity): phase-3 optimal 97.2% -> 95.6% on the
    # simulation (docs/PERFORMANCE.md, twelfth pass).
    spill_floor: float = 0.5
    # Bounded-load consistent hashing: no service above ceil((1 + eps) * average load).
    hash_eps: float = 0.25
    hash_vnodes: int = 100
    # Seed of the power-of-two RNG; None seeds from the OS.
    p2c_seed: int | None = None
    device: str = "cpu"
    # tda_aware: request anomaly at or above this gets redundancy (k >= 2); services at or
    # above tda_avoid_threshold are avoided while any other is eligible.
    tda_request_threshold: float = 0.5
    tda_avoid_threshold: float = 0.8
    tda_penalty: float = 2.0
    # Panic routing (Envoy's healthy_panic_threshold, at its floor): when every service that
    # can serve a request is shut out by its circuit breaker alone, route among them anyway
    # instead of answering 503: a breaker is a guess from a few failures, and the only
    # services able to serve the request are better than none. False: 503.
    panic_when_all_breakers_open: bool = True
    # Who may serve a request of a given type (see fleet.TypeRule).
    type_rule: TypeRule = field(default_factory=TypeRule)
    # Online learning of the learned strategies, and what they optimise.
    learner_config: LearnerConfig = field(default_factory=LearnerConfig)
    objective: Objective = field(default_factory=Objective)
    # Pause the cyclic garbage collector while a batch is routed (see route_batch).
    pause_gc_in_batches: bool = True
    gate_config: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if self.default_top_k < 1 or self.max_top_k < self.default_top_k:
            raise ValueError("need 1 <= default_top_k <= max_top_k")
        if self.capacity_factor < 1.0:
            raise ValueError("capacity_factor must be >= 1")
        if not 0.0 <= self.spill_floor <= 1.0:
            raise ValueError("spill_floor must be in [0, 1]")
        if self.hash_eps <= 0:
            raise ValueError("hash_eps must be > 0")

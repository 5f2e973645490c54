"""The routing core: pure Python + numpy + torch. No Django, no database, no network.

- ``types``: FleetSnapshot, LiveView, RouteRequest, Decision, the LiveStateStore protocol.
- ``engine``: RoutingEngine (eligibility -> strategy -> Decision, one request or a batch).
- ``strategies``: the seven strategies and their registry (STRATEGIES, get_strategy).
- ``features``: requests -> float32 feature rows; ``gate``: the learned gate and training;
  ``policy``: the adaptive strategy policy and its training.
- ``hashing``: stable hashes, bounded-load consistent hashing; ``balancing``: power of two
  choices and Jain's index; ``anomaly``: outlier scores for tda_aware.
- ``breaker``: the circuit breaker state machine; ``state``: the in-process LiveStateStore.
- ``bench``: ``python -m routing.core.bench`` (see docs/PERFORMANCE.md).
"""

"""The routing core: pure Python + numpy + torch. No Django, no database, no network.

- ``types``: FleetSnapshot, LiveView, RouteRequest, Decision, the LiveStateStore protocol.
- ``engine``: RoutingEngine (eligibility -> strategy -> Decision, one request or a batch).
- ``strategies``: the seven strategies and their registry (STRATEGIES, get_strategy).
- ``objective``: the one objective (reward of an outcome) every learned part optimises.
- ``learning``: the online contextual-bandit learner behind switch_transformer, top_k and
  adaptive (reward estimates per service, request type and complexity; epsilon-greedy
  exploration with logged propensities); ``offpolicy``: IPS/SNIPS/DR evaluation of a policy
  on logged decisions, which decides whether a retrained version goes live.
- ``features``: requests -> float32 feature rows; ``gate``: the torch gate (the prior for
  services without outcomes) and its training; ``context``: the fleet context in history.
- ``hashing``: stable hashes, bounded-load consistent hashing; ``balancing``: power of two
  choices and Jain's index; ``anomaly``: outlier scores for tda_aware.
- ``breaker``: the circuit breaker state machine; ``state``: the in-process LiveStateStore.
"""

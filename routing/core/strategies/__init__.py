"""The seven routing strategies and their registry, one module per strategy.

``STRATEGIES`` maps a name to a strategy class; the engine builds each with a
:class:`~routing.core.strategies.base.StrategyDeps` (its config, RNG and learner), so no
strategy holds the engine and there is no module-level mutable state.
"""

from routing.core.strategies.adaptive import Adaptive
from routing.core.strategies.base import (
    NEG_INF,
    BatchContext,
    Choice,
    RouteContext,
    Strategy,
    StrategyDeps,
    assign_in_order,
    capacity_factor_bound,
)
from routing.core.strategies.consistent_hash import ConsistentHash, routing_key
from routing.core.strategies.learned import SwitchTransformer, TopK
from routing.core.strategies.power_of_two import PowerOfTwo
from routing.core.strategies.semantic import Semantic
from routing.core.strategies.tda_aware import TdaAware

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (SwitchTransformer, TopK, Semantic, TdaAware, ConsistentHash, PowerOfTwo, Adaptive)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``; ValueError naming the valid ones."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown routing strategy {name!r}; valid: {', '.join(STRATEGY_NAMES)}"
        ) from None


__all__ = [
    "NEG_INF",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "Adaptive",
    "BatchContext",
    "Choice",
    "ConsistentHash",
    "PowerOfTwo",
    "RouteContext",
    "Semantic",
    "Strategy",
    "StrategyDeps",
    "SwitchTransformer",
    "TdaAware",
    "TopK",
    "assign_in_order",
    "capacity_factor_bound",
    "get_strategy",
    "routing_key",
]

"""Which operator override applies to a request: pure, so it is testable without a router.

The router loads the active :class:`~routing.models.StrategyOverride` rows into
:class:`ActiveOverride` values with each registry refresh; :func:`resolve_override` picks one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from routing.core.strategies import STRATEGIES

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveOverride:
    id: int
    strategy: str
    scope: str
    request_type: str
    top_k: int | None
    expires_at: float | None  # epoch seconds


def usable(overrides: Iterable[ActiveOverride]) -> tuple[ActiveOverride, ...]:
    """``overrides`` without those naming a strategy this version does not know, with a
    warning each: forms and the API refuse such a strategy, but a row written by SQL or by
    another version may name one, and it would fail every request it covered."""
    out = []
    for o in overrides:
        if o.strategy in STRATEGIES:
            out.append(o)
        else:
            logger.warning(
                "override %s names unknown strategy %r: ignored; end it or fix it in admin",
                o.id,
                o.strategy,
            )
    return tuple(out)


def resolve_override(
    overrides: Sequence[ActiveOverride], request_type: str, now: float
) -> ActiveOverride | None:
    """An unexpired override for this request type if any, else the first unexpired global
    one (the loaded order: newest first), else None."""
    chosen = None
    for o in overrides:
        if o.expires_at is not None and o.expires_at <= now:
            continue
        if o.scope == "request_type" and o.request_type == request_type:
            return o
        if o.scope == "global" and chosen is None:
            chosen = o
    return chosen

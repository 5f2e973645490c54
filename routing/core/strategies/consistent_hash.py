"""consistent_hash: bounded-load consistent hashing on the request key, within the candidates."""

from __future__ import annotations

import math

from routing.core.hashing import key_hash, load_bound, payload_key
from routing.core.strategies.base import Choice, Strategy
from routing.core.types import RouteRequest


def routing_key(request: RouteRequest) -> tuple[str, str]:
    """The string a request is hashed by, and where it came from."""
    if request.key is not None:
        return str(request.key), "key"
    if request.payload is not None:
        return payload_key(request.payload), "payload"
    caps = ",".join(request.capabilities)
    return f"{request.request_type}|{caps}|{' '.join(request.tokens)}", "request"


class ConsistentHash(Strategy):
    name = "consistent_hash"
    description = "bounded-load consistent hashing on the request key"

    _OWN = {src: f"hash of {src}: own ring position" for src in ("key", "payload", "request")}

    def _choice(self, found, source: str, bound: int, fleet) -> Choice:
        service, skipped = found
        if not skipped:
            return Choice([service], [1.0], 1.0, self._OWN[source], self.name)
        reason = (
            f"hash of {source}: {skipped} service(s) ahead on the ring ineligible or at "
            f"the load bound {bound}"
        )
        confidence = 1.0 / (1 + skipped)
        return Choice([service], [confidence], confidence, reason, self.name)

    def route(self, request, ctx):
        fleet, view = ctx.fleet, ctx.view
        key, source = routing_key(request)
        in_flight = view.in_flight
        total = float(in_flight @ ctx.eligible) + 1.0
        bound = load_bound(total, len(ctx.eligible_idx), self.config.hash_eps)
        found = fleet.ring.lookup(key_hash(key), ctx.eligible, in_flight, bound)
        if found is None:  # everyone at the bound is impossible, but never fail on it
            found = fleet.ring.lookup(key_hash(key), ctx.eligible)
        return self._choice(found, source, bound, fleet)

    def route_batch(self, requests, positions, mask, top_k, bctx):
        fleet, load = bctx.fleet, bctx.load
        ring, eps = fleet.ring, self.config.hash_eps
        eligible = mask.tolist()
        loads = load.tolist()
        limits = fleet.capacity_list
        n_elig = sum(eligible)
        total = sum(x for x, e in zip(loads, eligible, strict=True) if e)
        points, owners, start = ring.points, ring.owners, ring.start
        own, name, scale = self._OWN, self.name, (1.0 + eps) / max(n_elig, 1)
        out: list[Choice | None] = []
        for request in requests:
            key, source = routing_key(request)
            h = key_hash(key)
            bound = max(1, math.ceil(scale * (total + 1)))  # hashing.load_bound, inlined
            # Fast path: the key's own service is eligible and under both limits.
            owner = owners[start(h)] if points else -1
            if (
                owner >= 0
                and eligible[owner]
                and loads[owner] < bound
                and loads[owner] < limits[owner]
            ):
                loads[owner] += 1
                total += 1
                out.append(([owner], [1.0], 1.0, own[source], name, 1.0))
                continue
            found = ring.lookup(h, eligible, loads, bound, limits)
            if found is None:
                found = ring.lookup(h, eligible, loads, math.inf, limits)
            if found is None:
                out.append(None)
                continue
            loads[found[0]] += 1
            total += 1
            out.append(self._choice(found, source, bound, fleet))
        load[:] = loads
        return out

"""Stable hashing and bounded-load consistent hashing.

Hashes here are the same in every process and on every run (blake2b, never Python's salted
``hash()``), so a key lands on the same service in every worker.

:class:`HashRing` places ``vnodes`` points per service on a 64-bit ring. A key goes to the
first service clockwise from its hash that is eligible and under the load bound of Mirrokni,
Thorup and Zadimoghaddam ("Consistent Hashing with Bounded Loads", 2018): with ``m`` requests
in flight on ``n`` eligible services (counting the new one), no service may hold more than
``ceil((1 + eps) * m / n)``. The ring is built from every service in the snapshot, eligible or
not, so a service that leaves (or becomes ineligible) only moves its own keys, about 1/N of
them; everyone else's stay put.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a pinned requirement
    orjson = None

_MASK64 = (1 << 64) - 1


def stable_hash64(data: str | bytes) -> int:
    """A 64-bit hash that is identical across processes, runs and machines."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@lru_cache(maxsize=65536)
def key_hash(key: str) -> int:
    """Ring position of a routing key (cached: keys such as user ids repeat a lot)."""
    return stable_hash64(b"key:" + key.encode("utf-8"))


def payload_key(payload: Any) -> str:
    """A stable key for a payload without an explicit key: canonical JSON (sorted keys).

    orjson when installed (it is in requirements.txt; ~10x faster), else the json module with
    identical output for JSON data: same string for the same payload in every process.
    """
    if orjson is not None:
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        except TypeError:
            pass
    try:
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
    except (TypeError, ValueError):
        return repr(payload)


def load_bound(total_load: float, n_eligible: int, eps: float) -> int:
    """Mirrokni et al.'s per-service cap for ``total_load`` requests (the new one included)."""
    if n_eligible <= 0:
        return 0
    return max(1, math.ceil((1.0 + eps) * total_load / n_eligible))


class HashRing:
    """A consistent-hash ring over service indices ``0..n-1`` (snapshot order)."""

    def __init__(self, service_ids: Sequence[str], vnodes: int = 100) -> None:
        points: list[tuple[int, int]] = []
        for index, service_id in enumerate(service_ids):
            for replica in range(vnodes):
                points.append((stable_hash64(f"svc:{service_id}#{replica}"), index))
        points.sort()
        self.n_services = len(service_ids)
        self.points = [p for p, _ in points]
        self.owners = [o for _, o in points]

    def __len__(self) -> int:
        return self.n_services

    def start(self, h: int) -> int:
        """Ring position where the walk for hash ``h`` starts."""
        pos = bisect_left(self.points, h & _MASK64)
        return 0 if pos == len(self.points) else pos

    def preference(self, h: int) -> list[int]:
        """All services in the order a key with hash ``h`` tries them (distinct, clockwise)."""
        seen: set[int] = set()
        order: list[int] = []
        owners = self.owners
        size = len(owners)
        pos = self.start(h) if size else 0
        for step in range(size):
            owner = owners[(pos + step) % size]
            if owner not in seen:
                seen.add(owner)
                order.append(owner)
                if len(order) == self.n_services:
                    break
        return order

    def lookup(
        self,
        h: int,
        eligible: Sequence[bool],
        loads: Sequence[float] | None = None,
        bound: float = math.inf,
        limits: Sequence[float] | None = None,
    ) -> tuple[int, int] | None:
        """First service clockwise from ``h`` that is eligible, holds less than ``bound`` and
        less than its own ``limits`` entry; returns it with the number of distinct services
        skipped on the way (0 = the key's own service), or None when no service qualifies."""
        owners = self.owners
        size = len(owners)
        if not size:
            return None
        pos = self.start(h)
        seen: set[int] = set()
        for step in range(size):
            owner = owners[pos + step - size if pos + step >= size else pos + step]
            if owner in seen:
                continue
            if eligible[owner] and (
                loads is None
                or (loads[owner] < bound and (limits is None or loads[owner] < limits[owner]))
            ):
                return owner, len(seen)
            seen.add(owner)
            if len(seen) == self.n_services:
                break
        return None


def assign_bounded(
    ring: HashRing,
    hashes: Sequence[int],
    eligible: Sequence[bool],
    loads: list[float],
    eps: float,
    limits: Sequence[float] | None = None,
) -> list[int | None]:
    """Assign keys one after another with bounded loads; ``loads`` is updated in place.

    ``limits`` (optional) is a hard per-service ceiling on load, such as max capacity.
    """
    n_eligible = sum(1 for e in eligible if e)
    total = sum(load for load, e in zip(loads, eligible, strict=True) if e)
    out: list[int | None] = []
    for h in hashes:
        found = ring.lookup(h, eligible, loads, load_bound(total + 1, n_eligible, eps), limits)
        if found is None:
            out.append(None)
            continue
        loads[found[0]] += 1
        total += 1
        out.append(found[0])
    return out

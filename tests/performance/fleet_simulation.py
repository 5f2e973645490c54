"""Fleet simulation: how good are the router's decisions, measured through the real HTTP API.

    .venv/bin/python -m tests.performance.fleet_simulation                  # the full run
    .venv/bin/python -m tests.performance.fleet_simulation --quick          # CI smoke (~40 s)
    .venv/bin/python -m tests.performance.fleet_simulation --profiles alt --json report.json
    .venv/bin/python -m tests.performance.fleet_simulation --strategies adaptive,semantic
    .venv/bin/python -m tests.performance.fleet_simulation --trace decisions.jsonl --keep
    make simulate ARGS="--quick"

A simulated fleet with **hidden** per-service profiles (success probability and a lognormal
latency, both functions of the request's complexity, per request type) is registered on a real
server (uvicorn, a throw-away var dir with its own SQLite database; nothing of the caller's
environment leaks in). A seeded workload is routed with ``POST /api/v1/route``; the outcome of
the chosen service is sampled from its hidden profile and reported with
``POST /api/v1/route/<id>/outcome``, so the router learns only from what a real client would
tell it. Each strategy gets a fresh server, so one strategy's outcomes never help another.

Per strategy and phase (requests 1-500, 501-2000, a retrain, 2001-3000 at the default
``--requests 3000``; other counts scale the same way) the report gives:

* ``candidate_rate``: the chosen service can serve the request (type and capabilities), over
  all requests (a 503 or an error counts as a miss);
* ``optimal_rate``: the chosen service is the oracle's (the best expected reward under the
  hidden profile, among services able to serve the request), and ``near_optimal_rate`` (the
  ``~opt`` column): its expected reward is within 0.02 of the oracle's (forgives near-ties);
  ``tied_rate`` (printed under each phase): the share of requests where another able service
  is within 0.02 of the best, whatever was chosen (a property of the fleet, the workload and
  the objective: where it is high, strict optimal rates are low for any router);
* ``success_rate``, ``mean_latency_ms`` (of the sampled outcomes), ``mean_reward`` (the
  objective of :mod:`routing.core.objective`, the same one the server is configured with) and
  ``mean_regret`` (oracle's expected reward minus the chosen service's);
* ``n_503`` (``no_eligible_service``, reward 0) and ``server_errors`` (any other 5xx).

Two client-side baselines run on the same request stream without the server: ``oracle`` and
``random`` (uniform among services able to serve). Then a drift phase (the default learned
strategy, ``adaptive``: the service it chooses most for some type starts failing every call;
its share is followed in 1-second windows), a recovery phase (that service is healthy again:
how soon it gets its share back) and a flood phase (the README's example request
routed N times on the demo fleet without ever reporting an outcome).

Every figure is measured on the client side from what the API answered; ``--trace`` writes
each decision (request, selection, reason, oracle, expected rewards, outcome) as a JSON line,
``--keep`` keeps the server logs. A full run takes about 5-6 minutes on 2 cores.

The hidden profiles live in :data:`PROFILE_SETS` (``--profiles default|alt``): one data
structure per set, so another set can be added without touching the harness.
``--profiles random:N`` draws a fleet from seed N (:func:`random_profile_set`), so the figures
are not only those of profiles written by the people who tuned the learner; ``wide:N`` draws
one with 5-8 able services per request type (more near-ties, less evidence per service).
``--profiles my-fleet.json`` runs a fleet of your own: ``--profiles default --dump-profiles``
prints a set in that file's format to start from (:func:`profile_set_from_dict` checks it
and names a wrong field); the in-process replay (``learner_replay --profiles my-fleet.json``)
takes the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.core.exceptions import ValidationError as DjangoValidationError

from registry import constants as registry_constants
from registry.choices import ServiceType
from registry.validators import validate_capability_name, validate_service_id
from routing.core.objective import Objective
from tests.support.net import free_port
from tests.support.procs import kill_group as _kill_group
from tests.support.stats import percentile

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PYTHON = sys.executable
OPERATOR_USERNAME = "sim-operator"
OPERATOR_PASSWORD = "sim-operator-pass-8316"
# The caller's app settings never reach the servers: each one gets exactly ours.
_SCRUBBED_PREFIXES = ("DATABASE_URL", "REDIS_URL", "CELERY_", "MOE_", "DJANGO_")

LEARNED_STRATEGIES = ("adaptive", "switch_transformer", "top_k")
FIXED_STRATEGIES = ("semantic", "consistent_hash", "power_of_two", "tda_aware")
ALL_STRATEGIES = LEARNED_STRATEGIES + FIXED_STRATEGIES
DRIFT_STRATEGY = "adaptive"
README_EXAMPLE = {"type": "inference", "data": [0.1, 0.2, 0.3], "priority": 0.8, "complexity": 0.5}

# Targets from DESIGN.md ("Figures to reach").
TARGET_CANDIDATE_RATE = 0.995
TARGET_OPTIMAL_RATE = 0.95
TARGET_DRIFT_SECONDS = 10.0
TARGET_DRIFT_SHARE = 0.05
# Realised success within this much of the oracle's (the issue's figure; the oracle maximises
# the objective, so a fleet whose fast, flaky service ties a slow, reliable one in reward can
# miss it at no cost in reward).
TARGET_SUCCESS_GAP = 0.02
# After the drift, the failing service is healthy again: "back" once a 1-s window gives it this
# share of its former share (no target in the issue; reported).
RECOVERED_SHARE = 0.5
# "Near-optimal": the chosen service's expected reward is within this of the oracle's (a
# diagnostic beside the strict optimal-selection rate: it forgives near-ties at crossovers).
NEAR_OPTIMAL_REWARD_GAP = 0.02


# ---------------------------------------------------------------------------------------------
# Hidden profiles
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """How one service does on one request type, as a function of complexity c in [0, 1].

    success(c) = s0 + (s1 - s0) * c ** shape, clipped to [0, 1];
    latency ~ lognormal with median m0 + (m1 - m0) * c and log-sd ``sigma``.
    """

    s0: float
    s1: float
    m0: float
    m1: float
    shape: float = 1.0
    sigma: float = 0.3

    def success(self, c: float) -> float:
        return min(1.0, max(0.0, self.s0 + (self.s1 - self.s0) * c**self.shape))

    def median_ms(self, c: float) -> float:
        return max(0.1, self.m0 + (self.m1 - self.m0) * c)


@dataclass(frozen=True)
class SimService:
    service_id: str
    service_type: str
    capabilities: tuple[str, ...]
    curve: Curve | None  # None: registered, but never able to serve anything requested
    max_capacity: int = 1000

    def can_serve(self, request_type: str, capabilities: tuple[str, ...]) -> bool:
        """The hidden truth: same type, and every required capability offered."""
        return (
            self.curve is not None
            and self.service_type == request_type
            and all(c in self.capabilities for c in capabilities)
        )


@dataclass(frozen=True)
class RequestMix:
    """One request type of the workload: its share, and optional capability requirements."""

    weight: float
    # (probability, capabilities): drawn in order, the first hit applies; else none.
    capabilities: tuple[tuple[float, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ProfileSet:
    name: str
    description: str
    services: tuple[SimService, ...]
    request_types: dict[str, RequestMix]
    key_probability: float = 0.3
    key_space: int = 200


def _svc(sid, stype, caps, curve=None, capacity=1000) -> SimService:
    return SimService(sid, stype, tuple(caps), curve, capacity)


PROFILE_SETS: dict[str, ProfileSet] = {
    "default": ProfileSet(
        name="default",
        description=(
            "inference: small fast model best below c~0.65, large slow one above, a code model "
            "in between for code requests; storage: two stores with equal success, one 5x "
            "faster (plus a dominated archive); analysis: stream analytics best for simple "
            "requests, topological analysis for complex ones and the only one offering tda; "
            "distractors of other types offering look-alike capabilities."
        ),
        services=(
            _svc(
                "llm-small",
                "inference",
                ["text-generation", "chat"],
                Curve(0.99, 0.15, 40, 90, shape=2.5, sigma=0.3),
            ),
            _svc(
                "llm-large",
                "inference",
                ["text-generation", "chat", "code"],
                Curve(0.97, 0.95, 250, 350, sigma=0.25),
            ),
            _svc(
                "llm-code",
                "inference",
                ["text-generation", "code"],
                Curve(0.96, 0.55, 150, 250, shape=1.5, sigma=0.3),
            ),
            _svc("store-fast", "storage", ["storage", "kv"], Curve(0.99, 0.99, 20, 30, sigma=0.2)),
            _svc(
                "store-slow",
                "storage",
                ["storage", "kv", "archival"],
                Curve(0.99, 0.99, 110, 140, sigma=0.2),
            ),
            _svc(
                "store-archive",
                "storage",
                ["storage", "archival"],
                Curve(0.97, 0.96, 400, 600, sigma=0.3),
            ),
            _svc(
                "analytics-stream",
                "analysis",
                ["analysis", "time-series", "aggregation"],
                Curve(0.98, 0.50, 60, 160, shape=1.5, sigma=0.3),
            ),
            _svc(
                "analytics-topo",
                "analysis",
                ["analysis", "tda", "anomaly-detection"],
                Curve(0.92, 0.93, 220, 320, sigma=0.25),
            ),
            _svc("raft-consensus", "consensus", ["consensus", "storage"]),
            _svc("custom-processor", "custom", ["processing", "analysis", "code"]),
        ),
        request_types={
            "inference": RequestMix(0.5, ((0.2, ("code",)),)),
            "storage": RequestMix(0.25, ((0.2, ("archival",)),)),
            "analysis": RequestMix(0.25, ((0.2, ("tda",)), (0.25, ("analysis",)))),
        },
    ),
    "alt": ProfileSet(
        name="alt",
        description=(
            "inference: three models with crossovers near c~0.2 and c~0.7, vision only on the "
            "two larger ones; analysis: two equal-success OLAP engines (the faster has the later "
            "name) and a graph miner for graph requests; learning: a CPU trainer best for small "
            "jobs and a GPU trainer (the only one fine-tuning) for large ones; distractors."
        ),
        services=(
            _svc(
                "tiny-lm",
                "inference",
                ["text-generation"],
                Curve(0.995, 0.15, 15, 40, shape=1.0, sigma=0.3),
            ),
            _svc(
                "mid-lm",
                "inference",
                ["text-generation", "vision"],
                Curve(0.97, 0.40, 120, 200, shape=2.0, sigma=0.25),
            ),
            _svc(
                "xl-lm",
                "inference",
                ["text-generation", "vision"],
                Curve(0.96, 0.95, 350, 420, sigma=0.2),
            ),
            _svc("olap-b", "analysis", ["analysis", "sql"], Curve(0.985, 0.985, 90, 110)),
            _svc("olap-a", "analysis", ["analysis", "sql"], Curve(0.985, 0.985, 30, 45)),
            _svc(
                "graph-miner",
                "analysis",
                ["analysis", "graph"],
                Curve(0.90, 0.80, 200, 500, sigma=0.3),
            ),
            _svc(
                "trainer-gpu",
                "learning",
                ["training", "fine-tuning"],
                Curve(0.80, 0.97, 300, 350, shape=1.0, sigma=0.25),
            ),
            _svc(
                "trainer-cpu",
                "learning",
                ["training"],
                Curve(0.99, 0.30, 80, 900, shape=1.0, sigma=0.3),
            ),
            _svc("blob-store", "storage", ["storage", "training"]),
            _svc("custom-router", "custom", ["analysis", "text-generation", "vision"]),
        ),
        request_types={
            "inference": RequestMix(0.4, ((0.25, ("vision",)),)),
            "analysis": RequestMix(0.3, ((0.2, ("graph",)),)),
            "learning": RequestMix(0.3, ((0.3, ("fine-tuning",)),)),
        },
        key_probability=0.4,
        key_space=500,
    ),
}


# Able services per request type in a ``random:N`` and a ``wide:N`` fleet.
RANDOM_FLEET = (2, 4)
WIDE_FLEET = (5, 8)

# Names for generated fleets: (request type, base capabilities, optional capabilities).
_RANDOM_TYPES = (
    ("inference", ("text-generation",), ("code", "vision", "chat")),
    ("analysis", ("analysis",), ("sql", "graph", "tda")),
    ("storage", ("storage",), ("kv", "archival")),
    ("learning", ("training",), ("fine-tuning", "distributed")),
    ("neuromorphic", ("spiking",), ("event-stream", "plasticity")),
)


def random_profile_set(seed: int, able: tuple[int, int] = RANDOM_FLEET) -> ProfileSet:
    """A seeded random fleet, so decision quality is not judged on hand-made profiles alone.

    2-4 request types; per type ``able`` (2-4; ``wide:N`` fleets 5-8) able services whose
    success and latency curves are drawn at random (so some types have one dominant service,
    others crossovers in complexity), an optional capability that only some of them offer
    (asked for by a share of the requests), and distractors: a service of another type
    offering the same capabilities, and one that never answers anything requested.
    """
    rng = random.Random(seed)
    kinds = rng.sample(_RANDOM_TYPES, rng.randint(2, 4))
    services: list[SimService] = []
    request_types: dict[str, RequestMix] = {}
    for rtype, base, optional in kinds:
        extra = rng.choice(optional)
        n = rng.randint(*able)
        offering = set(rng.sample(range(n), rng.randint(1, n - 1)))
        for i in range(n):
            s0 = rng.uniform(0.8, 0.999)
            curve = Curve(
                s0=s0,
                s1=rng.uniform(0.1, s0) if rng.random() < 0.6 else rng.uniform(s0 - 0.1, 0.999),
                m0=rng.uniform(10, 400),
                m1=rng.uniform(10, 600),
                shape=rng.choice((0.5, 1.0, 1.5, 2.5)),
                sigma=rng.uniform(0.15, 0.35),
            )
            caps = (*base, extra) if i in offering else base
            services.append(_svc(f"{rtype[:4]}-{i}-r{seed}", rtype, caps, curve))
        request_types[rtype] = RequestMix(
            rng.uniform(0.5, 2.0), ((rng.uniform(0.1, 0.3), (extra,)),)
        )
    other = [t for t in _RANDOM_TYPES if t not in kinds]
    decoy_type = other[0][0] if other else "custom"
    decoy_caps = tuple(c for _, base, _ in kinds for c in base)
    services.append(_svc(f"decoy-r{seed}", decoy_type, decoy_caps, Curve(0.99, 0.99, 5, 5)))
    services.append(_svc(f"mute-r{seed}", decoy_type, ("nothing-asked",)))
    total = sum(m.weight for m in request_types.values())
    request_types = {
        t: RequestMix(m.weight / total, m.capabilities) for t, m in request_types.items()
    }
    wide = able == WIDE_FLEET
    return ProfileSet(
        name=f"wide:{seed}" if wide else f"random:{seed}",
        description=f"seeded random {'wide ' if wide else ''}fleet {seed}: "
        + ", ".join(t for t, _, _ in kinds),
        services=tuple(services),
        request_types=request_types,
    )


class ProfileError(ValueError):
    """A profile file that does not describe a fleet; the message names the field."""


_CURVE_FIELDS = ("s0", "s1", "m0", "m1", "shape", "sigma")
_SERVICE_FIELDS = ("service_id", "service_type", "capabilities", "curve", "max_capacity")
_MIX_FIELDS = ("weight", "capabilities")
_SET_FIELDS = ("name", "description", "services", "request_types", "key_probability", "key_space")


def _fields(where: str, value, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ProfileError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(allowed)})")
    for name in required:
        if name not in value:
            raise ProfileError(f"{where}.{name}: required")
    return value


def _number(where: str, value, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ProfileError(f"{where}: expected a number")
    if value < low or value > high or (open_low and value == low):
        bound = "(" if open_low else "["
        raise ProfileError(f"{where}: {value} is outside {bound}{low}, {high}]")
    return float(value)


def _registry_rule(where: str, validator, value: str) -> None:
    """The registry's own rule for a name, checked before any server starts (the simulation
    registers the fleet through the API, which would refuse it mid-run)."""
    try:
        validator(value)
    except DjangoValidationError as exc:
        raise ProfileError(f"{where}: {value!r}: {' '.join(exc.messages)}") from None


def _names(where: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{where}: expected a list of non-empty strings")
    for i, name in enumerate(value):
        _registry_rule(f"{where}[{i}]", validate_capability_name, name)
    return tuple(value)


def _curve_from_dict(where: str, value) -> Curve | None:
    if value is None:
        return None
    d = _fields(where, value, _CURVE_FIELDS, ("s0", "s1", "m0", "m1"))
    return Curve(
        s0=_number(f"{where}.s0", d["s0"], 0.0, 1.0),
        s1=_number(f"{where}.s1", d["s1"], 0.0, 1.0),
        m0=_number(f"{where}.m0", d["m0"], 0.0, 3_600_000.0, open_low=True),
        m1=_number(f"{where}.m1", d["m1"], 0.0, 3_600_000.0, open_low=True),
        shape=_number(f"{where}.shape", d.get("shape", 1.0), 0.0, 100.0, open_low=True),
        sigma=_number(f"{where}.sigma", d.get("sigma", 0.3), 0.0, 5.0, open_low=True),
    )


def profile_set_from_dict(data, *, default_name: str = "file") -> ProfileSet:
    """A profile set from plain data (the JSON of ``--dump-profiles``), checked field by field.

    Raises :class:`ProfileError` naming the first field that is wrong, e.g.
    ``services[2].curve.s0: 1.4 is outside [0.0, 1.0]``.
    """
    d = _fields("profiles", data, _SET_FIELDS, ("services", "request_types"))
    if not isinstance(d["services"], list) or not d["services"]:
        raise ProfileError("profiles.services: expected a non-empty list")
    services = []
    seen: set[str] = set()
    for i, raw in enumerate(d["services"]):
        where = f"services[{i}]"
        s = _fields(where, raw, _SERVICE_FIELDS, ("service_id", "service_type"))
        for name in ("service_id", "service_type"):
            if not isinstance(s[name], str) or not s[name]:
                raise ProfileError(f"{where}.{name}: expected a non-empty string")
        if s["service_type"] not in ServiceType.values:
            raise ProfileError(
                f"{where}.service_type: {s['service_type']!r} is not a service type the "
                f"registry accepts ({', '.join(ServiceType.values)})"
            )
        _registry_rule(f"{where}.service_id", validate_service_id, s["service_id"])
        if s["service_id"] in seen:
            raise ProfileError(f"{where}.service_id: {s['service_id']!r} appears twice")
        seen.add(s["service_id"])
        capacity = s.get("max_capacity", 1000)
        limit = registry_constants.MAX_CAPACITY_LIMIT
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, int)
            or not 1 <= capacity <= limit
        ):
            raise ProfileError(f"{where}.max_capacity: expected an integer in [1, {limit}]")
        if len(s.get("capabilities") or []) > registry_constants.MAX_CAPABILITIES_PER_SERVICE:
            raise ProfileError(
                f"{where}.capabilities: at most "
                f"{registry_constants.MAX_CAPABILITIES_PER_SERVICE} per service"
            )
        services.append(
            SimService(
                s["service_id"],
                s["service_type"],
                _names(f"{where}.capabilities", s.get("capabilities", [])),
                _curve_from_dict(f"{where}.curve", s.get("curve")),
                capacity,
            )
        )
    if not isinstance(d["request_types"], dict) or not d["request_types"]:
        raise ProfileError("profiles.request_types: expected a non-empty object")
    mixes = {}
    for rtype, raw in d["request_types"].items():
        where = f"request_types.{rtype}"
        m = _fields(where, raw, _MIX_FIELDS, ("weight",))
        weight = _number(f"{where}.weight", m["weight"], 0.0, 1e9, open_low=True)
        caps = []
        rules = m.get("capabilities", [])
        if not isinstance(rules, list):
            raise ProfileError(f"{where}.capabilities: expected a list of [probability, [names]]")
        for j, rule in enumerate(rules):
            if not isinstance(rule, list) or len(rule) != 2:
                raise ProfileError(f"{where}.capabilities[{j}]: expected [probability, [names]]")
            caps.append(
                (
                    _number(f"{where}.capabilities[{j}][0]", rule[0], 0.0, 1.0),
                    _names(f"{where}.capabilities[{j}][1]", rule[1]),
                )
            )
        if not any(s.curve is not None and s.service_type == rtype for s in services):
            raise ProfileError(f"{where}: no service with a curve has service_type {rtype!r}")
        mixes[rtype] = RequestMix(weight, tuple(caps))
    name = d.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ProfileError("profiles.name: expected a non-empty string")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise ProfileError("profiles.description: expected a string")
    return ProfileSet(
        name=name,
        description=description,
        services=tuple(services),
        request_types=mixes,
        key_probability=_number(
            "profiles.key_probability", d.get("key_probability", 0.3), 0.0, 1.0
        ),
        key_space=int(_number("profiles.key_space", d.get("key_space", 200), 1, 1e9)),
    )


def profile_set_to_dict(profiles: ProfileSet) -> dict:
    """The plain data of a profile set: what ``--dump-profiles`` prints and a file holds."""
    return {
        "name": profiles.name,
        "description": profiles.description,
        "services": [
            {
                "service_id": s.service_id,
                "service_type": s.service_type,
                "capabilities": list(s.capabilities),
                "curve": None if s.curve is None else asdict(s.curve),
                "max_capacity": s.max_capacity,
            }
            for s in profiles.services
        ],
        "request_types": {
            t: {"weight": m.weight, "capabilities": [[p, list(c)] for p, c in m.capabilities]}
            for t, m in profiles.request_types.items()
        },
        "key_probability": profiles.key_probability,
        "key_space": profiles.key_space,
    }


def profile_set(name: str) -> ProfileSet:
    """A named profile set, ``random:N`` (a seeded random fleet), ``wide:N`` (the same with
    5-8 able services per request type), or a JSON file's path (any name ending in ``.json``:
    the format of ``--dump-profiles``; :class:`ProfileError` names a wrong field)."""
    if name.startswith("random:"):
        return random_profile_set(int(name.split(":", 1)[1]))
    if name.startswith("wide:"):
        return random_profile_set(int(name.split(":", 1)[1]), able=WIDE_FLEET)
    if name.endswith(".json"):
        path = Path(name)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ProfileError(f"{name}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ProfileError(f"{name}: not JSON ({exc})") from None
        try:
            return profile_set_from_dict(data, default_name=path.stem)
        except ProfileError as exc:
            raise ProfileError(f"{name}: {exc}") from None
    return PROFILE_SETS[name]


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class Fleet:
    """The hidden truth about a profile set: who can serve what, expected rewards, outcomes."""

    def __init__(self, profiles: ProfileSet, objective: Objective) -> None:
        self.profiles = profiles
        self.objective = objective
        self.by_id = {s.service_id: s for s in profiles.services}
        self._expected: dict[tuple[str, str, int], float] = {}
        self._oracle: dict[tuple[str, tuple[str, ...], int], tuple[str | None, bool]] = {}

    def capable(self, request_type: str, caps: tuple[str, ...]) -> list[str]:
        return [s.service_id for s in self.profiles.services if s.can_serve(request_type, caps)]

    def expected_reward(self, service_id: str, request_type: str, complexity: float) -> float:
        """Exact E[reward] under the hidden profile, cached per complexity bucket of 0.01."""
        bucket = int(round(complexity * 100))
        key = (service_id, request_type, bucket)
        cached = self._expected.get(key)
        if cached is not None:
            return cached
        svc = self.by_id.get(service_id)
        if svc is None or svc.curve is None or svc.service_type != request_type:
            value = 0.0
        else:
            c = bucket / 100.0
            p = svc.curve.success(c)
            mu = math.log(svc.curve.median_ms(c))
            s = svc.curve.sigma
            obj = self.objective
            if obj.kind == "success_within_slo":
                value = p * _phi((math.log(obj.slo_ms) - mu) / s)
            else:
                # E[max(0, 1 - L / C)] for L ~ lognormal(mu, s), C = latency_cost_ms.
                cost = obj.latency_cost_ms
                a = (math.log(cost) - mu) / s
                value = p * (_phi(a) - math.exp(mu + s * s / 2.0) / cost * _phi(a - s))
        self._expected[key] = value
        return value

    def _ranked(
        self, request_type: str, caps: tuple[str, ...], complexity: float
    ) -> tuple[str | None, bool]:
        """The oracle's service and whether another able one is within
        :data:`NEAR_OPTIMAL_REWARD_GAP` of it, cached per complexity bucket of 0.01."""
        key = (request_type, caps, int(round(complexity * 100)))
        ranked = self._oracle.get(key)
        if ranked is None:
            capable = self.capable(request_type, caps)
            rewards = [self.expected_reward(sid, request_type, complexity) for sid in capable]
            if not rewards:
                ranked = (None, False)
            else:
                best = max(range(len(rewards)), key=rewards.__getitem__)  # the first of equals
                others = rewards[:best] + rewards[best + 1 :]
                tied = bool(others) and rewards[best] - max(others) <= NEAR_OPTIMAL_REWARD_GAP
                ranked = (capable[best], tied)
            self._oracle[key] = ranked
        return ranked

    def oracle(self, request_type: str, caps: tuple[str, ...], complexity: float) -> str | None:
        return self._ranked(request_type, caps, complexity)[0]

    def tied(self, request_type: str, caps: tuple[str, ...], complexity: float) -> bool:
        """Another able service's expected reward is within :data:`NEAR_OPTIMAL_REWARD_GAP` of
        the oracle's: a near-tie, which a strict optimal rate counts as a miss either way."""
        return self._ranked(request_type, caps, complexity)[1]

    def sample(
        self,
        service_id: str,
        request_type: str,
        caps: tuple[str, ...],
        complexity: float,
        rng: random.Random,
        failing: frozenset[str] = frozenset(),
    ) -> tuple[bool, float, int]:
        """(success, latency_ms, status_code) of one call to ``service_id``."""
        svc = self.by_id.get(service_id)
        if service_id in failing:
            return False, round(rng.uniform(2.0, 8.0), 3), 503
        if svc is None or not svc.can_serve(request_type, caps):
            return False, round(rng.uniform(2.0, 10.0), 3), 400
        curve = svc.curve
        latency = rng.lognormvariate(math.log(curve.median_ms(complexity)), curve.sigma)
        ok = rng.random() < curve.success(complexity)
        return ok, round(latency, 3), 200 if ok else 500


# ---------------------------------------------------------------------------------------------
# Workload
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimRequest:
    index: int
    request_type: str
    complexity: float
    priority: float
    capabilities: tuple[str, ...]
    key: str | None

    def body(self) -> dict:
        data: dict = {
            "type": self.request_type,
            "data": [round(self.complexity, 2), round(self.priority, 2), self.index % 7],
            "priority": self.priority,
            "complexity": self.complexity,
        }
        if self.capabilities:
            data["capabilities"] = list(self.capabilities)
        if self.key is not None:
            data["key"] = self.key
        return data


class Workload:
    """A seeded, endless request stream (the same for every strategy)."""

    def __init__(self, profiles: ProfileSet, seed: int) -> None:
        self.profiles = profiles
        self.rng = random.Random(seed)
        self.types = list(profiles.request_types)
        self.weights = [profiles.request_types[t].weight for t in self.types]
        self.count = 0

    def next(self) -> SimRequest:
        rng = self.rng
        rtype = rng.choices(self.types, self.weights)[0]
        caps: tuple[str, ...] = ()
        for prob, wanted in self.profiles.request_types[rtype].capabilities:
            if rng.random() < prob:
                caps = wanted
                break
        key = None
        if rng.random() < self.profiles.key_probability:
            key = f"user-{rng.randrange(self.profiles.key_space)}"
        req = SimRequest(
            index=self.count,
            request_type=rtype,
            complexity=round(rng.random(), 3),
            priority=round(rng.random(), 3),
            capabilities=caps,
            key=key,
        )
        self.count += 1
        return req

    def take(self, n: int) -> list[SimRequest]:
        return [self.next() for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Per-phase statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class PhaseStats:
    """Counters for one (strategy, phase); ``summary()`` turns them into the report's figures."""

    requests: int = 0
    routed: int = 0
    candidate: int = 0
    optimal: int = 0
    near_optimal: int = 0
    tied: int = 0  # requests with a near-tie (Fleet.tied), whatever was chosen
    successes: int = 0
    outcomes: int = 0
    latency_sum: float = 0.0
    reward_sum: float = 0.0
    regret_sum: float = 0.0
    n_503: int = 0
    server_errors: int = 0
    client_errors: int = 0
    transport_errors: int = 0
    outcome_errors: int = 0
    route_ms: list[float] = field(default_factory=list)
    concrete: Counter = field(default_factory=Counter)
    chosen_by_type: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # ... counting only requests that more than one service can serve (the drift phase's
    # measure: a request only the failing service can serve goes there whatever the router
    # knows, or is refused).
    avoidable_by_type: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    error_samples: list[str] = field(default_factory=list)

    def note_error(self, text: str) -> None:
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])

    def merge(self, other: PhaseStats) -> None:
        """Add ``other``'s counts (one concurrent client's share of a phase) to these."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if name == "error_samples":
                for text in value:
                    self.note_error(text)
            elif name == "by_type":
                for t, row in value.items():
                    self.by_type[t] = [a + b for a, b in zip(self.by_type[t], row, strict=True)]
            elif isinstance(value, Counter):
                mine.update(value)
            elif isinstance(value, dict):
                for key, counts in value.items():
                    mine[key].update(counts)
            elif isinstance(value, list):
                mine.extend(value)
            else:
                setattr(self, name, mine + value)

    def add(
        self,
        fleet: Fleet,
        req: SimRequest,
        chosen: str | None,
        outcome: tuple[bool, float, int] | None,
    ) -> None:
        self.requests += 1
        oracle = fleet.oracle(req.request_type, req.capabilities, req.complexity)
        self.tied += fleet.tied(req.request_type, req.capabilities, req.complexity)
        best = fleet.expected_reward(oracle, req.request_type, req.complexity) if oracle else 0.0
        row = self.by_type[req.request_type]
        row[0] += 1
        if chosen is None:
            self.regret_sum += best
            return
        self.routed += 1
        self.chosen_by_type[req.request_type][chosen] += 1
        if avoidable(fleet, req):
            self.avoidable_by_type[req.request_type][chosen] += 1
        capable = fleet.by_id.get(chosen) is not None and fleet.by_id[chosen].can_serve(
            req.request_type, req.capabilities
        )
        got = fleet.expected_reward(chosen, req.request_type, req.complexity) if capable else 0.0
        self.regret_sum += best - got
        if capable:
            self.candidate += 1
            row[1] += 1
        if chosen == oracle:
            self.optimal += 1
            row[2] += 1
        if capable and best - got <= NEAR_OPTIMAL_REWARD_GAP:
            self.near_optimal += 1
        if outcome is not None:
            ok, latency, _status = outcome
            self.outcomes += 1
            self.successes += ok
            self.latency_sum += latency
            self.reward_sum += fleet.objective.reward(ok, latency)

    def summary(self) -> dict:
        n = self.requests or 1
        out = {
            "requests": self.requests,
            "routed": self.routed,
            "candidate_rate": round(self.candidate / n, 4),
            "optimal_rate": round(self.optimal / n, 4),
            "near_optimal_rate": round(self.near_optimal / n, 4),
            "tied_rate": round(self.tied / n, 4),
            "success_rate": round(self.successes / n, 4),
            "mean_latency_ms": round(self.latency_sum / self.outcomes, 2)
            if self.outcomes
            else None,
            "mean_reward": round(self.reward_sum / n, 4),
            "mean_regret": round(self.regret_sum / n, 4),
            "n_503": self.n_503,
            "server_errors": self.server_errors,
            "client_errors": self.client_errors,
            "transport_errors": self.transport_errors,
            "outcome_errors": self.outcome_errors,
            "by_type": {
                t: {
                    "requests": r[0],
                    "candidate_rate": round(r[1] / r[0], 4) if r[0] else None,
                    "optimal_rate": round(r[2] / r[0], 4) if r[0] else None,
                }
                for t, r in sorted(self.by_type.items())
            },
            "chosen_by_type": {
                t: dict(c.most_common()) for t, c in sorted(self.chosen_by_type.items())
            },
        }
        if self.route_ms:
            ms = sorted(self.route_ms)
            out["http_route_ms_p50"] = round(percentile(ms, 50), 3)
            out["http_route_ms_p99"] = round(percentile(ms, 99), 3)
        if self.concrete:
            out["concrete_strategies"] = dict(self.concrete.most_common())
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class SimulationError(RuntimeError):
    pass


class Environment:
    """Makes fresh var dirs (copies of one migrated template) and the env of their processes."""

    def __init__(
        self, workdir: Path, objective: Objective, redis_url: str | None, routing_seed: int = 0
    ) -> None:
        self.workdir = workdir
        self.objective = objective
        self.redis_url = redis_url
        self.template = workdir / "template"
        self._count = 0
        self.routing_seed = routing_seed

    def env_for(self, var_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "moe_project.settings",
                "DJANGO_DEBUG": "false",
                "MOE_VAR_DIR": str(var_dir),
                "MOE_RATE_LIMIT": "10000000/min",
                "MOE_OBJECTIVE": self.objective.kind,
                "MOE_LATENCY_COST_MS": repr(float(self.objective.latency_cost_ms)),
                "MOE_LATENCY_SLO_MS": repr(float(self.objective.slo_ms)),
                "MOE_LOG_LEVEL": "WARNING",
                # Exploration draws repeat with the workload's seed (--seed).
                "MOE_ROUTING_SEED": str(self.routing_seed),
                # Two cores shared by the server, the client and maybe a Celery worker.
                "OMP_NUM_THREADS": "1",
            }
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def manage(self, var_dir: Path, args: list[str], timeout: float = 300) -> str:
        proc = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env_for(var_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SimulationError(
                f"manage.py {' '.join(args[:1])} failed ({proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}"
            )
        return proc.stdout

    def prepare_template(self) -> None:
        """migrate + an operator (staff and the operators group), once; copied per server."""
        self.template.mkdir(parents=True)
        script = (
            "from django.core.management import call_command\n"
            "call_command('migrate', interactive=False, verbosity=0)\n"
            "from django.contrib.auth import get_user_model\n"
            "from registry.permissions import ensure_operator_group\n"
            f"u = get_user_model().objects.create_user({OPERATOR_USERNAME!r}, "
            f"password={OPERATOR_PASSWORD!r}, is_staff=True)\n"
            "u.groups.add(ensure_operator_group())\n"
            "print('SIM_SETUP_OK')\n"
        )
        out = self.manage(self.template, ["shell", "-c", script])
        if "SIM_SETUP_OK" not in out:
            raise SimulationError(f"setup did not finish:\n{out[-2000:]}")

    def fresh_var_dir(self, label: str) -> Path:
        self._count += 1
        var_dir = self.workdir / f"{self._count:02d}-{label}"
        var_dir.mkdir(parents=True)
        for item in self.template.iterdir():
            if item.is_file() and (item.name.startswith("db.sqlite3") or item.name == "secret_key"):
                shutil.copy2(item, var_dir / item.name)
        self.flush_redis()
        return var_dir

    def flush_redis(self) -> None:
        if self.redis_url:
            import redis

            redis.Redis.from_url(self.redis_url, socket_timeout=5).flushdb()


class Server:
    """uvicorn on a free port of 127.0.0.1 in its own process group (+ a Celery worker on
    demand), with a keep-alive client holding the operator's JWT."""

    def __init__(self, env: Environment, var_dir: Path, label: str, workers: int = 1) -> None:
        self.environment = env
        self.workers = workers
        self.var_dir = var_dir
        self.label = label
        self.env = env.env_for(var_dir)
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.client: httpx.Client | None = None
        self.log_path = var_dir / "server.log"
        self.health_status: int | None = None

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        cmd = [
            PYTHON,
            "-m",
            "uvicorn",
            "moe_project.asgi:application",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--lifespan",
            "off",
            "--no-access-log",
        ]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.client = httpx.Client(base_url=self.base_url, timeout=60.0)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SimulationError(f"[{self.label}] server exited:\n{self.log_tail()}")
            try:
                resp = self.client.get("/api/v1/health", timeout=5.0)
                self.health_status = resp.status_code
                break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SimulationError(f"[{self.label}] not ready in {timeout:.0f} s")
            time.sleep(0.2)
        resp = self.client.post(
            "/api/v1/auth/token/",
            json={"username": OPERATOR_USERNAME, "password": OPERATOR_PASSWORD},
        )
        if resp.status_code != 200:
            raise SimulationError(f"[{self.label}] token: {resp.status_code} {resp.text[:300]}")
        self.client.headers["Authorization"] = f"Bearer {resp.json()['access']}"

    def start_worker(self) -> None:
        """A Celery worker (no beat) for jobs queued through the API; idempotent."""
        if self.worker is not None:
            return
        log = open(self.var_dir / "celery.log", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            self.worker = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "moe_project",
                    "worker",
                    "--pool",
                    "solo",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        # The worker holds nothing we need (its job is done): do not wait for a warm shutdown.
        for proc, grace in ((self.worker, 3.0), (self.proc, 10.0)):
            if proc is not None:
                _kill_group(proc, timeout=grace)
        self.worker = self.proc = None

    # -- API ----------------------------------------------------------------------------------

    def register_fleet(self, services: tuple[SimService, ...]) -> None:
        for n, svc in enumerate(services):
            body = {
                "service_id": svc.service_id,
                "service_type": svc.service_type,
                "endpoint": f"http://{HOST}:{19100 + n}",
                "capabilities": list(svc.capabilities),
                "max_capacity": svc.max_capacity,
            }
            resp = self.client.post("/api/v1/services/register", json=body)
            if resp.status_code not in (200, 201):
                raise SimulationError(
                    f"[{self.label}] register {svc.service_id}: {resp.status_code} "
                    f"{resp.text[:300]}"
                )

    def retrain(self, timeout: float = 300.0) -> dict:
        """Flush history, then retrain through the API (Celery), else ``manage.py retrain_gate``.

        Returns what happened; never raises for a missing endpoint or command.
        """
        started = time.monotonic()
        info: dict = {}
        try:
            self.environment.manage(self.var_dir, ["flush_history"], timeout=120)
            info["history_flushed"] = True
        except SimulationError as exc:
            info["history_flushed"] = False
            info["flush_error"] = str(exc)[-500:]
        resp = self.client.post("/api/v1/gate/retrain", json={})
        info["endpoint_status"] = resp.status_code
        if resp.status_code in (404, 405):
            info.update(self._retrain_command())
        elif resp.status_code >= 400:
            info["mode"] = "api"
            info["state"] = "REFUSED"
            info["error"] = resp.text[:500]
        else:
            info["mode"] = "api"
            body = _json(resp)
            task_id = body.get("task_id")
            if not task_id:  # ran synchronously
                info["state"] = body.get("state", "SUCCESS")
                info["result"] = body
            else:
                self.start_worker()
                info.update(self._poll_task(task_id, timeout))
        info["seconds"] = round(time.monotonic() - started, 2)
        with contextlib.suppress(Exception):
            versions = _json(self.client.get("/api/v1/gate/versions", params={"limit": 5}))
            active = [v for v in versions.get("results", []) if v.get("active")]
            info["active_version"] = active[0].get("version") if active else None
        with contextlib.suppress(Exception):
            metrics = _json(self.client.get("/api/v1/metrics"))
            info["server_gate_version"] = metrics.get("gate_version")
        return info

    def _poll_task(self, task_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            resp = self.client.get(f"/api/v1/gate/retrain/{task_id}")
            body = _json(resp)
            state = body.get("state")
            if resp.status_code >= 400 or state in ("SUCCESS", "FAILURE", "REVOKED"):
                return {"task_id": task_id, "state": state, "status": resp.status_code, **body}
            time.sleep(0.5)
        return {"task_id": task_id, "state": "TIMEOUT", "last": body}

    def _retrain_command(self) -> dict:
        proc = subprocess.run(
            [PYTHON, "manage.py", "retrain_gate"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 and "Unknown command" in text:
            print("retrain: not available", flush=True)
            return {"mode": "none", "state": "not available"}
        return {
            "mode": "command",
            "state": "SUCCESS" if proc.returncode == 0 else "FAILURE",
            "output": text.strip()[-800:],
        }


def _json(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ---------------------------------------------------------------------------------------------
# Driving requests
# ---------------------------------------------------------------------------------------------


class Driver:
    """Routes requests through one server and reports sampled outcomes."""

    def __init__(self, server: Server, fleet: Fleet, strategy: str, seed: int) -> None:
        self.server = server
        self.fleet = fleet
        self.strategy = strategy
        self.rng = random.Random(seed)
        self.failing: frozenset[str] = frozenset()
        self._all_stats: list[PhaseStats] = []
        self.trace = None  # an open text file: one JSON line per request (--trace)
        self.phase = ""
        self.seed = seed
        self._lock = threading.Lock()

    def server_errors_seen(self) -> int:
        return sum(s.server_errors for s in self._all_stats)

    def _register(self, stats: PhaseStats) -> None:
        if not self._all_stats or self._all_stats[-1] is not stats:
            self._all_stats.append(stats)

    def one(self, req: SimRequest, stats: PhaseStats) -> str | None:
        """Route ``req``, report its outcome; returns the chosen service (None if not routed)."""
        self._register(stats)
        status, payload, chosen, outcome = self._one(req, stats)
        if self.trace is not None:
            self._trace(req, status, payload, chosen, outcome)
        return chosen

    def many(self, requests: list[SimRequest], stats: PhaseStats, clients: int) -> None:
        """``requests`` from ``clients`` concurrent clients, each with its own connection,
        taking the next request as soon as its last outcome is reported: a decision is made
        while up to ``clients - 1`` other decisions await their outcomes. Each client's counts
        go into ``stats`` at the end."""
        if clients <= 1:
            for req in requests:
                self.one(req, stats)
            return
        queue = iter(requests)
        server = self.server
        self._register(stats)

        def work(n: int) -> PhaseStats:
            own = PhaseStats()
            rng = random.Random(self.seed * 7919 + n)
            with httpx.Client(
                base_url=server.base_url, timeout=60.0, headers=dict(server.client.headers)
            ) as client:
                while True:
                    with self._lock:
                        req = next(queue, None)
                    if req is None:
                        return own
                    status, payload, chosen, outcome = self._one(req, own, client, rng)
                    if self.trace is not None:
                        with self._lock:
                            self._trace(req, status, payload, chosen, outcome)

        with ThreadPoolExecutor(clients) as pool:
            parts = list(pool.map(work, range(clients)))
        for part in parts:
            stats.merge(part)

    def _trace(self, req: SimRequest, status, payload: dict, chosen, outcome) -> None:
        fleet = self.fleet
        oracle = fleet.oracle(req.request_type, req.capabilities, req.complexity)
        line = {
            "strategy": self.strategy,
            "phase": self.phase,
            "i": req.index,
            "type": req.request_type,
            "complexity": req.complexity,
            "capabilities": list(req.capabilities),
            "key": req.key,
            "status": status,
            "selected": payload.get("selected_services"),
            "concrete": payload.get("routing_strategy"),
            "confidence": payload.get("confidence"),
            "reason": payload.get("reason"),
            "chosen": chosen,
            "oracle": oracle,
            "expected_chosen": round(
                fleet.expected_reward(chosen, req.request_type, req.complexity), 4
            )
            if chosen
            else None,
            "expected_oracle": round(
                fleet.expected_reward(oracle, req.request_type, req.complexity), 4
            )
            if oracle
            else None,
            "success": outcome[0] if outcome else None,
            "latency_ms": outcome[1] if outcome else None,
            "failing": sorted(self.failing) or None,
        }
        self.trace.write(json.dumps(line) + "\n")

    def _one(self, req: SimRequest, stats: PhaseStats, client=None, rng=None) -> tuple:
        """(HTTP status, route response body, chosen service, sampled outcome)."""
        client = client or self.server.client
        body = {"data": req.body(), "routing_strategy": self.strategy}
        t0 = time.perf_counter()
        try:
            resp = client.post("/api/v1/route", json=body)
        except httpx.TransportError as exc:
            stats.transport_errors += 1
            stats.note_error(f"route transport: {exc!r}")
            stats.add(self.fleet, req, None, None)
            return None, {}, None, None
        stats.route_ms.append((time.perf_counter() - t0) * 1000.0)
        status = resp.status_code
        if status != 200:
            payload = _json(resp)
            code = (payload.get("error") or {}).get("code")
            if status == 503 and code == "no_eligible_service":
                stats.n_503 += 1
            elif status >= 500:
                stats.server_errors += 1
                stats.note_error(f"route {status}: {resp.text[:200]}")
            else:
                stats.client_errors += 1
                stats.note_error(f"route {status}: {resp.text[:200]}")
            stats.add(self.fleet, req, None, None)
            return status, payload, None, None
        payload = _json(resp)
        selected = payload.get("selected_services") or []
        if not selected:
            stats.server_errors += 1
            stats.note_error(f"route 200 without selected_services: {resp.text[:200]}")
            stats.add(self.fleet, req, None, None)
            return status, payload, None, None
        chosen = selected[0]
        stats.concrete[payload.get("routing_strategy", "?")] += 1
        ok, latency, code = self.fleet.sample(
            chosen,
            req.request_type,
            req.capabilities,
            req.complexity,
            rng or self.rng,
            self.failing,
        )
        try:
            out = client.post(
                f"/api/v1/route/{payload['request_id']}/outcome",
                json={
                    "service_id": chosen,
                    "success": ok,
                    "latency_ms": latency,
                    "status_code": code,
                },
            )
            if out.status_code != 200:
                if out.status_code >= 500:
                    stats.server_errors += 1
                else:
                    stats.outcome_errors += 1
                stats.note_error(f"outcome {out.status_code}: {out.text[:200]}")
        except httpx.TransportError as exc:
            stats.transport_errors += 1
            stats.note_error(f"outcome transport: {exc!r}")
        stats.add(self.fleet, req, chosen, (ok, latency, code))
        return status, payload, chosen, (ok, latency, code)


def phase_bounds(total: int) -> list[tuple[str, int, int]]:
    """(name, start, end) of the three request phases: 1/6, 1/2, 1/3 of ``total``."""
    first = max(1, round(total / 6))
    second = max(first + 1, round(total * 2 / 3))
    return [
        (f"p1_requests_1_{first}", 0, first),
        (f"p2_requests_{first + 1}_{second}", first, second),
        (f"p3_requests_{second + 1}_{total}", second, total),
    ]


def run_strategy(
    env: Environment,
    fleet: Fleet,
    strategy: str,
    requests: list[SimRequest],
    args: argparse.Namespace,
    drift_workload: Workload | None,
) -> dict:
    var_dir = env.fresh_var_dir(strategy)
    result: dict = {"strategy": strategy, "phases": {}}
    started = time.monotonic()
    with Server(env, var_dir, strategy, workers=args.workers) as server:
        result["health_status_at_start"] = server.health_status
        server.register_fleet(fleet.profiles.services)
        driver = Driver(server, fleet, strategy, seed=args.seed * 1000 + 17)
        driver.trace = args.trace_file
        bounds = phase_bounds(len(requests))
        last_stats = None
        for i, (name, lo, hi) in enumerate(bounds):
            if i == 2:
                _progress(f"[{strategy}] retrain")
                info = server.retrain(timeout=args.retrain_timeout)
                result["phases"]["retrain"] = info
                _progress(f"[{strategy}] retrain: {_retrain_line(info)}")
            stats = PhaseStats()
            driver.phase = name
            t0 = time.monotonic()
            driver.many(requests[lo:hi], stats, args.clients)
            summary = stats.summary()
            summary["seconds"] = round(time.monotonic() - t0, 2)
            result["phases"][name] = summary
            last_stats = stats
            _progress(f"[{strategy}] {name}: {_phase_line(summary)}")
            if server.proc.poll() is not None:
                raise SimulationError(f"[{strategy}] server died:\n{server.log_tail()}")
        if drift_workload is not None and last_stats is not None:
            result["drift"] = run_drift(driver, fleet, last_stats, drift_workload, args)
        if driver.server_errors_seen():
            result["server_log_tail"] = server.log_tail()
    result["seconds"] = round(time.monotonic() - started, 1)
    if not args.keep:
        shutil.rmtree(var_dir, ignore_errors=True)
    return result


def avoidable(fleet: Fleet, req: SimRequest) -> bool:
    """More than one service can serve ``req``."""
    return len(fleet.capable(req.request_type, req.capabilities)) > 1


def run_drift(driver: Driver, fleet: Fleet, before: PhaseStats, workload: Workload, args) -> dict:
    """The most-chosen (type, service) of the last phase starts failing every call. Shares
    count the requests of that type that more than one service can serve: one that only the
    failing service can serve goes there (or is refused) whatever the router has learned."""
    best = None
    for rtype, counter in before.avoidable_by_type.items():
        for sid, count in counter.items():
            if best is None or count > best[2]:
                best = (rtype, sid, count)
    if best is None:
        return {"skipped": "nothing was routed before the drift"}
    rtype, victim, count = best
    type_total = sum(before.avoidable_by_type[rtype].values())
    former_share = count / type_total
    _progress(
        f"[drift] {victim} (chosen for {former_share:.1%} of the {rtype} requests another "
        "service can also serve) now fails "
        f"every call; routing for {args.drift_seconds:g} s"
    )
    driver.failing = frozenset({victim})
    driver.phase = "drift"
    stats = PhaseStats()
    windows = _share_windows(driver, fleet, workload, stats, rtype, victim, former_share,
                             args.drift_seconds)  # fmt: skip
    driver.failing = frozenset()
    recovery = None
    if args.recovery_seconds > 0:
        _progress(f"[recovery] {victim} is healthy again; routing for {args.recovery_seconds:g} s")
        driver.phase = "recovery"
        r_stats = PhaseStats()
        r_windows = _share_windows(driver, fleet, workload, r_stats, rtype, victim,
                                   former_share, args.recovery_seconds)  # fmt: skip
        back = next(
            (
                w["t_end_s"]
                for w in r_windows
                if w["relative_share"] is not None and w["relative_share"] >= RECOVERED_SHARE
            ),
            None,
        )
        summary = r_stats.summary()
        recovery = {
            "seconds": args.recovery_seconds,
            "windows": r_windows,
            "back_s": back,
            "requests_until_back": (
                sum(w["requests"] for w in r_windows if w["t_end_s"] <= back)
                if back is not None
                else None
            ),
            "summary": {k: v for k, v in summary.items() if k not in ("by_type",)},
        }
    first_below = sustained = None
    for i, w in enumerate(windows):
        rel = w["relative_share"]
        if rel is not None and rel < TARGET_DRIFT_SHARE and first_below is None:
            first_below = w["t_end_s"]
        if all(
            x["relative_share"] is not None and x["relative_share"] < TARGET_DRIFT_SHARE
            for x in windows[i:]
        ):
            sustained = w["t_end_s"]
            break
    summary = stats.summary()
    return {
        "strategy": driver.strategy,
        "request_type": rtype,
        "failing_service": victim,
        "former_share": round(former_share, 4),
        "seconds": args.drift_seconds,
        "windows": windows,
        "first_below_5pct_s": first_below,
        "sustained_below_5pct_s": sustained,
        "target_s": TARGET_DRIFT_SECONDS,
        "met": sustained is not None and sustained <= TARGET_DRIFT_SECONDS,
        "summary": {k: v for k, v in summary.items() if k not in ("by_type",)},
        "recovery": recovery,
    }


def _share_windows(
    driver: Driver,
    fleet: Fleet,
    workload: Workload,
    stats: PhaseStats,
    rtype: str,
    victim: str,
    former_share: float,
    seconds: float,
) -> list[dict]:
    """Route for ``seconds``; per 1-s window, how many of the ``rtype`` requests another
    service can also serve went to ``victim``, and that share relative to ``former_share``."""
    windows = []
    start = time.monotonic()
    end = start + seconds
    w_end = start + 1.0
    w_type = w_victim = w_all = 0
    while True:
        now = time.monotonic()
        if now >= w_end:
            share = w_victim / w_type if w_type else None
            windows.append(
                {
                    "t_end_s": round(w_end - start, 1),
                    "requests": w_all,
                    "type_requests": w_type,
                    "victim_picks": w_victim,
                    "share": round(share, 4) if share is not None else None,
                    "relative_share": round(share / former_share, 4) if share is not None else None,
                }
            )
            w_type = w_victim = w_all = 0
            w_end += 1.0
            if w_end > end + 1e-9:
                break
        req = workload.next()
        chosen = driver.one(req, stats)
        w_all += 1
        if req.request_type == rtype and avoidable(fleet, req):
            w_type += 1
            w_victim += chosen == victim
    return windows


def run_baselines(fleet: Fleet, requests: list[SimRequest], seed: int) -> dict:
    """``oracle`` and ``random`` (uniform among services able to serve) on the same stream."""
    out = {}
    for name in ("oracle", "random"):
        pick_rng = random.Random(seed * 1000 + 3)
        outcome_rng = random.Random(seed * 1000 + 17)
        phases = {}
        for pname, lo, hi in phase_bounds(len(requests)):
            stats = PhaseStats()
            for req in requests[lo:hi]:
                if name == "oracle":
                    chosen = fleet.oracle(req.request_type, req.capabilities, req.complexity)
                else:
                    capable = fleet.capable(req.request_type, req.capabilities)
                    chosen = pick_rng.choice(capable) if capable else None
                outcome = None
                if chosen is not None:
                    outcome = fleet.sample(
                        chosen, req.request_type, req.capabilities, req.complexity, outcome_rng
                    )
                stats.add(fleet, req, chosen, outcome)
            phases[pname] = stats.summary()
        out[name] = {"strategy": name, "phases": phases}
    return out


def run_flood(env: Environment, n: int) -> dict:
    """The README's example, ``n`` times on the demo fleet, one client, no outcomes."""
    var_dir = env.fresh_var_dir("flood")
    env.manage(var_dir, ["seed_demo_fleet"])
    statuses: Counter = Counter()
    codes: Counter = Counter()
    samples: list[str] = []
    with Server(env, var_dir, "flood") as server:
        body = {"data": README_EXAMPLE}
        client = server.client
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                resp = client.post("/api/v1/route", json=body)
            except httpx.TransportError as exc:
                statuses["transport_error"] += 1
                if len(samples) < 5:
                    samples.append(repr(exc))
                continue
            statuses[str(resp.status_code)] += 1
            if resp.status_code != 200:
                codes[(_json(resp).get("error") or {}).get("code") or "?"] += 1
                if len(samples) < 5:
                    samples.append(f"{resp.status_code}: {resp.text[:200]}")
        elapsed = time.perf_counter() - t0
        log_tail = server.log_tail() if any(k[0] == "5" and k != "503" for k in statuses) else None
    n5xx = sum(v for k, v in statuses.items() if k.isdigit() and int(k) >= 500)
    n503 = statuses.get("503", 0)
    return {
        "requests": n,
        "status_counts": dict(statuses),
        "error_codes": dict(codes),
        "n_200": statuses.get("200", 0),
        "n_503": n503,
        "n_5xx_other": n5xx - n503,
        "requests_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
        "seconds": round(elapsed, 2),
        "met": statuses.get("200", 0) == n,
        "error_samples": samples,
        "server_log_tail": log_tail,
    }


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def _progress(msg: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def _phase_line(s: dict) -> str:
    return (
        f"cand {s['candidate_rate']:.3f} opt {s['optimal_rate']:.3f} "
        f"succ {s['success_rate']:.3f} reward {s['mean_reward']:.3f} "
        f"503 {s['n_503']} 5xx {s['server_errors']}"
    )


def _retrain_line(info: dict) -> str:
    parts = [f"mode={info.get('mode')}", f"state={info.get('state')}"]
    result = info.get("result") if isinstance(info.get("result"), dict) else {}
    for key in ("trained", "activated", "examples"):
        if key in result:
            parts.append(f"{key}={result[key]}")
    for key in ("active_version", "server_gate_version"):
        if key in info:
            parts.append(f"{key}={info[key]}")
    parts.append(f"{info.get('seconds', 0)} s")
    if result.get("reason"):
        parts.append(f"({str(result['reason'])[:160]})")
    return " ".join(parts)


def _fmt(v, pct=False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{v * 100:6.1f}%"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def issue_figures(report: dict) -> list[dict]:
    """The decision-quality figures this simulation exists to measure, each with its target
    and whether this run met it: ``{"figure", "value", "target", "met", "context"}``."""
    figures: list[dict] = []
    last = report["phases"][-1]
    oracle = report["baselines"].get("oracle", {}).get("phases", {}).get(last, {})
    cand = report["totals"]["min_candidate_rate"]
    if cand:
        worst = min(cand, key=cand.get)
        figures.append(
            {
                "figure": "candidate rate, every strategy, every phase",
                "value": cand[worst],
                "unit": "rate",
                "target": f">= {TARGET_CANDIDATE_RATE:.1%}",
                "met": cand[worst] >= TARGET_CANDIDATE_RATE,
                "context": f"lowest: {worst}",
            }
        )
    for name, r in report["strategies"].items():
        phase = r.get("phases", {}).get(last)
        if name not in LEARNED_STRATEGIES or phase is None:
            continue
        tied = oracle.get("tied_rate")
        figures.append(
            {
                "figure": f"{name}: optimal selection, {last}",
                "value": phase["optimal_rate"],
                "unit": "rate",
                "target": f">= {TARGET_OPTIMAL_RATE:.0%}",
                "met": phase["optimal_rate"] >= TARGET_OPTIMAL_RATE,
                "context": (
                    f"near-optimal {phase['near_optimal_rate']:.1%}, regret "
                    f"{phase['mean_regret']:.4f}"
                    + (f", near-tie requests {tied:.1%}" if tied is not None else "")
                ),
            }
        )
        if oracle.get("success_rate") is not None:
            gap = phase["success_rate"] - oracle["success_rate"]
            figures.append(
                {
                    "figure": f"{name}: success vs the oracle's, {last}",
                    "value": round(gap, 4),
                    "unit": "points",
                    "target": f"at most {TARGET_SUCCESS_GAP * 100:g} points below",
                    "met": gap >= -TARGET_SUCCESS_GAP,
                    "context": (
                        f"{phase['success_rate']:.1%} vs {oracle['success_rate']:.1%}; reward "
                        f"{phase['mean_reward']:.3f} vs {oracle['mean_reward']:.3f}"
                    ),
                }
            )
    drift = report.get("drift")
    if drift and "met" in drift:
        figures.append(
            {
                "figure": "failing service below 5% of its former share",
                "value": drift.get("sustained_below_5pct_s"),
                "unit": "s",
                "target": f"<= {TARGET_DRIFT_SECONDS:g} s",
                "met": bool(drift["met"]),
                "context": f"{drift['strategy']}, {drift['failing_service']}",
            }
        )
    flood = report.get("flood")
    if flood and "met" in flood:
        figures.append(
            {
                "figure": "the README example flood, no outcomes",
                "value": flood.get("status_counts"),
                "target": "all 200",
                "met": bool(flood["met"]),
                "context": f"{flood.get('requests')} requests",
            }
        )
    figures.append(
        {
            "figure": "server errors (5xx other than 503 no_eligible_service)",
            "value": report["totals"]["server_errors"],
            "target": "0",
            "met": report["totals"]["server_errors"] == 0,
            "context": "every phase",
        }
    )
    return figures


def _figure_value(figure: dict) -> str:
    value, unit = figure["value"], figure.get("unit")
    if value is None:
        return "never"
    if unit == "rate":
        return f"{value:.1%}"
    if unit == "points":
        return f"{value * 100:+.1f} points"
    if unit == "s":
        return f"{value:g} s"
    return str(value)


def format_report(report: dict) -> str:
    lines = []
    lines.append(
        f"fleet simulation: profiles={report['profiles']['name']} seed={report['seed']} "
        f"requests={report['requests']} objective={report['objective']['description']}"
    )
    rows = [(name, r) for name, r in report["strategies"].items()] + [
        (name, r) for name, r in report["baselines"].items()
    ]
    phase_names = [p for p, _, _ in phase_bounds(report["requests"])]
    header = (
        f"{'strategy':<20}{'reqs':>6}{'cand':>9}{'optimal':>9}{'~opt':>8}{'success':>9}"
        f"{'lat ms':>9}{'reward':>8}{'regret':>8}{'503':>6}{'5xx':>5}{'4xx':>5}"
    )
    for pname in phase_names:
        lines.append("")
        lines.append(f"== {pname} ==")
        lines.append(header)
        for name, r in rows:
            s = r.get("phases", {}).get(pname)
            if s is None:
                lines.append(f"{name:<20}  (not run: {r.get('error', '?')[:60]})")
                continue
            label = name if name in report["strategies"] else f"[{name}]"
            lines.append(
                f"{label:<20}{s['requests']:>6}{_fmt(s['candidate_rate'], True):>9}"
                f"{_fmt(s['optimal_rate'], True):>9}{_fmt(s['near_optimal_rate'], True):>8}"
                f"{_fmt(s['success_rate'], True):>9}"
                f"{_fmt(s['mean_latency_ms']):>9}{_fmt(s['mean_reward']):>8}"
                f"{_fmt(s['mean_regret']):>8}{s['n_503']:>6}{s['server_errors']:>5}"
                f"{s['client_errors'] + s['outcome_errors']:>5}"
            )
        for name, r in report["strategies"].items():
            chosen = r.get("phases", {}).get(pname, {}).get("concrete_strategies")
            if chosen and list(chosen) != [name]:
                lines.append(f"{name} chose: " + ", ".join(f"{k} {v}" for k, v in chosen.items()))
        tied = report["baselines"].get("oracle", {}).get("phases", {}).get(pname, {})
        if tied.get("tied_rate") is not None:
            lines.append(
                f"near-ties: {_fmt(tied['tied_rate'], True).strip()} of these requests have "
                f"another able service within {NEAR_OPTIMAL_REWARD_GAP} of the best's expected "
                "reward (a strict optimal rate cannot tell them apart; ~opt can)"
            )
        if pname == phase_names[1]:
            lines.append("")
            lines.append("== retrain ==")
            for name, r in report["strategies"].items():
                info = r.get("phases", {}).get("retrain")
                if info is not None:
                    lines.append(f"{name:<20}{_retrain_line(info)}")
    for name, r in report["strategies"].items():
        for s in r.get("phases", {}).values():
            if s.get("error_samples"):
                lines.append(f"errors [{name}]: " + " | ".join(s["error_samples"][:3]))
                break
    drift = report.get("drift")
    if drift:
        lines.append("")
        lines.append("== drift ==")
        if "skipped" in drift or "error" in drift:
            lines.append(f"drift: {drift.get('skipped') or drift.get('error')}")
        else:
            lines.append(
                f"{drift['strategy']}: {drift['failing_service']} fails every call; former share "
                f"of the {drift['request_type']} requests another service can also serve "
                f"{drift['former_share']:.1%}"
            )
            lines.append(f"{'t (s)':>6}{'reqs':>7}{'type':>7}{'picks':>7}{'share':>9}{'rel':>9}")
            for w in drift["windows"]:
                lines.append(
                    f"{w['t_end_s']:>6}{w['requests']:>7}{w['type_requests']:>7}"
                    f"{w['victim_picks']:>7}{_fmt(w['share'], True):>9}"
                    f"{_fmt(w['relative_share'], True):>9}"
                )
            first, sus = drift["first_below_5pct_s"], drift["sustained_below_5pct_s"]
            lines.append(
                f"time until share < 5% of former: first {first if first is not None else 'never'}"
                f" s, for good {sus if sus is not None else 'never'} s "
                f"(target <= {TARGET_DRIFT_SECONDS:g} s: {'met' if drift['met'] else 'MISSED'})"
            )
            ds = drift["summary"]
            lines.append(
                f"drift phase overall: success {_fmt(ds['success_rate'], True)}, 503 "
                f"{ds['n_503']}, server errors {ds['server_errors']}"
            )
            rec = drift.get("recovery")
            if rec:
                lines.append("")
                lines.append(f"== recovery: {drift['failing_service']} healthy again ==")
                lines.append(
                    f"{'t (s)':>6}{'reqs':>7}{'type':>7}{'picks':>7}{'share':>9}{'rel':>9}"
                )
                for w in rec["windows"]:
                    lines.append(
                        f"{w['t_end_s']:>6}{w['requests']:>7}{w['type_requests']:>7}"
                        f"{w['victim_picks']:>7}{_fmt(w['share'], True):>9}"
                        f"{_fmt(w['relative_share'], True):>9}"
                    )
                back = rec["back_s"]
                lines.append(
                    f"back to {RECOVERED_SHARE:.0%} of its former share: "
                    + (
                        f"after {back:g} s ({rec['requests_until_back']} requests)"
                        if back is not None
                        else f"not within {rec['seconds']:g} s"
                    )
                )
                rs = rec["summary"]
                lines.append(
                    f"recovery phase overall: success {_fmt(rs['success_rate'], True)}, 503 "
                    f"{rs['n_503']}, server errors {rs['server_errors']}"
                )
    flood = report.get("flood")
    if flood:
        lines.append("")
        lines.append("== flood ==")
        if "error" in flood:
            lines.append(f"flood: {flood['error']}")
        else:
            lines.append(
                f"{flood['requests']} x README example, no outcomes: "
                f"status {flood['status_counts']} codes {flood['error_codes']}; "
                f"{flood['requests_per_s']} requests/s "
                f"({'met' if flood['met'] else 'MISSED'}: all 200)"
            )
    errors = report["totals"]["server_errors"]
    lines.append("")
    lines.append(
        f"server errors (5xx other than 503 no_eligible_service): {errors}; "
        f"elapsed {report['elapsed_s']} s"
    )
    figures = report.get("figures")
    if figures:
        lines.append("")
        lines.append("== the figures to reach ==")
        for f in figures:
            lines.append(
                f"{'met   ' if f['met'] else 'MISSED'} {f['figure']}: {_figure_value(f)} "
                f"(target {f['target']}; {f['context']})"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.performance.fleet_simulation",
        description="Measure routing decision quality through the HTTP API on a simulated fleet.",
    )
    p.add_argument("--requests", type=int, default=None, help="Requests per strategy (3000).")
    p.add_argument(
        "--strategies",
        default=None,
        help=f"Comma-separated (default: all: {','.join(ALL_STRATEGIES)}).",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--profiles",
        default="default",
        help=f"{' | '.join(sorted(PROFILE_SETS))} | random:N (a seeded random fleet) | wide:N "
        "(5-8 able services per type) | a JSON file (PATH.json, the format --dump-profiles prints)",
    )
    p.add_argument(
        "--dump-profiles",
        action="store_true",
        help="Print the --profiles set as JSON (a template for a file of your own) and exit.",
    )
    p.add_argument("--quick", action="store_true", help="CI smoke: 200 requests, 2 strategies.")
    p.add_argument("--flood", type=int, default=None, help="Flood requests (5000; 0 = skip).")
    p.add_argument("--drift-seconds", type=float, default=None, help="Drift phase length (15).")
    p.add_argument("--no-drift", action="store_true")
    p.add_argument(
        "--recovery-seconds",
        type=float,
        default=None,
        help="After the drift, the failing service is healthy again for this long (30; quick 3; "
        "0 = skip).",
    )
    p.add_argument("--retrain-timeout", type=float, default=300.0)
    p.add_argument("--objective", default=None, help="MOE_OBJECTIVE (success_minus_latency).")
    p.add_argument("--latency-cost-ms", type=float, default=None)
    p.add_argument("--slo-ms", type=float, default=None)
    p.add_argument("--redis", metavar="URL", default=None, help="Run with REDIS_URL (not db 0).")
    p.add_argument(
        "--clients",
        type=int,
        default=1,
        help="Concurrent clients in the three phases (1); the drift phase stays sequential.",
    )
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers (1; more need --redis).")
    p.add_argument("--json", metavar="PATH", default=None, help="Write the report as JSON.")
    p.add_argument(
        "--trace", metavar="PATH", default=None, help="Write every decision as a JSON line."
    )
    p.add_argument("--keep", action="store_true", help="Keep the temp dir (logs, databases).")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 200 if args.quick else 3000
    if args.requests < 6:
        p.error("--requests must be at least 6")
    if args.strategies is None:
        args.strategies = "adaptive,semantic" if args.quick else ",".join(ALL_STRATEGIES)
    args.strategy_list = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in args.strategy_list if s not in ALL_STRATEGIES]
    if unknown:
        p.error(f"unknown strategies {unknown}; valid: {', '.join(ALL_STRATEGIES)}")
    if args.flood is None:
        args.flood = 0 if args.quick else 5000
    if args.drift_seconds is None:
        args.drift_seconds = 4.0 if args.quick else 15.0
    if args.recovery_seconds is None:
        args.recovery_seconds = 3.0 if args.quick else 30.0
    try:
        args.profile_set = profile_set(args.profiles)
    except ProfileError as exc:
        p.error(f"--profiles {exc}")
    except (KeyError, ValueError):
        p.error(f"--profiles: {' | '.join(sorted(PROFILE_SETS))}, random:N, wide:N or PATH.json")
    if not 1 <= args.clients <= 64:
        p.error("--clients must be between 1 and 64")
    if args.workers < 1 or (args.workers > 1 and not args.redis):
        p.error("--workers: at least 1; more than 1 share what they learn only through --redis")
    if args.redis:
        db = (urlsplit(args.redis).path or "/0").strip("/") or "0"
        if db == "0":
            p.error("--redis: use a scratch db (e.g. redis://127.0.0.1:6379/9); it is flushed")
    return args


def _objective(args) -> Objective:
    base = Objective()
    return Objective(
        kind=args.objective or os.environ.get("MOE_OBJECTIVE") or base.kind,
        latency_cost_ms=args.latency_cost_ms
        or float(os.environ.get("MOE_LATENCY_COST_MS") or base.latency_cost_ms),
        slo_ms=args.slo_ms or float(os.environ.get("MOE_LATENCY_SLO_MS") or base.slo_ms),
    )


def run(args: argparse.Namespace) -> dict:
    args.trace_file = open(args.trace, "w") if args.trace else None  # noqa: SIM115
    try:
        return _run(args)
    finally:
        if args.trace_file is not None:
            args.trace_file.close()


def _run(args: argparse.Namespace) -> dict:
    objective = _objective(args)
    profiles = args.profile_set
    fleet = Fleet(profiles, objective)
    requests = Workload(profiles, args.seed).take(args.requests)
    workdir = Path(tempfile.mkdtemp(prefix="moe-fleet-sim-"))
    env = Environment(workdir, objective, args.redis, routing_seed=args.seed)
    started = time.monotonic()
    report: dict = {
        "benchmark": "fleet_simulation",
        "command": " ".join([Path(PYTHON).name, "-m", "tests.performance.fleet_simulation"])
        + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""),
        "seed": args.seed,
        "requests": args.requests,
        "phases": [name for name, _, _ in phase_bounds(args.requests)],
        "profiles": {
            "name": profiles.name,
            "description": profiles.description,
            "services": [
                {"service_id": s.service_id, "service_type": s.service_type}
                for s in profiles.services
            ],
        },
        "objective": objective.as_dict(),
        "state": "redis" if args.redis else "local",
        "clients": args.clients,
        "workers": args.workers,
        "strategies": {},
        "baselines": run_baselines(fleet, requests, args.seed),
        "drift": None,
        "flood": None,
    }
    try:
        _progress(f"migrate into {workdir}")
        env.prepare_template()
        for strategy in args.strategy_list:
            drift = None
            if strategy == DRIFT_STRATEGY and not args.no_drift:
                drift = Workload(profiles, args.seed + 1)
            try:
                result = run_strategy(env, fleet, strategy, requests, args, drift)
            except (SimulationError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                # One broken server (e.g. a tree caught mid-edit) must not hide the others.
                _progress(f"[{strategy}] FAILED: {exc!r}")
                result = {"strategy": strategy, "phases": {}, "error": repr(exc)[-3000:]}
            report["drift"] = result.pop("drift", report["drift"])
            report["strategies"][strategy] = result
        if args.flood > 0:
            _progress(f"[flood] {args.flood} requests on the demo fleet")
            try:
                report["flood"] = run_flood(env, args.flood)
            except (SimulationError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                _progress(f"[flood] FAILED: {exc!r}")
                report["flood"] = {"error": repr(exc)[-3000:], "met": False}
    finally:
        if args.keep:
            _progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        env.flush_redis()
    server_errors = sum(
        s.get("server_errors", 0)
        for r in report["strategies"].values()
        for s in r.get("phases", {}).values()
    )
    if report["drift"] and "summary" in report["drift"]:
        server_errors += report["drift"]["summary"]["server_errors"]
        if report["drift"].get("recovery"):
            server_errors += report["drift"]["recovery"]["summary"]["server_errors"]
    if report["flood"] and "n_5xx_other" in report["flood"]:
        server_errors += report["flood"]["n_5xx_other"]
    last = report["phases"][-1]
    report["totals"] = {
        "server_errors": server_errors,
        "failed_strategies": [n for n, r in report["strategies"].items() if "error" in r],
        "phase3_optimal_rate": {
            n: r["phases"][last]["optimal_rate"]
            for n, r in report["strategies"].items()
            if last in r.get("phases", {})
        },
        "min_candidate_rate": {
            n: min(r["phases"][p]["candidate_rate"] for p in report["phases"])
            for n, r in report["strategies"].items()
            if all(p in r.get("phases", {}) for p in report["phases"])
        },
    }
    report["targets"] = {
        "candidate_rate": TARGET_CANDIDATE_RATE,
        "phase3_optimal_rate": TARGET_OPTIMAL_RATE,
        "phase3_success_gap": TARGET_SUCCESS_GAP,
        "drift_seconds": TARGET_DRIFT_SECONDS,
        "flood": "all 200",
    }
    report["figures"] = issue_figures(report)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    return report


def _sigterm(signum, frame):  # pragma: no cover - signal path
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dump_profiles:
        print(json.dumps(profile_set_to_dict(args.profile_set), indent=2))
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    # Also when started in the background by a shell that ignores SIGINT for its children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    except SimulationError as exc:
        print(f"fleet simulation failed: {exc}", file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if report["totals"]["failed_strategies"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fleet simulation's learning problem, in process and over many seeds.

    .venv/bin/python -m tests.performance.learner_replay           # both profile sets, 8 seeds
    .venv/bin/python -m tests.performance.learner_replay --profiles alt --seeds 20 --requests 3000
    .venv/bin/python -m tests.performance.learner_replay --workers 4 [--no-share]
    .venv/bin/python -m tests.performance.learner_replay --profiles random --seeds 40

``tests.performance.fleet_simulation`` measures decision quality through the real HTTP API,
one seeded run per strategy: its figures move by a few points from run to run (the server's
exploration draws are its own). This replays the same hidden profiles, workload and phases
against :class:`routing.core.learning.OutcomeLearner` directly (candidates from the hidden
truth, which is what the server's candidate filter gives on these profiles; no load, no
HTTP), seeded, so a learner change can be judged on the mean over many seeds in seconds. It
also splits the misses of each phase into

* ``explored``: the decision explored (chose another candidate than its greedy one);
* ``near_tie``: greedy, and the chosen service's expected reward is within 0.02 of the oracle's;
* ``wrong``: greedy, and clearly worse than the oracle's.

``--workers N`` splits the requests over N learners (web workers) and reports each outcome to
one of them at random; with shared learning (the default, as with Redis) every learner sees
every outcome, with ``--no-share`` only the one it was reported to.

``--profiles random`` replays a different seeded random fleet for each seed
(``fleet_simulation.random_profile_set``): the learner's settings were tuned on ``default`` and
``alt``, and these say whether they hold on fleets nobody tuned them for.

It complements the HTTP simulation; it does not replace it (no retrain round trip, no load).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

from routing.core.learning import LearnerConfig, OutcomeLearner
from routing.core.objective import Objective
from tests.performance.fleet_simulation import (
    NEAR_OPTIMAL_REWARD_GAP,
    Fleet,
    Workload,
    phase_bounds,
    profile_set,
)


def replay(
    profiles: str,
    seed: int,
    requests: int,
    config: LearnerConfig | None = None,
    workers: int = 1,
    shared: bool = True,
) -> dict:
    """One seeded run. ``workers`` > 1: that many learners (web workers) take the requests in
    turn, and each outcome is reported to a worker drawn at random (a client's next request
    lands anywhere); with ``shared`` every worker's learner sees every outcome (as with
    MOE_SHARED_LEARNING and Redis), without it only the worker it was reported to."""
    objective = Objective()
    # "random": a different seeded random fleet per seed.
    fleet = Fleet(profile_set(f"random:{seed}" if profiles == "random" else profiles), objective)
    workload = Workload(fleet.profiles, seed)
    learners = [OutcomeLearner(config, objective, seed=seed * 7919 + 1 + w) for w in range(workers)]
    outcome_rng = random.Random(seed * 1000 + 17)
    report_rng = random.Random(seed * 31 + 5)
    phases = {}
    for name, lo, hi in phase_bounds(requests):
        counts = {"n": 0, "optimal": 0, "explored": 0, "near_tie": 0, "wrong": 0, "regret": 0.0}
        for _ in range(hi - lo):
            req = workload.next()
            capable = fleet.capable(req.request_type, req.capabilities)
            if not capable:
                continue
            learner = learners[req.index % workers]
            _, evidence, score = learner.scores(req.request_type, req.complexity, capable)
            chosen, greedy, _, _ = learner.choose(score, float(evidence.sum()), evidence)
            sid = capable[chosen]
            best = fleet.oracle(req.request_type, req.capabilities, req.complexity)
            gap = fleet.expected_reward(best, req.request_type, req.complexity) - (
                fleet.expected_reward(sid, req.request_type, req.complexity)
            )
            counts["n"] += 1
            counts["regret"] += gap
            if sid == best:
                counts["optimal"] += 1
            elif chosen != greedy:
                counts["explored"] += 1
            elif gap <= NEAR_OPTIMAL_REWARD_GAP:
                counts["near_tie"] += 1
            else:
                counts["wrong"] += 1
            ok, latency, _ = fleet.sample(
                sid, req.request_type, req.capabilities, req.complexity, outcome_rng
            )
            told = learners if shared else [learners[report_rng.randrange(workers)]]
            for one in told:
                one.observe_outcome(sid, req.request_type, req.complexity, ok, latency)
        n = max(1, counts.pop("n"))
        phases[name] = {k: v / n for k, v in counts.items()}
    return phases


def replay_engine(profiles: str, seed: int, requests: int, strategy: str = "adaptive") -> dict:
    """One seeded run through :class:`routing.core.engine.RoutingEngine` (candidate filter,
    strategy, score tables, exploration) on an idle fleet: what the server decides, without
    HTTP, the database or leases. Phase figures as :func:`replay` (optimal share only)."""
    from routing.core.engine import EngineConfig, RoutingEngine
    from routing.core.types import FleetSnapshot, LiveView, RouteRequest, ServiceSpec

    objective = Objective()
    profile = profile_set(f"random:{seed}" if profiles == "random" else profiles)
    fleet = Fleet(profile, objective)
    specs = [
        ServiceSpec(
            service_id=s.service_id,
            service_type=s.service_type,
            endpoint="http://127.0.0.1:9",
            capabilities=frozenset(s.capabilities),
            max_capacity=s.max_capacity,
        )
        for s in profile.services
    ]
    snapshot = FleetSnapshot.build(specs, version=1)
    view = LiveView.idle(len(snapshot))
    engine = RoutingEngine(EngineConfig(objective=objective, p2c_seed=seed * 7919 + 1))
    workload = Workload(profile, seed)
    outcome_rng = random.Random(seed * 1000 + 17)
    phases = {}
    for name, lo, hi in phase_bounds(requests):
        n = optimal = 0
        for _ in range(hi - lo):
            req = workload.next()
            request = RouteRequest(
                request_type=req.request_type,
                priority=req.priority,
                complexity=req.complexity,
                capabilities=req.capabilities,
                key=req.key,
            )
            selected = engine.route(request, snapshot, view, strategy).selected
            if not selected:
                continue
            sid = selected[0]
            n += 1
            optimal += sid == fleet.oracle(req.request_type, req.capabilities, req.complexity)
            ok, latency, _ = fleet.sample(
                sid, req.request_type, req.capabilities, req.complexity, outcome_rng
            )
            engine.learner.observe_outcome(sid, req.request_type, req.complexity, ok, latency)
        phases[name] = {"optimal": optimal / max(1, n)}
    return phases


def summarise(runs: list[dict]) -> dict:
    out = {}
    for phase in runs[0]:
        out[phase] = {}
        for key in runs[0][phase]:
            values = [r[phase][key] for r in runs]
            out[phase][key] = {
                "mean": round(statistics.fmean(values), 4),
                "min": round(min(values), 4),
                "max": round(max(values), 4),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="default,alt")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="learners taking turns (1)")
    parser.add_argument(
        "--no-share", action="store_true", help="with --workers: each learns only what it is told"
    )
    parser.add_argument(
        "--engine",
        metavar="STRATEGY",
        default=None,
        help="route through RoutingEngine with this strategy (e.g. adaptive) instead of "
        "driving the learner directly",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = {}
    for profiles in args.profiles.split(","):
        t0 = time.monotonic()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        if args.engine:
            runs = [replay_engine(profiles, s, args.requests, args.engine) for s in seeds]
        else:
            runs = [
                replay(profiles, s, args.requests, workers=args.workers, shared=not args.no_share)
                for s in seeds
            ]
        report[profiles] = summarise(runs)
        if not args.json:
            print(f"{profiles}: {args.seeds} seeds, {time.monotonic() - t0:.1f} s")
            for phase, figs in report[profiles].items():
                line = "  ".join(
                    f"{k} {v['mean'] * 100:5.1f}% [{v['min'] * 100:.1f}-{v['max'] * 100:.1f}]"
                    if k != "regret"
                    else f"regret {v['mean']:.4f}"
                    for k, v in figs.items()
                )
                print(f"  {phase:<24} {line}")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fleet simulation's learning problem, in process and over many seeds.

    .venv/bin/python -m tests.performance.learner_replay           # both profile sets, 8 seeds
    .venv/bin/python -m tests.performance.learner_replay --profiles alt --seeds 20 --requests 3000
    .venv/bin/python -m tests.performance.learner_replay --workers 4 [--no-share]
    .venv/bin/python -m tests.performance.learner_replay --profiles random --seeds 40
    .venv/bin/python -m tests.performance.learner_replay --objective success_within_slo --slo-ms 300

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

``--diagnose`` (one worker) splits phase 3's clearly wrong picks further, with the regret
each kind costs: the best service under-explored (< 10 outcomes near that complexity),
underestimated by more than 0.03 despite its data, the chosen one overestimated, the greedy
pick made wrong by the UCB bonus alone (by the estimates alone it would have been right), and
whether the *model* could have got it right: a shadow learner fed the expected reward of
every outcome the live one saw (same services, same complexities, no noise) and one with no
drift detector; it also counts drift resets (on these stationary fleets every one is a false
alarm). ``--full-info`` is the ceiling for comparison: the same learner told the outcome of
*every* able service on every request, choosing by its estimates, never exploring.

``--workers N`` splits the requests over N learners (web workers) and reports each outcome to
one of them at random; with shared learning (the default, as with Redis) every learner sees
every outcome, with ``--no-share`` only the one it was reported to.

``--profiles random`` replays a different seeded random fleet for each seed
(``fleet_simulation.random_profile_set``): the learner's settings were tuned on ``default`` and
``alt``, and these say whether they hold on fleets nobody tuned them for. ``--profiles
my-fleet.json`` replays a fleet of your own (the format of ``fleet_simulation
--dump-profiles``).

It complements the HTTP simulation; it does not replace it (no retrain round trip, no load).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from collections import deque

import numpy as np

from routing.core.learning import LearnerConfig, OutcomeLearner
from routing.core.objective import OBJECTIVES, Objective
from tests.performance.fleet_simulation import (
    NEAR_OPTIMAL_REWARD_GAP,
    Fleet,
    Workload,
    phase_bounds,
    profile_set,
)


def seeded_profile_set(profiles: str, seed: int):
    """``profiles`` for one seed: ``random`` and ``wide`` are a different seeded fleet per
    seed (``random:SEED``, ``wide:SEED``), anything else the same set every seed."""
    if profiles in ("random", "wide"):
        return profile_set(f"{profiles}:{seed}")
    return profile_set(profiles)


def replay(
    profiles: str,
    seed: int,
    requests: int,
    config: LearnerConfig | None = None,
    workers: int = 1,
    shared: bool = True,
    diagnose: bool = False,
    objective: Objective | None = None,
    in_flight: int = 0,
    reload: bool = False,
) -> dict:
    """One seeded run. ``workers`` > 1: that many learners (web workers) take the requests in
    turn, and each outcome is reported to a worker drawn at random (a client's next request
    lands anywhere); with ``shared`` every worker's learner sees every outcome (as with
    MOE_SHARED_LEARNING and Redis), without it only the worker it was reported to.
    ``objective``: the reward (default: success minus latency, as the server's default).
    ``in_flight``: each outcome reaches the learners only after this many later decisions (as
    with that many requests in flight from concurrent clients: the learner decides on
    outcomes that lag behind)."""
    objective = objective or Objective()
    fleet = Fleet(seeded_profile_set(profiles, seed), objective)
    pending: deque[tuple] = deque()
    workload = Workload(fleet.profiles, seed)
    learners = [OutcomeLearner(config, objective, seed=seed * 7919 + 1 + w) for w in range(workers)]
    outcome_rng = random.Random(seed * 1000 + 17)
    report_rng = random.Random(seed * 31 + 5)
    shadow = _Diagnosis(config, objective) if diagnose else None
    phases = {}
    log: list[tuple] = []
    for name, lo, hi in phase_bounds(requests):
        counts = {"n": 0, "optimal": 0, "explored": 0, "near_tie": 0, "wrong": 0, "regret": 0.0}
        last = name.startswith("p3")
        if last and reload:
            fresh = OutcomeLearner(config, objective)
            for entry in log:
                fresh.observe(*entry)
            blob = fresh.to_bytes()
            for one in learners:
                one.load_bytes(blob)
        for _ in range(hi - lo):
            req = workload.next()
            capable = fleet.capable(req.request_type, req.capabilities)
            if not capable:
                continue
            learner = learners[req.index % workers]
            mean, evidence, score = learner.scores(req.request_type, req.complexity, capable)
            stale = learner.stale(req.request_type, capable)
            chosen, greedy, _, _ = learner.choose(
                score, float(evidence.sum()), evidence, score - mean, stale
            )
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
            if shadow is not None and last:
                shadow.decision(
                    fleet, req, capable, mean, evidence, chosen, greedy, best, gap, learner
                )
            ok, latency, _ = fleet.sample(
                sid, req.request_type, req.capabilities, req.complexity, outcome_rng
            )
            told = learners if shared else [learners[report_rng.randrange(workers)]]
            pending.append((told, sid, req, ok, latency))
            while len(pending) > in_flight:
                told, sid, req, ok, latency = pending.popleft()
                for one in told:
                    reward = one.observe_outcome(sid, req.request_type, req.complexity, ok, latency)
                log.append((sid, req.request_type, req.complexity, reward))
                if shadow is not None:
                    shadow.observe(fleet, sid, req, reward)
        n = max(1, counts.pop("n"))
        phases[name] = {k: v / n for k, v in counts.items()}
    if shadow is not None:
        phases["diagnosis"] = shadow.result(learners[0])
    return phases


class _Diagnosis:
    """``replay(diagnose=True)``: classifies phase 3's clearly wrong picks (see the module
    docstring). Figures are shares of phase 3's decisions (``*_regret``: mean regret per
    phase-3 decision)."""

    UNDER = 10.0  # outcomes near the complexity: less is under-explored
    OFF = 0.03  # an estimate this far from the truth is off

    def __init__(self, config: LearnerConfig | None, objective: Objective) -> None:
        cfg = config or LearnerConfig()
        # Expected rewards at the live learner's design points, no drift detector: what the
        # model makes of the same data without noise (bias: misspecification, smoothing,
        # prior, discount).
        self.noise_free = OutcomeLearner(dataclasses.replace(cfg, drift_min_shift=1e9), objective)
        # Real rewards, no drift detector: what the drift detector's resets change.
        self.no_drift = OutcomeLearner(dataclasses.replace(cfg, drift_min_shift=1e9), objective)
        self.n = 0
        self.counts: dict[str, float] = {}

    def _add(self, key: str, gap: float) -> None:
        self.counts[key] = self.counts.get(key, 0.0) + 1
        self.counts[key + "_regret"] = self.counts.get(key + "_regret", 0.0) + gap

    def decision(self, fleet, req, capable, mean, evidence, chosen, greedy, best, gap, learner):
        self.n += 1
        kind = "optimal" if capable[chosen] == best else None
        if kind is None:
            kind = (
                "explored"
                if chosen != greedy
                else "near_tie"
                if gap <= NEAR_OPTIMAL_REWARD_GAP
                else "wrong"
            )
        self._add(kind, gap)
        if kind != "wrong":
            return
        rtype, c = req.request_type, req.complexity
        b = capable.index(best)
        truth = np.array([fleet.expected_reward(s, rtype, c) for s in capable])
        err = mean - truth
        if evidence[b] < self.UNDER:
            self._add("wrong.best_under_explored", gap)
        elif err[b] < -self.OFF:
            self._add("wrong.best_underestimated_despite_data", gap)
        if err[chosen] > self.OFF:
            self._add("wrong.chosen_overestimated", gap)
        if int(np.argmax(mean)) == b:
            self._add("wrong.by_ucb_bonus_alone", gap)
        clean, _ = self.noise_free.estimates(rtype, c, capable)
        if int(np.argmax(clean)) == b:
            self._add("wrong.noise_free_model_right", gap)
        elif clean[b] < truth[b] - self.OFF:
            self._add("wrong.noise_free_model_underestimates_best", gap)
        steady, _ = self.no_drift.estimates(rtype, c, capable)
        if int(np.argmax(steady)) == b and int(np.argmax(mean)) != b:
            self._add("wrong.right_without_drift_resets", gap)
        arm = learner._arms.get((best, rtype))
        if arm is not None and arm.drifts:
            self._add("wrong.best_had_drift_reset", gap)

    def observe(self, fleet, service_id, req, reward) -> None:
        rtype, c = req.request_type, req.complexity
        self.noise_free.observe(service_id, rtype, c, fleet.expected_reward(service_id, rtype, c))
        self.no_drift.observe(service_id, rtype, c, reward)

    def result(self, learner: OutcomeLearner) -> dict:
        n = max(1, self.n)
        out = {k: v / n for k, v in sorted(self.counts.items())}
        out["drift_resets_per_run"] = float(sum(a.drifts for a in learner._arms.values()))
        return out


def replay_full_info(
    profiles: str, seed: int, requests: int, config=None, objective: Objective | None = None
) -> dict:
    """The ceiling: the learner is told the outcome of every able service on every request,
    and picks by its estimates (no exploration). Phase figures as :func:`replay`."""
    objective = objective or Objective()
    fleet = Fleet(seeded_profile_set(profiles, seed), objective)
    workload = Workload(fleet.profiles, seed)
    learner = OutcomeLearner(config, objective, seed=seed)
    outcome_rng = random.Random(seed * 1000 + 17)
    phases = {}
    for name, lo, hi in phase_bounds(requests):
        n = optimal = 0
        for _ in range(hi - lo):
            req = workload.next()
            capable = fleet.capable(req.request_type, req.capabilities)
            if not capable:
                continue
            mean, _ = learner.estimates(req.request_type, req.complexity, capable)
            n += 1
            best = fleet.oracle(req.request_type, req.capabilities, req.complexity)
            optimal += capable[int(np.argmax(mean))] == best
            for sid in capable:
                ok, latency, _ = fleet.sample(
                    sid, req.request_type, req.capabilities, req.complexity, outcome_rng
                )
                learner.observe_outcome(sid, req.request_type, req.complexity, ok, latency)
        phases[name] = {"optimal": optimal / max(1, n)}
    return phases


def replay_engine(
    profiles: str,
    seed: int,
    requests: int,
    strategy: str = "adaptive",
    objective: Objective | None = None,
) -> dict:
    """One seeded run through :class:`routing.core.engine.RoutingEngine` (candidate filter,
    strategy, score tables, exploration) on an idle fleet: what the server decides, without
    HTTP, the database or leases. Phase figures as :func:`replay` (optimal share only)."""
    from routing.core.engine import EngineConfig, RoutingEngine
    from routing.core.types import FleetSnapshot, LiveView, RouteRequest, ServiceSpec

    objective = objective or Objective()
    profile = seeded_profile_set(profiles, seed)
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
    if "diagnosis" in runs[0]:
        keys = sorted({k for r in runs for k in r["diagnosis"]})
        out["diagnosis"] = {
            k: {"mean": round(statistics.fmean(r["diagnosis"].get(k, 0.0) for r in runs), 5)}
            for k in keys
        }
        runs = [{k: v for k, v in r.items() if k != "diagnosis"} for r in runs]
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
    parser.add_argument(
        "--profiles",
        default="default,alt",
        help="comma-separated: default, alt, random or wide (a fleet per seed) or PATH.json",
    )
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
    parser.add_argument(
        "--diagnose", action="store_true", help="split phase 3's wrong picks further (1 worker)"
    )
    parser.add_argument(
        "--full-info",
        action="store_true",
        help="the ceiling: the learner sees every able service's outcome, never explores",
    )
    parser.add_argument(
        "--objective",
        default="success_minus_latency",
        choices=OBJECTIVES,
        help="the reward, as MOE_OBJECTIVE (success_minus_latency)",
    )
    parser.add_argument("--latency-cost-ms", type=float, default=1000.0)
    parser.add_argument("--slo-ms", type=float, default=1000.0)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=0,
        metavar="N",
        help="outcomes reach the learner N decisions late, as with N concurrent requests (0)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="before phase 3, load a learner refitted from every outcome so far, as a worker "
        "does when a retrained version goes live",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.in_flight < 0:
        parser.error("--in-flight must be >= 0")
    try:
        objective = Objective(args.objective, args.latency_cost_ms, args.slo_ms)
    except ValueError as exc:
        parser.error(str(exc))
    report = {}
    for profiles in args.profiles.split(","):
        t0 = time.monotonic()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        if args.engine:
            runs = [
                replay_engine(profiles, s, args.requests, args.engine, objective) for s in seeds
            ]
        elif args.full_info:
            runs = [
                replay_full_info(profiles, s, args.requests, objective=objective) for s in seeds
            ]
        else:
            runs = [
                replay(
                    profiles,
                    s,
                    args.requests,
                    workers=args.workers,
                    shared=not args.no_share,
                    diagnose=args.diagnose and args.workers == 1,
                    objective=objective,
                    in_flight=args.in_flight,
                    reload=args.reload,
                )
                for s in seeds
            ]
        report[profiles] = summarise(runs)
        if not args.json:
            print(f"{profiles}: {args.seeds} seeds, {time.monotonic() - t0:.1f} s")
            for phase, figs in report[profiles].items():
                if phase == "diagnosis":
                    print(
                        "  phase 3, share of decisions (regret per decision; a wrong pick can "
                        "have several of the wrong.* causes, so they overlap):"
                    )
                    for k, v in figs.items():
                        if k == "drift_resets_per_run":
                            print(f"    {k:<45} {v['mean']:6.3f}")
                        elif not k.endswith("_regret"):
                            r = figs.get(k + "_regret", {}).get("mean")
                            tail = f"  ({r:.5f})" if r is not None else ""
                            print(f"    {k:<45} {v['mean'] * 100:6.2f}%{tail}")
                    continue
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
    else:
        print(
            "(near_tie: decisions that missed the best by less than 0.02 of expected reward; "
            "the fleet simulation's 'near-ties' is the share of requests that have such a "
            "pair, missed or not)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The seeded in-process replay (tests/performance/learner_replay.py) runs and measures what
it says: a learner that learns is far above chance by the last phase; one that never
learns is not."""

import json

import pytest

from routing.core.learning import LearnerConfig
from tests.performance import learner_replay


def test_the_replay_reports_each_phase_and_the_split_of_its_misses(capsys):
    assert learner_replay.main(["--profiles", "default", "--seeds", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    phases = report["default"]
    assert list(phases) == ["p1_requests_1_500", "p2_requests_501_2000", "p3_requests_2001_3000"]
    for figures in phases.values():
        shares = sum(figures[k]["mean"] for k in ("optimal", "explored", "near_tie", "wrong"))
        assert abs(shares - 1.0) < 1e-3  # each mean is rounded to 4 places
    # Uniform random among candidates picks the best ~45% of the time on these profiles.
    assert phases["p3_requests_2001_3000"]["optimal"]["mean"] > 0.85


def test_a_learner_that_cannot_learn_stays_near_chance():
    # A discount of ~0 forgets every outcome at once, and full exploration ignores the rest.
    blind = LearnerConfig(discount=1e-9, epsilon=1.0, epsilon_min=1.0)
    phases = learner_replay.replay("default", 1, 1200, blind)
    assert phases["p3_requests_801_1200"]["optimal"] < 0.6


def test_four_workers_that_share_what_they_learn_choose_better_than_four_that_do_not():
    def last_phase_optimal(shared: bool) -> float:
        rates = [
            learner_replay.replay("default", seed, 3000, workers=4, shared=shared)[
                "p3_requests_2001_3000"
            ]["optimal"]
            for seed in (1, 2)
        ]
        return sum(rates) / len(rates)

    # 40 seeds: 95.2% shared, 89.2% not (docs/PERFORMANCE.md).
    assert last_phase_optimal(True) > last_phase_optimal(False) + 0.02


def test_random_fleets_are_seeded_and_every_requested_type_has_a_choice():
    from registry.choices import ServiceType
    from routing.core.objective import Objective
    from tests.performance.fleet_simulation import Fleet, profile_set, random_profile_set

    assert random_profile_set(5) == profile_set("random:5")
    assert random_profile_set(5) != random_profile_set(6)
    for seed in range(1, 30):
        profiles = random_profile_set(seed)
        fleet = Fleet(profiles, Objective())
        assert abs(sum(m.weight for m in profiles.request_types.values()) - 1.0) < 1e-9
        for rtype, mix in profiles.request_types.items():
            assert len(fleet.capable(rtype, ())) >= 2, (seed, rtype)
            for _, wanted in mix.capabilities:
                assert fleet.capable(rtype, wanted), (seed, rtype, wanted)
        # Every service can be registered (the simulation drives the real API).
        assert {s.service_type for s in profiles.services} <= set(ServiceType.values)
        # The decoys share capabilities with requested types but can serve none of them.
        decoys = [s for s in profiles.services if s.service_id.startswith(("decoy", "mute"))]
        assert len(decoys) == 2
        assert all(s.service_type not in profiles.request_types for s in decoys)


def test_wide_fleets_are_random_fleets_with_five_to_eight_able_services_per_type():
    from routing.core.objective import Objective
    from tests.performance.fleet_simulation import Fleet, profile_set, random_profile_set

    assert profile_set("wide:5") == random_profile_set(5, able=(5, 8))
    assert profile_set("wide:5").name == "wide:5"
    # The same draw as random:N otherwise: the same request types.
    assert set(profile_set("wide:5").request_types) == set(profile_set("random:5").request_types)
    counts = set()
    for seed in range(1, 20):
        profiles = profile_set(f"wide:{seed}")
        fleet = Fleet(profiles, Objective())
        for rtype in profiles.request_types:
            counts.add(len(fleet.capable(rtype, ())))
    assert min(counts) == 5 and max(counts) == 8, counts
    assert learner_replay.seeded_profile_set("wide", 4) == profile_set("wide:4")
    assert learner_replay.seeded_profile_set("random", 4) == profile_set("random:4")


def test_the_replay_runs_on_random_fleets(capsys):
    assert learner_replay.main(["--profiles", "random", "--seeds", "2", "--json"]) == 0
    phases = json.loads(capsys.readouterr().out)["random"]
    # Chance on these fleets is ~35-50%; 40 seeds average 92.5% (docs/PERFORMANCE.md).
    assert phases["p3_requests_2001_3000"]["optimal"]["mean"] > 0.8


def test_the_engine_replay_routes_through_the_strategy_and_learns():
    # adaptive through RoutingEngine: far above chance (~50%) by the last phase; 10 seeds
    # average 93.8% (docs/PERFORMANCE.md). A fixed strategy does not learn: semantic stays low.
    learned = learner_replay.replay_engine("alt", 1, 1200, "adaptive")
    fixed = learner_replay.replay_engine("alt", 1, 1200, "semantic")
    assert learned["p3_requests_801_1200"]["optimal"] > 0.8
    assert fixed["p3_requests_801_1200"]["optimal"] < 0.7


def test_the_replay_learns_the_objective_it_is_given(capsys):
    from routing.core.objective import Objective

    slo = Objective("success_within_slo", slo_ms=300.0)
    # The oracle and the rewards follow the objective: under a 300-ms SLO the figures differ
    # from those of the default objective on the same seed and workload.
    assert learner_replay.replay("default", 1, 600, objective=slo) != learner_replay.replay(
        "default", 1, 600
    )
    argv = ["--profiles", "default", "--seeds", "1", "--requests", "600", "--json"]
    assert learner_replay.main([*argv, "--objective", "success_within_slo", "--slo-ms", "300"]) == 0
    from_cli = json.loads(capsys.readouterr().out)["default"]["p3_requests_401_600"]["optimal"]
    direct = learner_replay.replay("default", 1, 600, objective=slo)["p3_requests_401_600"]
    assert from_cli["mean"] == round(direct["optimal"], 4)
    with pytest.raises(SystemExit) as exited:
        learner_replay.main([*argv, "--objective", "success_within_slo", "--slo-ms", "0"])
    assert exited.value.code == 2
    assert "slo_ms" in capsys.readouterr().err


def test_outcomes_held_in_flight_reach_the_learner_late_and_never_if_held_for_good():
    # Outcomes 32 decisions late (32 concurrent requests) still teach the learner; held past
    # the end of the run they never do, and it routes on its priors alone (every service tied:
    # the first listed, often the best on these profiles, but far from always).
    late = learner_replay.replay("default", 1, 1200, in_flight=32)["p3_requests_801_1200"]
    never = learner_replay.replay("default", 1, 1200, in_flight=1200)["p3_requests_801_1200"]
    assert late["optimal"] > 0.9
    assert never["optimal"] < 0.8
    assert never["regret"] > 5 * late["regret"]


def test_a_negative_in_flight_count_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        learner_replay.main(["--profiles", "default", "--seeds", "1", "--in-flight", "-1"])
    assert exc.value.code == 2
    assert "--in-flight" in capsys.readouterr().err


def test_a_worker_that_loads_a_refitted_learner_decides_as_before():
    """What a worker does when a retrained version goes live: load a learner refitted from
    every outcome so far (routing/training.py). The refit and the state round trip keep the
    per-segment sums exactly (rounding them to 2 places fails this), so the last phase is
    decided exactly as without the reload: a retrain costs the live learner nothing."""
    plain = learner_replay.replay("default", 3, 3000)
    reloaded = learner_replay.replay("default", 3, 3000, reload=True)
    assert reloaded == plain

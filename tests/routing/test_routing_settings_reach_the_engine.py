"""MOE_ROUTING_SEED, MOE_BREAKER_PANIC, the MOE_FORCED_SAMPLING_* and the MOE_EXPLORATION_*
settings reach the engine a worker builds: a seeded worker's exploration repeats draw for
draw, panic routing can be turned off, and so can forced sampling."""

from django.test import override_settings

from routing.core.engine import RoutingEngine
from routing.core.types import FleetSnapshot, RouteRequest
from routing.runtime import engine_config
from tests.routing.core.fleets import service, view


def picks(seed: int) -> list[str]:
    with override_settings(MOE_ROUTING_SEED=seed):
        engine = RoutingEngine(engine_config())
    snapshot = FleetSnapshot.build([service(s) for s in "abcd"])
    live = view(len(snapshot))
    request = RouteRequest(request_type="inference", complexity=0.5)
    return [engine.route(request, snapshot, live, "power_of_two").selected[0] for _ in range(40)]


def test_a_seeded_worker_repeats_its_draws_and_another_seed_does_not():
    assert engine_config().p2c_seed is None  # unset: from the OS
    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_panic_routing_follows_its_setting():
    assert engine_config().panic_when_all_breakers_open is True
    with override_settings(MOE_BREAKER_PANIC=False):
        assert engine_config().panic_when_all_breakers_open is False


def test_forced_sampling_follows_its_setting_up_to_every_greedy_pick():
    assert engine_config().learner_config.forced_share == 0.3
    with override_settings(MOE_FORCED_SAMPLING_SHARE=0.0):
        assert engine_config().learner_config.forced_share == 0.0
    with override_settings(MOE_FORCED_SAMPLING_SHARE=5.0):
        assert engine_config().learner_config.forced_share == 1.0


def test_forced_sampling_rule_out_and_recheck_follow_their_settings():
    cfg = engine_config().learner_config
    assert (cfg.forced_width, cfg.forced_recheck) == (2.5, 500)
    with override_settings(MOE_FORCED_SAMPLING_WIDTH=float("inf"), MOE_FORCED_SAMPLING_RECHECK=50):
        cfg = engine_config().learner_config
    assert (cfg.forced_width, cfg.forced_recheck) == (float("inf"), 50)


def test_exploration_follows_its_settings():
    cfg = engine_config().learner_config
    assert (cfg.epsilon, cfg.epsilon_min, cfg.epsilon_uniform) == (0.05, 0.01, 0.002)
    with override_settings(
        MOE_EXPLORATION_RATE=0.2, MOE_EXPLORATION_MIN=0.3, MOE_EXPLORATION_UNIFORM=0.05
    ):
        cfg = engine_config().learner_config
    # The floor never exceeds the starting rate.
    assert (cfg.epsilon, cfg.epsilon_min, cfg.epsilon_uniform) == (0.2, 0.2, 0.05)

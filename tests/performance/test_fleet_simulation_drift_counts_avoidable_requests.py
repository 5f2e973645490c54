"""The drift phase judges the router on requests it could send elsewhere: a request only the
failing service can serve goes there (or is refused) whatever the router has learned, so it
is left out of the failing service's share (alt profiles: only trainer-gpu fine-tunes)."""

from tests.performance import fleet_simulation as sim


def _request(capabilities: tuple[str, ...]) -> sim.SimRequest:
    return sim.SimRequest(0, "learning", 0.5, 0.5, capabilities, None)


def test_only_requests_another_service_can_serve_count_toward_the_share():
    fleet = sim.Fleet(sim.profile_set("alt"), sim.Objective())
    fine_tuning, plain = _request(("fine-tuning",)), _request(())
    assert fleet.capable("learning", ("fine-tuning",)) == ["trainer-gpu"]
    assert not sim.avoidable(fleet, fine_tuning)
    assert sim.avoidable(fleet, plain)

    stats = sim.PhaseStats()
    for _ in range(3):
        stats.add(fleet, fine_tuning, "trainer-gpu", (True, 300.0, 200))
    stats.add(fleet, plain, "trainer-gpu", (True, 300.0, 200))
    stats.add(fleet, plain, "trainer-cpu", (True, 90.0, 200))
    assert stats.chosen_by_type["learning"] == {"trainer-gpu": 4, "trainer-cpu": 1}
    assert stats.avoidable_by_type["learning"] == {"trainer-gpu": 1, "trainer-cpu": 1}

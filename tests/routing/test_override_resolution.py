"""Override resolution is a pure function: a type-scoped override beats a global one,
expired ones never apply, and the newest global one wins; an override's k never exceeds the
fleet."""

from routing.overrides import ActiveOverride, resolve_override


def override(id, scope="global", request_type="", expires_at=None, strategy="semantic"):
    return ActiveOverride(id, strategy, scope, request_type, None, expires_at)


def test_a_type_scoped_override_beats_a_global_one():
    rows = [override(1), override(2, "request_type", "inference")]
    assert resolve_override(rows, "inference", now=100.0).id == 2
    assert resolve_override(rows, "storage", now=100.0).id == 1


def test_expired_overrides_never_apply():
    rows = [override(1, expires_at=99.0), override(2, "request_type", "etl", expires_at=50.0)]
    assert resolve_override(rows, "etl", now=100.0) is None


def test_the_first_unexpired_global_one_wins():
    rows = [override(3, expires_at=10.0), override(2), override(1)]
    assert resolve_override(rows, "x", now=100.0).id == 2


def test_an_override_k_larger_than_the_fleet_means_every_service(client_api, fleet):
    from routing.models import StrategyOverride
    from routing.runtime import get_router

    StrategyOverride.objects.create(strategy="top_k", scope="global", top_k=8)
    get_router().mark_stale()
    response = client_api.post("/api/v1/route", {"data": {}}, format="json")
    assert response.status_code == 200, response.json()
    assert len(response.json()["selected_services"]) == 4  # the whole fleet of four

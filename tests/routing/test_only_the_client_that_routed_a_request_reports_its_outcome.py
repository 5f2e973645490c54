"""An outcome is reported by the client that routed the request (or an operator, or a holder of
``routing.report_any_outcome``): to any other client the request id is unknown (404, the same
answer as an id never issued), and its attempt changes nothing, so the owner's report still
lands. Otherwise a client holding another's id could teach the learner what did not happen and
make the owner's own report a 409. Checked while the decision is pending (the local store, or
Redis in the PostgreSQL + Redis pass) and once only its database row is left."""

import pytest
from django.contrib.auth.models import Permission

from routing.history import flush_history
from routing.models import RoutingDecision
from routing.runtime import PENDING_KEY, get_router

pytestmark = pytest.mark.django_db(transaction=True)


def _user(django_user_model, name: str):
    return django_user_model.objects.create_user(name, password=f"{name}-pass-1234")


@pytest.fixture
def alice_user(django_user_model):
    return _user(django_user_model, "alice")


@pytest.fixture
def mallory_user(django_user_model):
    return _user(django_user_model, "mallory")


@pytest.fixture
def alice(alice_user, api_for):
    return api_for(alice_user)


@pytest.fixture
def mallory(mallory_user, api_for):
    return api_for(mallory_user)


def _route(api) -> dict:
    response = api.post("/api/v1/route", {"data": {"type": "inference"}}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _batch_item(api) -> dict:
    body = {"requests": [{"data": {"type": "inference"}} for _ in range(3)]}
    response = api.post("/api/v1/route/batch", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"][1]


def _report(api, routed, success=True, service=None):
    body = {
        "service_id": service or routed["selected_services"][0],
        "success": success,
        "latency_ms": 20.0,
    }
    return api.post(f"/api/v1/route/{routed['request_id']}/outcome", body, format="json")


def _forget_pending() -> None:
    """Leave only the database row: the flush wrote it, the pending entry is gone."""
    flush_history()
    router = get_router()
    router._pending.clear()
    if router.redis_client is not None:
        keys = list(router.redis_client.scan_iter(PENDING_KEY + "*"))
        if keys:
            router.redis_client.delete(*keys)


@pytest.mark.parametrize("routed_by", [_route, _batch_item], ids=["single", "batch item"])
@pytest.mark.parametrize("flushed", [False, True], ids=["pending", "flushed"])
def test_another_client_is_told_the_request_is_unknown_and_changes_nothing(
    fleet, alice, alice_user, mallory, routed_by, flushed
):
    routed = routed_by(alice)
    service = routed["selected_services"][0]
    if flushed:
        _forget_pending()
    unknown = mallory.post(
        "/api/v1/route/never-issued/outcome",
        {"service_id": service, "success": True},
        format="json",
    )

    forged = _report(mallory, routed, success=False)
    # not even whether the service was selected is given away
    forged_other = _report(mallory, routed, success=False, service="store-a")

    assert forged.status_code == 404
    assert forged.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert forged_other.status_code == 404
    # the owner's report is the one that lands, once
    owned = _report(alice, routed, success=True)
    assert owned.status_code == 200, owned.content
    assert _report(alice, routed).status_code == 409
    flush_history()
    row = RoutingDecision.objects.get(request_id=routed["request_id"])
    assert (row.success, row.client) == (True, str(alice_user.pk))


def test_a_forged_report_does_not_release_the_lease_or_teach_the_learner(fleet, alice, mallory):
    routed = _route(alice)
    service = routed["selected_services"][0]
    router = get_router()
    learned_before = router.engine.learner.stats()
    assert router.live_states([service])[service]["in_flight"] == 1

    for _ in range(5):
        assert _report(mallory, routed, success=False).status_code == 404

    assert router.live_states([service])[service]["in_flight"] == 1
    assert router.live_states([service])[service]["error_rate"] == 0.0
    assert router.engine.learner.stats()["outcomes"] == learned_before["outcomes"]
    assert _report(alice, routed, success=False).status_code == 200
    assert router.engine.learner.stats()["outcomes"] == learned_before["outcomes"] + 1
    assert router.live_states([service])[service]["in_flight"] == 0


@pytest.mark.parametrize("flushed", [False, True], ids=["pending", "flushed"])
def test_an_operator_and_a_holder_of_report_any_outcome_may_report_for_anyone(
    fleet, alice, mallory, mallory_user, operator_api, flushed
):
    first, second = _route(alice), _route(alice)
    if flushed:
        _forget_pending()
    mallory_user.user_permissions.add(Permission.objects.get(codename="report_any_outcome"))

    assert _report(operator_api, first).status_code == 200
    assert _report(mallory, second).status_code == 200
    # and the owner then finds them reported
    assert _report(alice, first).status_code == 409


def test_a_request_routed_in_process_is_reported_only_in_process(fleet, client_api):
    from routing.core.types import RouteRequest

    router = get_router()
    routed = router.route(RouteRequest(request_type="inference"), None, None)
    body = {"request_id": routed.request_id, "selected_services": routed.decision.selected}

    assert _report(client_api, body).status_code == 404
    result = router.report_outcome(routed.request_id, routed.decision.selected[0], True, 5.0, 200)
    assert result["recorded"] is True


def test_an_entry_written_before_owners_is_reported_in_process_not_a_500(fleet):
    # During a rolling upgrade, a decision an older worker routed has an entry without the
    # owner line: this process (e.g. the proxy) can still report it; clients get a 404.
    router = get_router()
    if router.redis_client is None:
        pytest.skip("pending entries in Redis: the PostgreSQL + Redis pass")
    router.redis_client.set(PENDING_KEY + "old-1", "\ninf-a\n0.5\ninference", ex=60)

    result = router.report_outcome("old-1", "inf-a", True, 5.0, 200)

    assert result["recorded"] is True

"""GET /api/v1/gate/versions: operators and staff see gate versions, newest first, no weights."""

import pytest

from routing.models import GateModel

pytestmark = pytest.mark.django_db

URL = "/api/v1/gate/versions"
EVALUATION = {
    "method": "doubly robust, paired, one-sided normal bound",
    "against": "active version",
    "held_out": 600,
    "usable": 580,
    "candidate": {"ips": 0.71, "snips": 0.705, "dr": 0.72, "ess": 412.3, "n": 580},
    "baseline": {"ips": 0.66, "snips": 0.67, "dr": 0.678, "ess": 530.0, "n": 580},
    "ess": 412.3,
    "improvement": 0.042,
    "std_error": 0.0188,
    "lower_bound": 0.011,
    "confidence": 0.95,
    "better": True,
    "decision": "DR improvement +0.0420, 95% lower bound +0.0110 > 0",
    "activated": True,
    "objective": {"kind": "success_minus_latency", "description": "success minus latency"},
}


def _versions(*numbers, active=None):
    for n in numbers:
        GateModel.objects.create(
            version=n,
            weights=b"x",
            policy_weights=b"y",
            active=n == active,
            notes=f"v{n}",
            validation_metrics={"loss": 0.5},
            evaluation=EVALUATION if n == active else {},
        )


def test_versions_are_listed_newest_first_with_their_evaluation(operator_api):
    # given: created out of order
    _versions(2, 1, 3, active=2)

    # when
    body = operator_api.get(URL).json()

    # then
    assert body["count"] == 3
    assert [v["version"] for v in body["results"]] == [3, 2, 1]
    v2 = body["results"][1]
    assert v2["active"] is True
    assert v2["notes"] == "v2"
    assert v2["validation_metrics"] == {"loss": 0.5}
    assert v2["evaluation"] == EVALUATION
    assert v2["trained_at"]


def test_weights_are_not_exposed(operator_api):
    _versions(1, active=1)

    item = operator_api.get(URL).json()["results"][0]

    assert set(item) == {
        "version",
        "active",
        "trained_at",
        "notes",
        "validation_metrics",
        "evaluation",
    }


def test_the_list_stops_at_fifty_unless_asked_for_more(operator_api):
    _versions(*range(1, 61))

    default = operator_api.get(URL).json()
    more = operator_api.get(URL, {"limit": 60}).json()

    assert default["count"] == 50
    assert default["results"][-1]["version"] == 11
    assert more["count"] == 60


def test_limit_takes_the_newest(operator_api):
    _versions(1, 2, 3)

    body = operator_api.get(URL, {"limit": 2}).json()

    assert [v["version"] for v in body["results"]] == [3, 2]


@pytest.mark.parametrize("limit", ["0", "201", "many", "-1"])
def test_a_bad_limit_is_a_400_naming_it(operator_api, limit):
    response = operator_api.get(URL, {"limit": limit})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["limit"]


def test_staff_may_list_the_versions(staff_api):
    assert staff_api.get(URL).status_code == 200


def test_an_api_client_may_not(client_api):
    assert client_api.get(URL).status_code == 403


def test_anonymous_callers_must_authenticate(anon_api):
    assert anon_api.get(URL).status_code == 401

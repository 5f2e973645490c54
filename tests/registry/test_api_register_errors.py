"""Every bad register body gets a 400 with the error JSON naming the offending field."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.models import Service

pytestmark = pytest.mark.django_db

URL = "/api/v1/services/register"
BODY = {
    "service_id": "svc-a",
    "service_type": "inference",
    "endpoint": "http://127.0.0.1:8101",
    "capabilities": ["analysis"],
    "max_capacity": 10,
}


def post_raw(api, raw: str, content_type: str = "application/json"):
    return api.generic("POST", URL, raw.encode(), content_type=content_type)


def assert_error(response, status: int, *fields: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    for field in fields:
        assert field in error["fields"], error
        assert all(isinstance(m, str) for m in error["fields"][field])
    return error


@pytest.mark.parametrize(
    "change, field",
    [
        ({"service_id": "bad id"}, "service_id"),
        ({"service_id": "register"}, "service_id"),
        ({"service_id": "x" * 65}, "service_id"),
        ({"service_id": 123}, "service_id"),
        ({"service_id": None}, "service_id"),
        ({"service_type": "quantum"}, "service_type"),
        ({"service_type": ["inference"]}, "service_type"),
        ({"endpoint": "ftp://127.0.0.1/"}, "endpoint"),
        ({"endpoint": "http://169.254.169.254/latest/meta-data/"}, "endpoint"),
        ({"endpoint": "http://[fd00:ec2::254]/"}, "endpoint"),
        ({"endpoint": "http://evil.example.com/"}, "endpoint"),
        ({"endpoint": "http://user:pw@127.0.0.1/"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:70000/"}, "endpoint"),
        ({"endpoint": 8101}, "endpoint"),
        ({"capabilities": "analysis"}, "capabilities"),
        ({"capabilities": {"a": 1}}, "capabilities"),
        ({"capabilities": ["ok", "not ok"]}, "capabilities.1"),
        ({"capabilities": [1]}, "capabilities.0"),
        ({"capabilities": [f"c{i}" for i in range(65)]}, "capabilities"),
        ({"max_capacity": 0}, "max_capacity"),
        ({"max_capacity": -5}, "max_capacity"),
        ({"max_capacity": "10"}, "max_capacity"),
        ({"max_capacity": 1.5}, "max_capacity"),
        ({"max_capacity": True}, "max_capacity"),
        ({"max_capacity": 10**30}, "max_capacity"),
        ({"weight": 0}, "weight"),
        ({"weight": -1.0}, "weight"),
        ({"weight": "heavy"}, "weight"),
        ({"weight": False}, "weight"),
        ({"health_path": "health"}, "health_path"),
        ({"health_path": 5}, "health_path"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": "text"}, "metadata"),
        ({"metadata": {"blob": "x" * 20_000}}, "metadata"),
        (
            {"metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}},
            "metadata",
        ),
        ({"surprise": 1}, "surprise"),
        ({"status": "disabled"}, "status"),
    ],
)
def test_a_bad_field_is_named(operator_api, change, field):
    response = operator_api.post(URL, {**BODY, **change}, format="json")
    error = assert_error(response, 400, field)
    assert error["code"] == "validation_error"
    assert not Service.objects.exists()


@pytest.mark.parametrize(
    "missing", ["service_id", "service_type", "endpoint", "capabilities", "max_capacity"]
)
def test_a_missing_required_field_is_named(operator_api, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    assert_error(operator_api.post(URL, body, format="json"), 400, missing)


def test_several_unknown_fields_are_all_named(operator_api):
    response = operator_api.post(URL, {**BODY, "colour": "red", "size": 3}, format="json")
    assert_error(response, 400, "colour", "size")


def test_an_empty_body_names_every_required_field(operator_api):
    response = post_raw(operator_api, "")
    assert_error(response, 400, "service_id", "service_type", "endpoint", "max_capacity")


@pytest.mark.parametrize("raw", ["{not json", '{"service_id": ', "NaN", '{"weight": NaN}'])
def test_a_body_that_is_not_json_is_a_400(operator_api, raw):
    error = assert_error(post_raw(operator_api, raw), 400, "body")
    assert error["code"] == "invalid_json"


@pytest.mark.parametrize("raw", ["[]", json.dumps([BODY]), '"text"', "42", "null", "true"])
def test_a_body_that_is_not_an_object_is_a_400(operator_api, raw):
    assert_error(post_raw(operator_api, raw), 400, "body")


@pytest.mark.parametrize("field", ["weight", "max_capacity"])
def test_a_number_too_large_for_a_float_is_a_400(operator_api, field):
    raw = json.dumps({**BODY, field: "HUGE"}).replace('"HUGE"', "1" + "0" * 400)
    assert_error(post_raw(operator_api, raw), 400)


def test_a_deeply_nested_body_is_a_400_not_a_500(operator_api):
    raw = '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = post_raw(operator_api, raw)
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_a_form_body_is_refused_as_unsupported(operator_api):
    response = post_raw(operator_api, "service_id=svc-a", "application/x-www-form-urlencoded")
    assert_error(response, 415)


def test_a_client_gets_403_before_validation(client_api):
    # Authorisation first: a client learns nothing about what a valid body looks like.
    assert_error(client_api.post(URL, {"junk": 1}, format="json"), 403)


def test_anonymous_gets_401_before_validation(anon_api):
    assert_error(post_raw(anon_api, "{not json"), 401)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.dictionaries(
        st.sampled_from([*BODY, "weight", "health_path", "metadata", "other"]),
        JSON_VALUES,
    ).map(lambda changes: {**BODY, **changes})
)
def test_no_body_makes_it_fail_with_a_server_error(operator_api, body):
    response = operator_api.post(URL, body, format="json")
    assert response.status_code in (200, 201, 400), response.content
    if response.status_code == 400:
        assert_error(response, 400)

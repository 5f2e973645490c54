"""An endpoint with a query, a fragment, a trailing-dot host or upper-case letters is refused.

The router appends the health path and the proxied path to the endpoint and sends the client's
own query, so an endpoint's query or fragment ended up in the middle of a probe URL or was
dropped. Host names are accepted in one spelling: lower case, no trailing dot, as the OpenAPI
pattern documents. The API answers 400 naming ``endpoint``; the admin form shows the error.
"""

import re

import pytest

from registry.api.serializers import endpoint_pattern
from registry.models import Service
from tests.registry.test_admin_service_form import ADD, form_data
from tests.registry.test_api_register_errors import BODY, URL

pytestmark = pytest.mark.django_db


QUERY_OR_FRAGMENT = [
    "http://127.0.0.1:8006/a?b=c",
    "http://127.0.0.1:8006/a?",
    "http://localhost:8006?",
    "http://localhost:8006#frag",
    "http://localhost:8006/v1#",
    "http://localhost:8006/v1?x=1#frag",
]
OTHER_SPELLINGS = [
    "http://localhost.:8006",
    "http://127.0.0.1.:8006/v1",
    "http://LOCALHOST:8006",
    "http://LocalHost:8006/v1",
    "HTTP://localhost:8006",
    "Https://localhost/v1",
]
GOOD = [
    "http://localhost:8006",
    "http://localhost:8006/",
    "http://127.0.0.1:8101/api/v1",
    "https://localhost/v1/models/",
    "http://localhost:8006/a/B_c-d.e~f",
]


def register(api, endpoint: str, service_id: str = "custom_processor"):
    return api.post(URL, {**BODY, "service_id": service_id, "endpoint": endpoint}, format="json")


def assert_endpoint_refused(response) -> list[str]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["endpoint"], error
    return error["fields"]["endpoint"]


@pytest.mark.parametrize("endpoint", QUERY_OR_FRAGMENT)
def test_an_endpoint_with_a_query_or_a_fragment_is_refused(operator_api, endpoint):
    # when
    messages = assert_endpoint_refused(register(operator_api, endpoint))
    # then
    assert "query" in messages[0] and "fragment" in messages[0]
    assert not Service.objects.exists()


@pytest.mark.parametrize("endpoint", OTHER_SPELLINGS)
def test_a_trailing_dot_or_upper_case_scheme_or_host_is_refused(operator_api, endpoint):
    assert_endpoint_refused(register(operator_api, endpoint))
    assert not Service.objects.exists()


@pytest.mark.parametrize("endpoint", QUERY_OR_FRAGMENT + OTHER_SPELLINGS)
def test_re_registering_with_a_refused_endpoint_keeps_the_stored_one(operator_api, endpoint):
    # given
    assert register(operator_api, "http://localhost:8006/v1").status_code == 201
    # when
    assert_endpoint_refused(register(operator_api, endpoint))
    # then
    assert Service.objects.get().endpoint == "http://localhost:8006/v1"


@pytest.mark.parametrize("endpoint", GOOD)
def test_an_endpoint_with_a_path_still_registers_as_written(operator_api, endpoint):
    response = register(operator_api, endpoint)
    assert response.status_code == 201, response.content
    assert response.json()["endpoint"] == endpoint
    assert Service.objects.get().endpoint == endpoint


@pytest.mark.parametrize(
    "hosts, endpoint",
    [
        (["::1"], "http://[::1]:8000/v1"),
        (["2001:db8::1"], "http://[2001:DB8::1]:9000"),  # IPv6 hex digits may be upper case
        (["*"], "https://api.example.org:8443/v1"),
    ],
)
def test_ip_literals_and_other_allowed_hosts_still_register(
    settings, operator_api, hosts, endpoint
):
    settings.MOE_ALLOWED_ENDPOINT_HOSTS = hosts
    assert register(operator_api, endpoint).status_code == 201


@pytest.mark.parametrize("endpoint", GOOD + QUERY_OR_FRAGMENT + OTHER_SPELLINGS)
def test_the_api_accepts_exactly_what_the_documented_pattern_allows(operator_api, endpoint):
    # given: the schema's pattern for the default allow-list
    pattern = endpoint_pattern(["localhost", "127.0.0.1"])
    # when
    response = register(operator_api, endpoint)
    # then
    documented = re.search(pattern, endpoint) is not None
    assert (response.status_code == 201) == documented, (endpoint, response.content)


@pytest.mark.parametrize("endpoint", QUERY_OR_FRAGMENT + OTHER_SPELLINGS)
def test_the_admin_form_refuses_them_too(admin_client, endpoint):
    response = admin_client.post(ADD, form_data(endpoint=endpoint))
    assert response.status_code == 200  # the form again, with errors
    assert "endpoint" in response.context["adminform"].form.errors
    assert not Service.objects.exists()

"""A weight below 1e-6 (5e-324, a denormal, was accepted) is a 400 naming ``weight``.

Weights are relative, so 1e-6 still gives a service a millionth of another's share; below it
the router treats the weight as next to nothing anyway (its cost floors a weight at 1e-9) and
"no traffic" is said with the status. The admin form (the model's validators), the API and
the OpenAPI schema hold the same minimum.
"""

import json
import re

import pytest

from registry.models import Service
from registry.validators import MIN_WEIGHT
from tests.registry.test_api_register_errors import BODY, URL
from tests.registry.test_service_validation import errors_of, valid_service

pytestmark = pytest.mark.django_db

TOO_SMALL = ["5e-324", "1e-300", "1e-7", "9.99999e-7"]


def register_raw(api, weight: str):
    """The body as sent on the wire (JSON numbers like 5e-324 written as they are)."""
    raw = json.dumps(BODY)[:-1] + f', "weight": {weight}}}'
    return api.generic("POST", URL, raw.encode(), content_type="application/json")


@pytest.mark.parametrize("weight", TOO_SMALL)
def test_the_api_refuses_a_weight_below_the_minimum_naming_weight(operator_api, weight):
    # when
    response = register_raw(operator_api, weight)

    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("validation_error", ["weight"])
    assert "1e-06" in error["fields"]["weight"][0]
    assert not Service.objects.exists()


@pytest.mark.parametrize("weight", ["1e-6", "0.000001", "0.5", "1000000"])
def test_the_api_accepts_the_minimum_and_above(operator_api, weight):
    response = register_raw(operator_api, weight)

    assert response.status_code == 201, response.content
    assert Service.objects.get().weight == float(weight)


def test_re_registering_with_a_tiny_weight_keeps_the_stored_one(operator_api):
    assert register_raw(operator_api, "0.25").status_code == 201

    assert register_raw(operator_api, "5e-324").status_code == 400

    assert Service.objects.get().weight == 0.25


@pytest.mark.parametrize("weight", [float(w) for w in TOO_SMALL])
def test_the_model_refuses_it_too(weight):
    assert "weight" in errors_of(valid_service(weight=weight))


def test_the_model_accepts_the_minimum():
    valid_service(weight=MIN_WEIGHT).full_clean()


def test_the_schema_documents_the_minimum(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    weight = schema["components"]["schemas"]["ServiceRegister"]["properties"]["weight"]

    assert weight["minimum"] == MIN_WEIGHT == 1e-6
    assert not weight.get("exclusiveMinimum")
    assert re.search(r"\b1e-06\b", weight["description"])

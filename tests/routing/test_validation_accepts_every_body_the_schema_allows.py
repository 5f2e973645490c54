"""Property: every request body the OpenAPI schema calls valid passes the server's validation.

Bodies are generated from the served schema itself (schemathesis's positive mode, Hypothesis
underneath), and handed to the validators each endpoint runs: ``routing.validation`` for the
route endpoints, the strict serializers for the others. A limit in the validation table that
the schema does not carry (a length, a range, an enum, a required field) shows up here as a
rejected schema-valid body, without a server.
"""

import json

import orjson
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings

from moe_project.api_errors import APIError
from registry.api.serializers import ServiceRegisterSerializer
from routing.api.serializers import OutcomeSerializer, OverrideCreateSerializer
from routing.validation import parse_batch_body, parse_route_body

EXAMPLES = 150


@pytest.fixture(scope="module")
def api_schema():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(raw)


def on_the_wire(body):
    """The body as the server's parser hands it over (orjson reads huge integers as floats)."""
    return orjson.loads(json.dumps(body))


def bodies(api_schema, path: str, method: str = "POST"):
    return api_schema[path][method].as_strategy().map(lambda case: on_the_wire(case.body))


def check_every_body(strategy, accept) -> None:
    @given(strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(body):
        accept(body)

    run()


def serializer_accepts(serializer_class):
    def accept(body):
        serializer = serializer_class(data=body)
        assert serializer.is_valid(), (body, serializer.errors)

    return accept


def validation_accepts(parse):
    def accept(body):
        try:
            parse(body)
        except APIError as exc:
            pytest.fail(f"schema-valid body refused: {body!r}: {exc.fields}")

    return accept


def test_route_bodies(api_schema):
    check_every_body(bodies(api_schema, "/api/v1/route"), validation_accepts(parse_route_body))


def test_batch_bodies(api_schema):
    check_every_body(
        bodies(api_schema, "/api/v1/route/batch"), validation_accepts(parse_batch_body)
    )


def test_outcome_bodies(api_schema):
    check_every_body(
        bodies(api_schema, "/api/v1/route/{request_id}/outcome"),
        serializer_accepts(OutcomeSerializer),
    )


def test_override_bodies(api_schema):
    check_every_body(
        bodies(api_schema, "/api/v1/strategy/override"),
        serializer_accepts(OverrideCreateSerializer),
    )


def test_service_registration_bodies(api_schema):
    check_every_body(
        bodies(api_schema, "/api/v1/services/register"),
        serializer_accepts(ServiceRegisterSerializer),
    )

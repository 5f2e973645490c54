"""The model's strategy choices leave the OpenAPI schema as it was: one StrategyEnum for what
a client may send, and a plain string for what an override row holds (a row written by
another version may name a strategy this one does not know)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_override_schemas_strategies(client):
    schemas = client.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]

    assert schemas["Override"]["properties"]["strategy"] == {"type": "string", "readOnly": True}
    assert not [name for name in schemas if name.startswith("Override") and "Enum" in name]
    for variant in schemas["OverrideCreateRequest"]["oneOf"]:
        assert variant["properties"]["strategy"] == {"$ref": "#/components/schemas/StrategyEnum"}

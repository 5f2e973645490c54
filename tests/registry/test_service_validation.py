"""Service.full_clean() refuses what the router must never store (admin and API share it)."""

import pytest
from django.core.exceptions import ValidationError

from registry.models import Capability, Service


def valid_service(**overrides) -> Service:
    fields = {
        "service_id": "svc-a",
        "service_type": "inference",
        "endpoint": "http://127.0.0.1:8101",
        "max_capacity": 10,
    }
    return Service(**{**fields, **overrides})


def errors_of(service: Service) -> dict:
    with pytest.raises(ValidationError) as info:
        service.full_clean()
    return info.value.message_dict


@pytest.mark.django_db
def test_a_valid_service_passes_with_defaults():
    service = valid_service()
    service.full_clean()
    assert (service.weight, service.status, service.health) == (1.0, "active", "unknown")
    assert (service.health_path, service.metadata) == ("/health", {})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "service_id", ["bad id", "svc/a", "-leading-dash", "", "naïve", "a" * 65, "register"]
)
def test_it_refuses_a_service_id_that_is_not_a_slug(service_id):
    assert "service_id" in errors_of(valid_service(service_id=service_id))


@pytest.mark.django_db
@pytest.mark.parametrize("capacity", [0, -1, 10_000_001])
def test_it_refuses_a_capacity_out_of_range(capacity):
    assert "max_capacity" in errors_of(valid_service(max_capacity=capacity))


@pytest.mark.django_db
@pytest.mark.parametrize("weight", [-1.0, 0.0, float("nan"), float("inf"), 2_000_000.0, "heavy"])
def test_it_refuses_a_weight_that_is_not_positive_and_finite(weight):
    assert "weight" in errors_of(valid_service(weight=weight))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://127.0.0.1/files",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://example.com:8000",
        "http://user:secret@127.0.0.1:8000",
    ],
)
def test_it_refuses_a_bad_endpoint(endpoint):
    assert "endpoint" in errors_of(valid_service(endpoint=endpoint))


@pytest.mark.django_db
def test_a_star_allow_list_still_refuses_metadata_addresses(settings):
    # given
    settings.MOE_ALLOWED_ENDPOINT_HOSTS = ["*"]
    # when / then
    valid_service(endpoint="https://anything.example.org").full_clean()
    assert "endpoint" in errors_of(valid_service(endpoint="http://169.254.169.254/"))


@pytest.mark.django_db
def test_it_refuses_an_unknown_service_type():
    assert "service_type" in errors_of(valid_service(service_type="quantum"))


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["paused", ""])
def test_it_refuses_an_unknown_status(status):
    assert "status" in errors_of(valid_service(status=status))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["health", "//evil.example/health", "/he alth", "/h#x"])
def test_it_refuses_a_health_path_that_is_not_an_absolute_path(path):
    assert "health_path" in errors_of(valid_service(health_path=path))


NINE_LEVELS_DEEP = {"1": {"2": {"3": {"4": {"5": {"6": {"7": {"8": {"9": 1}}}}}}}}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "metadata", [["a", "list"], "text", {"blob": "x" * 20_000}, NINE_LEVELS_DEEP]
)
def test_it_refuses_metadata_that_is_not_a_small_json_object(metadata):
    assert "metadata" in errors_of(valid_service(metadata=metadata))


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["has space", "dots.not.allowed", "", "x" * 65])
def test_a_capability_name_must_be_a_slug(name):
    with pytest.raises(ValidationError) as info:
        Capability(name=name).full_clean()
    assert "name" in info.value.message_dict


@pytest.mark.django_db
def test_models_read_as_their_names():
    assert str(valid_service()) == "svc-a"
    assert str(Capability(name="analysis")) == "analysis"

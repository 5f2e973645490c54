"""The database refuses impossible rows even when validation is bypassed (QuerySet.update)."""

import pytest
from django.db import IntegrityError, transaction

from registry.models import RegistryVersion, Service


@pytest.fixture
def service(db):
    return Service.objects.create(
        service_id="svc-a",
        service_type="inference",
        endpoint="http://127.0.0.1:8101",
        max_capacity=10,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"max_capacity": 0},
        {"weight": 0.0},
        {"weight": -1.5},
        {"weight": 5_000_000.0},
        {"weight": float("nan")},
        {"status": "paused"},
        {"health": "fine"},
        {"service_type": "quantum"},
    ],
)
def test_the_database_refuses_an_impossible_service(service, change):
    with pytest.raises(IntegrityError), transaction.atomic():
        Service.objects.filter(pk=service.pk).update(**change)


def test_the_registry_version_is_a_single_row(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        RegistryVersion.objects.create(id=2)

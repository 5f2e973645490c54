"""set_status drains, enables and disables services in bulk, bumping the version once."""

import pytest

from registry.models import Service
from registry.services import current_registry_version, set_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    for service_id in ("a", "b", "c"):
        Service.objects.create(
            service_id=service_id,
            service_type="inference",
            endpoint="http://127.0.0.1:8101",
            max_capacity=4,
        )


def statuses() -> dict:
    return dict(Service.objects.values_list("service_id", "status"))


def test_it_takes_service_ids(fleet):
    assert set_status(["a", "b"], "draining") == 2
    assert statuses() == {"a": "draining", "b": "draining", "c": "active"}


def test_it_takes_a_single_id_as_a_string(fleet):
    assert set_status("c", "disabled") == 1
    assert statuses()["c"] == "disabled"


def test_it_takes_a_queryset(fleet):
    assert set_status(Service.objects.filter(service_id__in=["a", "c"]).distinct(), "disabled")
    assert statuses() == {"a": "disabled", "b": "active", "c": "disabled"}


def test_it_bumps_the_version_once_for_the_batch(fleet):
    before = current_registry_version()
    set_status(["a", "b", "c"], "draining")
    assert current_registry_version() == before + 1


def test_it_changes_nothing_when_the_status_is_already_set(fleet):
    before = current_registry_version()
    assert set_status(["a", "b"], "active") == 0
    assert current_registry_version() == before


def test_it_refuses_an_unknown_status(fleet):
    with pytest.raises(ValueError):
        set_status(["a"], "paused")
    assert set(statuses().values()) == {"active"}

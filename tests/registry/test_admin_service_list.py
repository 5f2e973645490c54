"""The Service changelist: columns, filters and search an operator relies on, without N+1."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Capability, Service

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/registry/service/"


@pytest.fixture
def fleet():
    vision = Capability.objects.create(name="vision")
    storage = Capability.objects.create(name="storage")
    a = Service.objects.create(
        service_id="vision-a",
        service_type="inference",
        endpoint="http://127.0.0.1:8101",
        max_capacity=10,
        health="healthy",
    )
    a.capabilities.set([vision])
    b = Service.objects.create(
        service_id="store-b",
        service_type="storage",
        endpoint="http://127.0.0.1:8102",
        max_capacity=50,
        status="draining",
    )
    b.capabilities.set([storage])
    return {"vision": vision, "storage": storage}


def listed(response) -> set[str]:
    return {service.service_id for service in response.context["cl"].result_list}


def test_the_changelist_shows_the_operator_columns(admin_client, fleet):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("vision-a", "http://127.0.0.1:8101", "inference", "draining", "healthy"):
        assert text in html
    assert listed(response) == {"vision-a", "store-b"}
    for header in ("Service type", "Endpoint", "Status", "Health", "Max capacity", "Weight"):
        assert f">{header}<" in html
    assert ">Capabilities<" in html and ">Last seen<" in html
    assert "vision</td>" in html  # a row's capability names


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status__exact=draining", {"store-b"}),
        ("service_type__exact=inference", {"vision-a"}),
        ("health__exact=healthy", {"vision-a"}),
        ("health__exact=unknown", {"store-b"}),
    ],
)
def test_the_changelist_filters(admin_client, fleet, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert listed(response) == expected


def test_the_changelist_filters_by_capability(admin_client, fleet):
    response = admin_client.get(f"{CHANGELIST}?capabilities__id__exact={fleet['storage'].pk}")
    assert listed(response) == {"store-b"}


@pytest.mark.parametrize(
    "q, expected", [("vision", {"vision-a"}), ("8102", {"store-b"}), ("storage", {"store-b"})]
)
def test_the_changelist_searches_ids_endpoints_and_capabilities(admin_client, fleet, q, expected):
    response = admin_client.get(CHANGELIST, {"q": q})
    assert listed(response) == expected


def test_the_changelist_lists_capabilities_without_a_query_per_row(admin_client, fleet):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(queries)

    few = count_queries()
    for i in range(15):
        Service.objects.create(
            service_id=f"extra-{i}",
            service_type="custom",
            endpoint="http://127.0.0.1:8110",
            max_capacity=1,
        ).capabilities.add(fleet["vision"])
    assert count_queries() == few


def test_an_operator_with_staff_access_uses_the_registry_admin(client, django_user_model):
    # given: the demo-operator shape, staff + operators group (no superuser)
    from django.conf import settings
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=settings.MOE_OPERATOR_GROUP))
    client.force_login(user)
    # then
    assert client.get(CHANGELIST).status_code == 200
    assert client.get("/admin/registry/capability/").status_code == 200
    assert client.get(f"{CHANGELIST}add/").status_code == 200


def test_a_user_who_is_not_an_operator_cannot_see_it(client, django_user_model):
    # Staff are operators (registry.permissions.is_operator); a user who is neither staff nor
    # holds operate_router is not, whatever model permissions they hold.
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("s", password="x")
    user.user_permissions.add(Permission.objects.get(codename="view_service"))
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_capability_changelist_counts_services(admin_client, fleet):
    Service.objects.get(service_id="store-b").capabilities.add(fleet["vision"])
    response = admin_client.get("/admin/registry/capability/")
    assert response.status_code == 200
    counts = {c.name: c._service_count for c in response.context["cl"].result_list}
    assert counts == {"storage": 1, "vision": 2}

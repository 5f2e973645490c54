"""One rule for operators: whoever the API treats as one uses the admin and the dashboard too.

An operator is staff or a member of the operators group (registry.permissions.is_operator);
each persona logs in through the admin's own login form, as a browser does.
"""

import pytest

from registry.models import Service
from tests.registry.test_the_demo_operator_can_reach_every_admin_page_it_needs import (
    OPERATOR_PAGES,
)

pytestmark = pytest.mark.django_db

# The conftest personas' passwords.
PASSWORDS = {"op": "op-pass-1234", "staff": "staff-pass-1234", "client": "client-pass-1234"}
OPERATOR_PERSONAS = ["operator", "staff"]  # group only, staff only


@pytest.fixture
def service():
    return Service.objects.create(
        service_id="llm-code",
        service_type="inference",
        endpoint="http://127.0.0.1:8102",
        max_capacity=32,
    )


def log_in(client, user, next_url="/admin/"):
    return client.post(
        f"/admin/login/?next={next_url}",
        {"username": user.username, "password": PASSWORDS[user.username], "next": next_url},
    )


@pytest.fixture(params=OPERATOR_PERSONAS)
def persona(request):
    return request.getfixturevalue(request.param)


def test_an_operator_logs_in_to_the_admin_and_sees_every_operator_page(client, persona):
    # when
    response = log_in(client, persona)
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    index = client.get("/admin/")
    assert index.status_code == 200
    html = index.content.decode()
    for name, url in OPERATOR_PAGES.items():
        assert f'href="{url}"' in html, name
        assert client.get(url).status_code == 200, url


def test_an_operator_edits_a_service_and_runs_the_status_actions(client, persona, service):
    log_in(client, persona)
    change_url = f"/admin/registry/service/{service.pk}/change/"

    page = client.get(change_url)
    assert page.status_code == 200
    assert page.context["has_change_permission"]
    assert 'name="weight"' in page.content.decode()  # an editable form, not a read-only view

    client.post(
        "/admin/registry/service/",
        {"action": "drain_services", "_selected_action": [service.pk], "index": 0},
    )
    service.refresh_from_db()
    assert service.status == "draining"


def test_an_operator_reaches_the_dashboard_through_the_login_it_is_sent_to(client, persona):
    # given: the dashboard sends an anonymous browser to the admin login
    sent_to = client.get("/dashboard/")["Location"]
    assert sent_to == "/admin/login/?next=/dashboard/"
    # when
    response = log_in(client, persona, next_url="/dashboard/")
    # then
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_a_client_user_cannot_log_in_to_the_admin(client, client_user):
    response = log_in(client, client_user)

    assert response.status_code == 200  # the form again, with an error
    assert "operator account" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_client_user_with_a_session_is_refused_everywhere(client, client_user, service):
    client.force_login(client_user)

    for url in ("/admin/", f"/admin/registry/service/{service.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    assert client.get("/dashboard/").status_code == 403
    client.post(
        "/admin/registry/service/",
        {"action": "drain_services", "_selected_action": [service.pk], "index": 0},
    )
    service.refresh_from_db()
    assert service.status == "active"


def test_the_admin_keeps_its_own_limits_for_a_staff_only_operator(client, staff):
    # Operators hold the operator permissions, no more: history stays read-only, gate
    # versions are not added by hand, users are not theirs to manage.
    log_in(client, staff)

    assert client.get("/admin/routing/routingdecision/add/").status_code == 403
    assert client.get("/admin/routing/gatemodel/add/").status_code == 403
    assert client.get("/admin/auth/user/").status_code == 403

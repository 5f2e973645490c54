"""GET /dashboard/: operators only, through the admin login; the page needs no build step."""

import json

import pytest

pytestmark = pytest.mark.django_db


def page_config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="dashboard-config" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_anonymous_users_are_sent_to_the_admin_login(client):
    response = client.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


def test_an_operator_gets_the_page_with_its_endpoints(client, operator):
    client.force_login(operator)

    response = client.get("/dashboard/")

    assert response.status_code == 200
    config = page_config(response)
    assert config["wsPath"] == "/ws/routing"
    assert config["servicesUrl"] == "/api/v1/services"
    assert config["metricsUrl"] == "/api/v1/metrics"
    assert config["pollMs"] == 2000


def test_staff_may_see_it_too(client, staff):
    client.force_login(staff)

    assert client.get("/dashboard/").status_code == 200


def test_a_user_who_is_not_an_operator_is_forbidden(client, client_user):
    client.force_login(client_user)

    assert client.get("/dashboard/").status_code == 403


def test_the_page_loads_nothing_from_elsewhere(client, staff):
    client.force_login(staff)

    html = client.get("/dashboard/").content.decode()

    assert "<script src" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert 'src="http' not in html and 'href="http' not in html

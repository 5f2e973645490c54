"""Every answer under /api/v1/ is the API's JSON, including the odd ones a client meets by
mistake: another method on ``ping`` (a plain Django view: CSRF would answer an HTML 403), and
the token endpoints without their trailing slash (every other endpoint has none; Django would
answer a POST there with an HTML redirect), which work at both addresses."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_another_method_on_ping_is_a_json_405(anon_api, method):
    response = getattr(anon_api, method)("/api/v1/ping", {}, format="json")

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert anon_api.get("/api/v1/ping").json() == {"ok": True}


def test_the_token_endpoints_answer_without_the_trailing_slash(anon_api, client_user):
    login = {"username": "client", "password": "client-pass-1234"}

    tokens = anon_api.post("/api/v1/auth/token", login, format="json")
    assert tokens.status_code == 200, tokens.content
    refreshed = anon_api.post(
        "/api/v1/auth/token/refresh", {"refresh": tokens.json()["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200
    verified = anon_api.post(
        "/api/v1/auth/token/verify", {"token": refreshed.json()["access"]}, format="json"
    )
    assert (verified.status_code, verified.json()) == (200, {})
    wrong = anon_api.post("/api/v1/auth/token", {**login, "password": "nope"}, format="json")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "not_authenticated"

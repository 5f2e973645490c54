"""A bad token gets a 401 whose message is a sentence, not Python's repr of simplejwt's dict;
the token endpoints refuse unknown fields, wrong types and non-object bodies with a 400 naming
them, as every other endpoint does; a good login, refresh and verify still work."""

import json

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

pytestmark = pytest.mark.django_db

OBTAIN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
VERIFY = "/api/v1/auth/token/verify/"
LOGIN = {"username": "client", "password": "client-pass-1234"}


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def assert_plain_401(response, message):
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert error["message"] == message
    assert "ErrorDetail" not in error["message"]
    assert error["fields"] == {}


def assert_400_naming(response, field):
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]
    assert "ErrorDetail" not in error["message"]


@pytest.mark.parametrize(
    "header, message",
    [
        ("Bearer abc", "Token is invalid"),
        ("Bearer ", "Authorization header must contain two space-delimited values"),
    ],
)
def test_a_bad_authorization_header_gets_a_plain_message(anon_api, header, message):
    anon_api.credentials(HTTP_AUTHORIZATION=header)

    assert_plain_401(anon_api.get("/api/v1/services"), message)
    assert_plain_401(anon_api.post("/api/v1/route", {"data": {}}, format="json"), message)


@pytest.mark.parametrize(
    "path, body",
    [(REFRESH, {"refresh": "abc"}), (VERIFY, {"token": "abc"})],
    ids=["refresh", "verify"],
)
def test_a_bad_token_sent_to_a_token_endpoint_gets_a_plain_message(anon_api, path, body):
    assert_plain_401(post(anon_api, path, body), "Token is invalid")


def test_an_access_token_is_not_taken_for_a_refresh_token(anon_api, client_user):
    access = str(RefreshToken.for_user(client_user).access_token)

    assert_plain_401(post(anon_api, REFRESH, {"refresh": access}), "Token has wrong type")


def test_a_wrong_login_is_still_a_401(anon_api, client_user):
    response = post(anon_api, OBTAIN, {**LOGIN, "password": "wrong"})

    assert_plain_401(response, "No active account found with the given credentials")


@pytest.mark.parametrize(
    "path, body, field",
    [
        (OBTAIN, {**LOGIN, "foo": 1}, "foo"),
        (REFRESH, {"refresh": "<refresh>", "x": 1}, "x"),
        (REFRESH, {"refresh": "<refresh>", "access": "a"}, "access"),
        (VERIFY, {"token": "<refresh>", "x": 1}, "x"),
    ],
    ids=["obtain", "refresh", "refresh-with-access", "verify"],
)
def test_an_unknown_field_is_refused_by_name(anon_api, client_user, path, body, field):
    refresh = str(RefreshToken.for_user(client_user))
    body = {key: refresh if value == "<refresh>" else value for key, value in body.items()}

    response = post(anon_api, path, body)

    assert_400_naming(response, field)
    assert response.json()["error"]["fields"][field] == ["Unknown field."]


@pytest.mark.parametrize(
    "path, body, field",
    [
        (OBTAIN, {"username": 1, "password": "x"}, "username"),
        (OBTAIN, {"username": "client", "password": 1234}, "password"),
        (REFRESH, {"refresh": 5}, "refresh"),
        (VERIFY, {"token": 1}, "token"),
        (VERIFY, {"token": ["abc"]}, "token"),
    ],
    ids=["username", "password", "refresh", "token", "token-list"],
)
def test_a_wrongly_typed_field_is_a_400_naming_it(anon_api, client_user, path, body, field):
    response = post(anon_api, path, body)

    assert_400_naming(response, field)
    assert response.json()["error"]["fields"][field] == ["Must be a string."]


@pytest.mark.parametrize("path", [OBTAIN, REFRESH, VERIFY])
@pytest.mark.parametrize("body", [[], None, "x", 1], ids=["array", "null", "string", "number"])
def test_a_body_that_is_not_an_object_is_a_400_naming_body(anon_api, path, body):
    response = post(anon_api, path, body)

    assert_400_naming(response, "body")
    assert response.json()["error"]["fields"]["body"] == ["Expected a JSON object."]


def test_a_login_refresh_and_verify_still_work(anon_api, client_user):
    tokens = post(anon_api, OBTAIN, LOGIN)
    assert tokens.status_code == 200
    assert set(tokens.json()) == {"access", "refresh"}

    refreshed = post(anon_api, REFRESH, {"refresh": tokens.json()["refresh"]})
    assert refreshed.status_code == 200
    access = refreshed.json()["access"]

    verified = post(anon_api, VERIFY, {"token": access})
    assert verified.status_code == 200
    assert verified.json() == {}

    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert anon_api.get("/api/v1/services").status_code == 200


def test_a_password_with_spaces_around_it_logs_in_as_typed(anon_api, django_user_model):
    # The admin login keeps such a password whole; the token endpoint must take it as typed.
    django_user_model.objects.create_user("spaced", password="  pass phrase 1234 ")

    typed = post(anon_api, OBTAIN, {"username": "spaced", "password": "  pass phrase 1234 "})
    trimmed = post(anon_api, OBTAIN, {"username": "spaced", "password": "pass phrase 1234"})

    assert typed.status_code == 200
    assert_plain_401(trimmed, "No active account found with the given credentials")

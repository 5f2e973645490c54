"""Remembered tokens still expire, and a tampered token is never taken for a remembered one."""

import datetime
import time

import pytest
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db


def test_an_expired_token_is_refused_even_after_it_was_remembered(api_for, client_user, fleet):
    token = AccessToken.for_user(client_user)
    # "exp" is whole seconds, rounded down: a 2 s lifetime leaves at least 1 s of validity.
    token.set_exp(lifetime=datetime.timedelta(seconds=2))
    client = api_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post("/api/v1/route", {"data": {}}, format="json").status_code == 200

    time.sleep(max(0.0, token["exp"] - time.time()) + 0.2)

    assert client.post("/api/v1/route", {"data": {}}, format="json").status_code == 401


def test_a_tampered_token_is_refused(api_for, client_user, fleet):
    token = str(AccessToken.for_user(client_user))
    client = api_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post("/api/v1/route", {"data": {}}, format="json").status_code == 200

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token[:-2]}xx")

    assert client.post("/api/v1/route", {"data": {}}, format="json").status_code == 401

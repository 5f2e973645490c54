"""Shared fixtures: personas for authorisation tests and API clients that carry their JWT.

Personas (as in healthchecks' base test case): ``operator`` (member of the operators group),
``staff`` (is_staff, which also makes an operator), ``client_user`` (authenticated API client,
no operator rights) and anonymous.
"""

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.3 s per persona; tests do not need a slow hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def operator(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("op", password="op-pass-1234")
    user.groups.add(Group.objects.get(name=settings.MOE_OPERATOR_GROUP))
    return user


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-pass-1234", is_staff=True)


@pytest.fixture
def client_user(django_user_model):
    return django_user_model.objects.create_user("client", password="client-pass-1234")


@pytest.fixture
def operator_api(operator) -> APIClient:
    return _api_client_for(operator)


@pytest.fixture
def staff_api(staff) -> APIClient:
    return _api_client_for(staff)


@pytest.fixture
def client_api(client_user) -> APIClient:
    return _api_client_for(client_user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_for():
    """Build an API client for any user (or None for anonymous)."""
    return _api_client_for

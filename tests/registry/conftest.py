"""Registry test fixtures."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The personas are created per test; PBKDF2 would spend ~0.3 s on each password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

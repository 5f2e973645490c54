"""What a test needs from the machine: under CI a missing requirement fails the test (CI sets
it up: PostgreSQL, Redis, Chromium, wrk), elsewhere it skips it."""

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Fail under CI (the requirement is part of the test setup), skip elsewhere."""
    if under_ci():
        pytest.fail(f"required for this test under CI: {reason}", pytrace=False)
    pytest.skip(reason)

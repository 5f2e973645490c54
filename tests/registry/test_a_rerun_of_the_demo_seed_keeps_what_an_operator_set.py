"""``seed_demo_fleet`` runs on every ``make run`` of the embedded default. What an operator set
on the demo operator in admin stands: a deactivated demo operator is not re-activated, and a
password changed there is not reset to the published default. Only an explicit
``MOE_DEMO_PASSWORD`` sets the password of an existing demo operator (rotation)."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from registry.management.commands.seed_demo_fleet import DEFAULT_DEMO_PASSWORD, DEMO_USERNAME

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo_fleet", stdout=out)
    return out.getvalue()


def operator():
    return get_user_model().objects.get(username=DEMO_USERNAME)


def test_a_deactivated_demo_operator_stays_deactivated(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    seed()
    user = operator()
    user.is_active = False
    user.save()

    output = seed()

    assert operator().is_active is False
    assert "deactivated" in output and "left as it is" in output


def seeded_with_a_password_changed_in_admin(monkeypatch) -> None:
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    seed()
    user = operator()
    user.set_password("chosen-by-the-operator-77")
    user.save()


def test_a_password_changed_in_admin_is_not_reset_to_the_published_one(monkeypatch):
    seeded_with_a_password_changed_in_admin(monkeypatch)

    output = seed()

    user = operator()
    assert user.check_password("chosen-by-the-operator-77")
    assert not user.check_password(DEFAULT_DEMO_PASSWORD)
    assert "password changed" in output and "MOE_DEMO_PASSWORD" in output


def test_an_explicit_password_still_rotates_it(monkeypatch):
    seeded_with_a_password_changed_in_admin(monkeypatch)

    monkeypatch.setenv("MOE_DEMO_PASSWORD", "rotated-by-env-88")
    output = seed()

    assert operator().check_password("rotated-by-env-88")
    assert "left as it is" not in output

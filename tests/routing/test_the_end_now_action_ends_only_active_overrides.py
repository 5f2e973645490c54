"""The override list's "End the selected overrides now" ends and counts only the selected
overrides still in force; ended and expired ones keep when they stopped applying."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.services import current_registry_version
from routing.models import StrategyOverride

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/routing/strategyoverride/"


@pytest.fixture
def operator_admin(client, operator):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    return client


def end_now(client, overrides):
    return client.post(
        CHANGELIST,
        {"action": "end_now", "_selected_action": [o.pk for o in overrides], "index": 0},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_counts_only_the_overrides_it_ended(operator_admin):
    # given: two active overrides, one ended yesterday, one expired an hour ago
    now = timezone.now()
    active = [StrategyOverride.objects.create(strategy="semantic", scope="global") for _ in "ab"]
    ended = StrategyOverride.objects.create(
        strategy="semantic", scope="global", ended_at=now - timedelta(days=1)
    )
    expired = StrategyOverride.objects.create(
        strategy="semantic", scope="global", expires_at=now - timedelta(hours=1)
    )

    # when
    response = end_now(operator_admin, [*active, ended, expired])

    # then
    assert messages_of(response) == ["Ended 2 overrides. 2 were no longer active."]
    for override in active:
        override.refresh_from_db()
        assert override.ended_at is not None
    ended.refresh_from_db()
    expired.refresh_from_db()
    assert ended.ended_at == now - timedelta(days=1)
    assert expired.ended_at is None


def test_it_says_so_when_none_was_active(operator_admin):
    expired = StrategyOverride.objects.create(
        strategy="semantic", scope="global", expires_at=timezone.now() - timedelta(hours=1)
    )
    before = current_registry_version()

    response = end_now(operator_admin, [expired])

    assert messages_of(response) == ["None of the selected overrides was active."]
    assert current_registry_version() == before  # nothing changed: no worker reloads

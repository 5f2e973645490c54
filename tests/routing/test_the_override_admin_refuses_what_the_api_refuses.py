"""The strategy override add form refuses what POST /api/v1/strategy/override refuses, with a
message on the field at fault, and saves nothing; an accepted one still saves."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from routing.models import StrategyOverride

pytestmark = pytest.mark.django_db

ADD = "/admin/routing/strategyoverride/add/"


@pytest.fixture
def operator_admin(client, operator):
    # the demo operator's shape: staff, in the operators group, not a superuser
    operator.is_staff = True
    operator.save()
    assert operator.groups.filter(name=settings.MOE_OPERATOR_GROUP).exists()
    client.force_login(operator)
    return client


def form_data(expires_at=None, **overrides) -> dict:
    data = {
        "strategy": "semantic",
        "scope": "global",
        "request_type": "",
        "top_k": "",
        "reason": "incident 42",
        "expires_at_0": "",
        "expires_at_1": "",
        "ended_at_0": "",
        "ended_at_1": "",
        "_save": "Save",
    }
    if expires_at is not None:
        local = timezone.localtime(expires_at)
        data["expires_at_0"] = local.strftime("%Y-%m-%d")
        data["expires_at_1"] = local.strftime("%H:%M:%S")
    return {**data, **overrides}


def field_errors(response, field: str) -> list[str]:
    assert response.status_code == 200, "the form was accepted"
    return list(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.parametrize(
    "field, data, message",
    [
        ("strategy", {"strategy": "bogus"}, "Select a valid choice. bogus is not one"),
        ("top_k", {"top_k": "0"}, "greater than or equal to 1"),
        ("top_k", {"top_k": "9"}, "less than or equal to 8"),
        (
            "request_type",
            {"scope": "global", "request_type": "analysis"},
            "Must be empty when scope is global.",
        ),
        ("request_type", {"scope": "request_type"}, "Required when scope is request_type."),
        (
            "request_type",
            {"scope": "request_type", "request_type": "   "},
            "Required when scope is request_type.",
        ),
    ],
)
def test_the_add_form_names_the_field_at_fault(operator_admin, field, data, message):
    response = operator_admin.post(ADD, form_data(**data))

    errors = field_errors(response, field)
    assert any(message in e for e in errors), errors
    assert "Constraint" not in response.content.decode()
    assert not StrategyOverride.objects.exists()


def test_a_new_override_must_expire_in_the_future(operator_admin):
    response = operator_admin.post(ADD, form_data(timezone.now() - timedelta(minutes=5)))

    assert field_errors(response, "expires_at")[0].startswith("Must be in the future")
    assert not StrategyOverride.objects.exists()


def test_a_new_override_expires_within_the_apis_thirty_days(operator_admin):
    response = operator_admin.post(ADD, form_data(timezone.now() + timedelta(days=31)))

    assert field_errors(response, "expires_at")[0].startswith("Must be at most 30 days ahead")
    assert not StrategyOverride.objects.exists()


def test_a_valid_override_with_an_expiry_is_saved(operator_admin, operator):
    expires_at = timezone.now() + timedelta(hours=1)

    response = operator_admin.post(
        ADD, form_data(expires_at, scope="request_type", request_type="analysis", top_k="8")
    )

    assert response.status_code == 302
    saved = StrategyOverride.objects.get()
    assert (saved.scope, saved.request_type, saved.top_k) == ("request_type", "analysis", 8)
    assert saved.created_by == operator
    assert saved.is_active()


def test_an_expired_override_can_still_be_edited_without_touching_its_expiry(operator_admin):
    # given: an override that expired an hour ago
    expired = timezone.now() - timedelta(hours=1)
    override = StrategyOverride.objects.create(
        strategy="semantic", scope="global", expires_at=expired
    )

    # when: an operator writes down why, leaving the expiry as it was
    response = operator_admin.post(
        f"/admin/routing/strategyoverride/{override.pk}/change/",
        form_data(expired.replace(microsecond=0), reason="post-mortem: see incident 42"),
    )

    # then
    assert response.status_code == 302
    override.refresh_from_db()
    assert override.reason == "post-mortem: see incident 42"

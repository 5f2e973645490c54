"""Gate versions in admin: the list shows the held-out figures training stores, and activating
a version its off-policy evaluation refused takes a confirmation that says why it was refused."""

import re

import pytest
from django.utils import timezone

from routing.models import GateModel

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/routing/gatemodel/"

# What routing.training stores: routing.core.gate.evaluate_gate's figures, and
# routing.core.offpolicy.compare's verdict on a candidate with too little support.
VALIDATION = {"examples": 120, "loss": 0.6131, "agreement_on_good": 0.8125, "mean_reward": 0.7}
REFUSED = {
    "method": "doubly robust, paired, one-sided normal bound",
    "against": "active version",
    "ess": 2.0,
    "improvement": 0.031,
    "std_error": 0.04,
    "lower_bound": -0.0348,
    "confidence": 0.95,
    "better": False,
    "decision": "ESS 2 < 30: too little support",
    "activated": False,
}


@pytest.fixture
def operator_admin(client, operator):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    return client


@pytest.fixture
def versions():
    approved = {
        **REFUSED,
        "ess": 412.0,
        "lower_bound": 0.011,
        "better": True,
        "decision": "DR improvement +0.0310, 95% lower bound +0.0110 > 0",
        "activated": True,
    }
    active = GateModel.objects.create(version=1, weights=b"x", active=True, evaluation=approved)
    refused = GateModel.objects.create(
        version=2,
        weights=b"x",
        validation_metrics=VALIDATION,
        evaluation=REFUSED,
        trained_at=timezone.now(),
    )
    return active, refused


def activate(client, version, **extra):
    return client.post(
        CHANGELIST,
        {"action": "activate", "_selected_action": [version.pk], "index": 0, **extra},
        follow=True,
    )


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_the_list_shows_the_gates_agreement_on_good_outcomes(operator_admin, versions):
    page = operator_admin.get(CHANGELIST).content.decode()

    assert "Val agreement on good" in page
    assert '<td class="field-val_agreement">81.2%</td>' in page


def test_activating_a_refused_version_first_asks_and_says_why(operator_admin, versions):
    active, refused = versions

    response = activate(operator_admin, refused)

    refused.refresh_from_db()
    active.refresh_from_db()
    assert (refused.active, active.active) == (False, True)
    page = response.content.decode()
    assert response.templates[0].name == "admin/routing/gatemodel/activate_confirmation.html"
    assert '<blockquote id="refusal">ESS 2 &lt; 30: too little support</blockquote>' in page
    assert "than the active version, v1" in page
    assert 'value="Yes, activate v2"' in page
    assert messages_of(response) == []


def test_a_confirmed_activation_of_a_refused_version_goes_live_and_warns(operator_admin, versions):
    active, refused = versions
    page = activate(operator_admin, refused).content.decode()
    start = page.index('<form method="post">')
    form = page[start : page.index("</form>", start)]
    posted = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    posted.pop("csrfmiddlewaretoken", None)
    assert "csrfmiddlewaretoken" in form
    assert posted == {"action": "activate", "_selected_action": str(refused.pk), "confirm": "yes"}

    # when: the operator confirms (the page's own form, as posted)
    response = operator_admin.post(CHANGELIST, posted, follow=True)

    refused.refresh_from_db()
    active.refresh_from_db()
    assert (refused.active, active.active) == (True, False)
    assert messages_of(response) == [
        (
            "warning",
            "Gate v2 is now active, confirmed although its off-policy evaluation did not "
            "activate it: ESS 2 < 30: too little support",
        )
    ]


def test_rolling_back_to_a_version_the_evaluation_approved_does_not_warn(operator_admin, versions):
    active, refused = versions
    activate(operator_admin, refused, confirm="yes")

    response = activate(operator_admin, active)

    assert messages_of(response) == [("success", "Gate v1 is now active.")]

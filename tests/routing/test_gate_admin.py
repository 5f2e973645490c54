"""Gate versions in admin: an evaluation summary in the list, the full evaluation on the page."""

from html import escape

import pytest

from routing.admin import evaluation_summary
from routing.models import GateModel

pytestmark = pytest.mark.django_db

EVALUATION = {
    "method": "doubly robust, paired, one-sided normal bound",
    "against": "active version",
    "held_out": 600,
    "usable": 580,
    "candidate": {"ips": 0.71, "snips": 0.705, "dr": 0.72, "ess": 412.3, "n": 580},
    "baseline": {"ips": 0.66, "snips": 0.67, "dr": 0.678, "ess": 530.0, "n": 580},
    "ess": 412.3,
    "improvement": 0.042,
    "std_error": 0.0188,
    "lower_bound": 0.011,
    "confidence": 0.95,
    "better": True,
    "decision": "DR improvement +0.0420, 95% lower bound +0.0110 > 0",
    "activated": True,
    "objective": {"kind": "success_minus_latency", "description": "success minus latency"},
}


@pytest.fixture
def evaluated():
    return GateModel.objects.create(version=7, weights=b"x", active=True, evaluation=EVALUATION)


def test_the_summary_reads_as_one_line():
    assert evaluation_summary(EVALUATION) == "DR +0.042 [lower bound +0.011], ESS 412: activated"


def test_a_version_without_evaluation_has_no_summary():
    assert evaluation_summary({}) == ""


def test_the_list_shows_the_evaluation_summary(admin_client, evaluated):
    page = admin_client.get("/admin/routing/gatemodel/").content.decode()

    assert "DR +0.042 [lower bound +0.011], ESS 412: activated" in page


def test_the_change_page_shows_the_evaluation_and_its_decision(admin_client, evaluated):
    response = admin_client.get(f"/admin/routing/gatemodel/{evaluated.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert escape(EVALUATION["decision"]) in page
    assert "<td>DR</td><td>0.7200</td><td>0.6780</td><td>+0.0420</td>" in page
    assert "Effective sample size" in page


def test_the_evaluation_cannot_be_edited_on_the_change_page(admin_client, evaluated):
    # when: a form post tries to rewrite the evaluation and the active flag
    admin_client.post(
        f"/admin/routing/gatemodel/{evaluated.pk}/change/",
        {"notes": "reviewed", "evaluation": "{}", "active": ""},
    )

    # then: only the notes changed
    evaluated.refresh_from_db()
    assert evaluated.notes == "reviewed"
    assert evaluated.evaluation == EVALUATION
    assert evaluated.active is True


def test_rolling_back_activates_the_older_version(admin_client, evaluated):
    older = GateModel.objects.create(version=6, weights=b"x")

    admin_client.post(
        "/admin/routing/gatemodel/", {"action": "activate", "_selected_action": [older.pk]}
    )

    older.refresh_from_db()
    evaluated.refresh_from_db()
    assert (older.active, evaluated.active) == (True, False)

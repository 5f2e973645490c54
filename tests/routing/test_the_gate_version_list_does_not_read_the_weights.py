"""The gate version admin never reads the weights it does not show.

Every hourly retrain stores a version with its weights (about 100 kB each for the demo fleet,
more for a larger one); the version list read every row's weights, so a page of a hundred
versions loaded ten megabytes to show a few numbers.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.models import GateModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions():
    return [
        GateModel.objects.create(
            version=v,
            weights=b"w" * 1000,
            policy_weights=b"p" * 1000,
            evaluation={"activated": False, "decision": "ESS 2 < 30"},
            validation_metrics={"loss": 0.5, "agreement_on_good": 0.8},
            notes=f"v{v}",
        )
        for v in (1, 2, 3)
    ]


def _selects(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries if "routing_gatemodel" in q["sql"]]


@pytest.mark.parametrize("page", ["", "{pk}/change/"])
def test_the_list_and_the_change_page_leave_the_weights_in_the_database(
    client, operator, versions, page
):
    client.force_login(operator)
    url = "/admin/routing/gatemodel/" + page.format(pk=versions[0].pk)

    statements = _selects(client, url)

    assert statements
    for sql in statements:
        assert '"weights"' not in sql and '"policy_weights"' not in sql


def test_activating_from_the_list_still_works(client, operator, versions):
    client.force_login(operator)

    client.post(
        "/admin/routing/gatemodel/",
        # These versions were refused: the confirmation page's answer.
        {"action": "activate", "_selected_action": [versions[1].pk], "index": 0, "confirm": "yes"},
    )

    assert GateModel.objects.get(active=True).version == 2
    assert GateModel.objects.get(version=2).weights == b"w" * 1000

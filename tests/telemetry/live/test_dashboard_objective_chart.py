"""The dashboard page carries the "objective over time" chart, with a caption for its meaning."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_page_has_the_objective_chart_and_its_caption(client, staff):
    client.force_login(staff)

    html = client.get("/dashboard/").content.decode()

    assert re.search(r'<svg class="chart" id="chart-objective"[^>]*>', html)
    assert '<figcaption id="objective-caption">' in html
    assert "renderObjective(m.objective)" in html  # drawn from GET /api/v1/metrics

"""A numeric routing input (``top_k``, complexity, priority, anomaly score, deadline) is a
number written with ASCII digits, finite, as /route's JSON numbers are: anything else (another
script's digits, ``1_000``, surrounding spaces, ``nan``, ``infinity``) is a 400 naming the
header or query parameter it came in, never a 500 and never read as a number."""

import pytest

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("moe_top_k=%C2%B2", "moe_top_k"),  # superscript two: int() raises on it
        ("moe_top_k=%D9%A3", "moe_top_k"),  # Arabic-Indic three
        ("moe_top_k=%EF%BC%92", "moe_top_k"),  # fullwidth two
        ("moe_top_k=%202", "moe_top_k"),
        pytest.param("moe_top_k=" + "9" * 5000, "moe_top_k", id="beyond int()'s digit limit"),
        ("moe_complexity=%D9%A0.5", "moe_complexity"),
        ("moe_complexity=%200.5%20", "moe_complexity"),
        ("moe_priority=nan", "moe_priority"),
        ("moe_anomaly_score=0_1", "moe_anomaly_score"),
        ("moe_deadline_ms=%D9%A1%D9%A2", "moe_deadline_ms"),
        ("moe_deadline_ms=1_000", "moe_deadline_ms"),
        ("moe_deadline_ms=infinity", "moe_deadline_ms"),
        ("moe_deadline_ms=1e999", "moe_deadline_ms"),
    ],
)
async def test_a_query_parameter_that_is_not_an_ascii_number_is_a_400_naming_it(
    proxy, afleet, query, field
):
    # given
    (backend,) = await afleet(1)

    # when
    response = await proxy.get(f"/api/v1/proxy/x?{query}")

    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]
    assert backend.hits == 0


@pytest.mark.parametrize(
    ("header", "value"),
    [
        # A server reads header bytes as latin-1: byte B2 is a superscript two, and an
        # Arabic-Indic three sent as UTF-8 arrives as two letters.
        ("X-Moe-Top-K", "\u00b2"),
        ("X-Moe-Top-K", "\u00b3"),
        ("X-Moe-Top-K", "\u00d9\u00a3"),
        ("X-Moe-Priority", "0_1"),
        ("X-Moe-Deadline-Ms", "inf"),
        ("X-Moe-Deadline-Ms", "NaN"),
    ],
)
async def test_a_header_that_is_not_an_ascii_number_is_a_400_naming_it(
    proxy, afleet, header, value
):
    # given
    (backend,) = await afleet(1)

    # when
    response = await proxy.get("/api/v1/proxy/x", headers={header: value})

    # then
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [header]
    assert backend.hits == 0


@pytest.mark.parametrize(
    "query",
    [
        "moe_top_k=1",
        "moe_top_k=01",
        "moe_complexity=0.25&moe_priority=1&moe_anomaly_score=0",
        "moe_complexity=.5&moe_priority=1e-1&moe_anomaly_score=5E-1",
        "moe_deadline_ms=1500",
        "moe_deadline_ms=2.5e3",
    ],
)
async def test_ascii_numbers_in_range_are_accepted(proxy, afleet, query):
    # given
    (backend,) = await afleet(1)

    # when
    response = await proxy.get(f"/api/v1/proxy/x?{query}")

    # then
    assert response.status_code == 200
    assert backend.hits == 1

"""A backlog of batch routes in the history stream is written in transactions of about
``MAX_RECORDS_PER_APPLY`` records each (an entry is never split), every entry acknowledged
once its transaction is written: one read of batch entries used to be one transaction of
hundreds of thousands of rows (minutes long, a gigabyte of worker memory). PostgreSQL + Redis
pass (the stream)."""

import pytest

from routing.history import flush as flush_module
from routing.history import flush_history
from routing.history.buffers import STREAM_KEY
from routing.models import RoutingDecision
from routing.runtime import get_router

pytestmark = pytest.mark.django_db(transaction=True)

BATCHES, ITEMS, LIMIT = 5, 30, 50


def test_a_backlog_is_written_in_bounded_transactions(client_api, fleet, settings, monkeypatch):
    if not settings.REDIS_URL:
        pytest.skip("the history stream: the PostgreSQL + Redis pass")
    monkeypatch.setattr(flush_module, "MAX_RECORDS_PER_APPLY", LIMIT)
    applied: list[int] = []
    apply = flush_module.apply_records

    def counting(records):
        applied.append(flush_module._records_in(records))
        return apply(records)

    monkeypatch.setattr(flush_module, "apply_records", counting)
    body = {"requests": [{"type": "inference"} for _ in range(ITEMS)]}
    ids = []
    for _ in range(BATCHES):
        results = client_api.post("/api/v1/route/batch", body, format="json").json()["results"]
        ids += [r["request_id"] for r in results]

    flush_history()

    assert sum(applied) == BATCHES * ITEMS
    assert len(applied) == 3  # 30 + 30, 30 + 30, 30: each stops once past the limit
    assert max(applied) < LIMIT + ITEMS
    assert RoutingDecision.objects.filter(request_id__in=ids).count() == BATCHES * ITEMS
    assert get_router().redis_client.xlen(STREAM_KEY) == 0

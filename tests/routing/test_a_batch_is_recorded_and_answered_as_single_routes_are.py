"""A batch's history records, its answer and its metrics are built in bulk (one loop, shared
values computed once); each must be exactly what the one-request code builds for every item."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram

from routing.api.fast import _dumps, batch_results
from routing.api.views import route_response
from routing.core.types import Decision, RouteRequest
from routing.history.buffers import SpoolBuffer, dumps, read_records
from routing.history.records import decision_record, decision_records, expand_records
from routing.metrics import RoutingMetrics, observe_many


@dataclass(frozen=True)
class Item:
    request_id: str
    decision: Decision
    override_id: int | None = None
    top_k: int | None = None


def decision(selected, scores, **extra) -> Decision:
    base = {
        "confidence": 0.123456789,
        "strategy": "switch_transformer",
        "requested_strategy": "adaptive",
        "reason": "learned; 3 of 8 can serve it",
        "latency_ms": 0.0123456,
        "propensity": 0.987654321,
        "candidates": ("svc-a", "svc-b", "svc-c"),
    }
    base.update(extra)
    return Decision(selected=selected, scores=scores, **base)


BATCH = [
    Item("r1", decision(("svc-a",), {"svc-a": 0.91234567})),
    Item("r2", decision(("svc-a", "svc-b"), {"svc-a": 0.6, "svc-b": 0.4}, propensity=None)),
    Item("r3", decision(("svc-a", "svc-b", "svc-c"), {"svc-a": 0.5, "svc-b": 0.3, "svc-c": 0.2})),
    Item("r4", decision(("svc-c",), {"svc-c": 1.0}, strategy="top_k"), override_id=7),
    Item(
        "r5",
        decision(
            (),
            {},
            confidence=0.0,
            reason="no eligible service among 8: " + "x" * 600,
            no_eligible_service=True,
            propensity=None,
            candidates=(),
        ),
    ),  # fmt: skip
    Item("r6", decision(("svc-b",), {"svc-b": 0.5}, latency_ms=0.0456789, reason='ü " \n')),
]
REQUESTS = [
    RouteRequest("inference", 0.1, 0.2, ("analysis",), "user-1", 0.3, 12, ("text",), {"t": 1}),
    RouteRequest(),
    RouteRequest("batch", 1.0, 0.0, ("a", "b"), None, None, 0, (), None),
    RouteRequest("inference", 0.5, 0.5, (), "k", 0.9, 3, (), "abc"),
    RouteRequest("unknown", 0.5, 0.5, ("nowhere",), None, None, 0, (), None),
    RouteRequest("inference"),
]


def _single_records(context):
    return [
        decision_record(i.request_id, i.decision, r, i.override_id, context)
        for i, r in zip(BATCH, REQUESTS, strict=True)
    ]


def _without_time(records):
    for rec in records:
        rec["at"] = 0.0
    return records


def test_a_batch_record_expands_to_the_single_records_after_the_buffer_round_trip():
    # given
    context = [0.5, 0.25, 0.0]
    one_by_one = _single_records(context)

    # when: one columnar record, through the JSON a buffer stores
    records = decision_records(BATCH, REQUESTS, context)
    stored = orjson.loads(dumps(records))
    expanded = list(expand_records(stored))

    # then: the same records, the decision time read once for the whole batch
    assert [rec["k"] for rec in records] == ["b"]
    assert len({rec["at"] for rec in expanded}) == 1
    assert _without_time(expanded) == _without_time(one_by_one)
    assert orjson.dumps(expanded) == orjson.dumps(one_by_one)


def test_a_batch_record_expands_the_same_before_it_is_stored():
    context = [0.5]
    expanded = list(expand_records(decision_records(BATCH, REQUESTS, context)))

    assert _without_time(expanded) == _without_time(_single_records(context))


def test_numpy_scores_are_stored_exactly():
    # given: a strategy that hands back numpy scalars (float32 has no exact short repr)
    value = np.float32(0.1234565)
    item = Item("n1", decision(("svc-a",), {"svc-a": value}, confidence=np.float64(0.5)))

    # when
    stored = orjson.loads(dumps(decision_records([item, *BATCH[:1]], REQUESTS[:2])))
    (rec, _) = expand_records(stored)

    # then: rounded from the exact value, as the single record is
    assert rec["sc"] == {"svc-a": round(float(value), 6)}
    assert rec["c"] == 0.5


def test_a_single_route_keeps_its_plain_record():
    (rec,) = decision_records(BATCH[:1], REQUESTS[:1], [0.1])

    assert rec["k"] == "d"
    assert list(expand_records([rec])) == [rec]


def test_spooled_batches_and_single_records_read_back_in_order(tmp_path):
    # given
    spool = SpoolBuffer(tmp_path)
    spool.append(decision_records(BATCH, REQUESTS, [0.1]))
    spool.append(decision_records(BATCH[:1], REQUESTS[:1], [0.2]))
    spool.seal()

    # when
    (segment,) = tmp_path.glob("seg-*.ready")
    records = list(expand_records(read_records(segment)))

    # then
    assert [rec["id"] for rec in records] == [i.request_id for i in BATCH] + ["r1"]


def test_batch_results_serialise_as_route_responses():
    for requested in ("adaptive", "semantic"):
        single = [route_response(item, requested) for item in BATCH]

        assert _dumps(batch_results(BATCH, requested)) == _dumps(single)


def test_batch_metric_fields_add_up_to_the_single_fields():
    # given
    single: Counter[str] = Counter()
    for item in BATCH:
        single.update(RoutingMetrics._fields([item]))

    # when
    batch = RoutingMetrics._fields(BATCH)

    # then
    assert batch == single


def test_observing_many_at_once_is_observing_each():
    bounds = (0.005, 0.01, 0.02, 0.05, 0.1, 1, 50)
    one, bulk = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "one by one", buckets=bounds, registry=one)
    many = Histogram("h", "in bulk", buckets=bounds, registry=bulk)
    values = [0.0, 0.005, 0.0051, 0.02, 1.0, 49.9, 50.0, 51.0, 1e9] * 3

    for value in values:
        each.observe(value)
    for value, n in Counter(values).items():
        observe_many(many, value, n)

    def samples(registry):
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(bulk), samples(one)
    # The sum is added as value x n, so only the last bits may differ; counts are exact.
    assert got.pop(("h_sum", ())) == pytest.approx(want.pop(("h_sum", ())), rel=1e-12)
    assert got == want

"""The history flush keeps its guarantees on both of its writers: the ORM's (every database)
and PostgreSQL's (COPY into the table, or into a temporary table then INSERT ... ON CONFLICT
when some decisions are there already; set-based UPDATEs for amendments and outcomes). Every
routed request lands exactly once; a decision already in the table is left as it is; an
amendment or outcome in the same chunk as its decision, or a later one, is applied; the
primary service's outcome wins; JSON columns and timestamps come back exactly as recorded.

Each test runs on the ORM writer and, with PostgreSQL, on the COPY writer (forced even for
the few records a test has: ``VENDOR_WRITER_MIN_RECORDS`` set to 0)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from routing.core.types import Decision, RouteRequest
from routing.history import flush as flush_module
from routing.history.buffers import SpoolBuffer
from routing.history.flush import _ts, apply_records, flush_history
from routing.history.records import (
    amend_record,
    decision_records,
    expand_records,
    outcome_record,
)
from routing.models import RoutingDecision
from routing.runtime import Routed

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = (
    "request_id", "request_type", "features", "requested_strategy", "strategy", "override_id",
    "selected_services", "primary_service", "scores", "confidence", "reason",
    "no_eligible_service", "decision_ms", "propensity", "client", "decided_at", "success",
    "outcome_service", "latency_ms", "status_code", "reward", "reported_at",
)  # fmt: skip


@pytest.fixture(params=["orm", "copy"])
def writer(request, monkeypatch):
    if request.param == "orm":
        monkeypatch.setattr(flush_module, "VENDOR_WRITERS", {})
    else:
        if connection.vendor != "postgresql":
            pytest.skip("the COPY writer: the PostgreSQL pass")
        monkeypatch.setattr(flush_module, "VENDOR_WRITER_MIN_RECORDS", 0)
    return request.param


def batch(base: str, n: int = 3, client: str = "client-7") -> dict:
    """A batch record of ``n`` decisions, as the router writes it (varied on purpose: a top-2,
    an empty selection, no propensity, an override, a key, unicode, many decimals)."""
    requests, routed = [], []
    for i in range(n):
        selected = () if i % 3 == 2 else ("svc-a", "svc-b")[: 1 + (i % 3 == 1)]
        requests.append(
            RouteRequest(
                request_type="inference",
                priority=0.1 + i / 7,
                complexity=1 / 3,
                capabilities=("gpu", "ünïcode"),
                key=f"k{i}" if i % 2 else None,
                anomaly_score=None if i % 2 else 0.123456789012,
                payload_size=10**9 + i,
            )
        )
        decision = Decision(
            selected=selected,
            scores={"svc-a": 2 / 3 + i, "svc-b": 1e-7, "svc-ç": 123456.7654321},
            confidence=0.987654321,
            strategy="adaptive",
            requested_strategy="top_k",
            reason=f"learned — pick {i} of 3 « quoted\ttab\\backslash »",
            no_eligible_service=not selected,
            latency_ms=0.123456789,
            propensity=None if i % 2 else 1 / 3,
            candidates=("svc-a", "svc-b", "svc-ç"),
        )
        routed.append(Routed(f"{base}-{i:x}", decision, 42 if i == 0 else None, None))
    context = [0.1, 0.25, -3.5, 1e-9]
    (record,) = decision_records(routed, requests, context, client)
    return record


def rows() -> dict[str, tuple]:
    return {row[0]: row for row in RoutingDecision.objects.values_list(*FIELDS)}


def expected(rec: dict, outcome: dict | None = None) -> tuple:
    """The row a decision record (and its outcome) must give."""
    sel = rec["sel"]
    row = (
        rec["id"], rec["t"], rec["f"], rec["rs"], rec["s"], rec["o"], sel,
        sel[0] if sel else "", rec["sc"], rec["c"], rec["r"], rec["ne"], rec["ms"], rec["p"],
        rec["cl"], _ts(rec["at"]),
    )  # fmt: skip
    if outcome is None:
        return row + (None, "", None, None, None, None)
    return row + (
        outcome["ok"], outcome["svc"], outcome["lat"], outcome["code"], outcome["rw"],
        _ts(outcome["at"]),
    )  # fmt: skip


def test_every_column_comes_back_exactly_as_recorded(writer):
    record = batch("b1", n=6)
    decisions = list(expand_records([record]))

    result, carried = apply_records([record])

    assert (result.decisions, carried) == (6, [])
    stored = rows()
    for rec in decisions:
        assert stored[rec["id"]] == expected(rec)
    row = RoutingDecision.objects.get(request_id="b1-0")
    assert row.created_at is not None and row.updated_at is not None
    assert row.decided_at.microsecond == _ts(record["at"]).microsecond


def test_a_decision_delivered_twice_is_written_once_in_one_chunk_and_across_chunks(writer):
    record = batch("twice", n=4)

    first, _ = apply_records([record, record])
    again, _ = apply_records([record, batch("new", n=2)])

    assert first.decisions == 4
    assert again.decisions == 2
    assert sorted(rows()) == sorted(
        [f"twice-{i:x}" for i in range(4)] + [f"new-{i:x}" for i in range(2)]
    )


def test_a_decision_already_in_the_table_is_left_as_it_is(writer):
    original = batch("kept", n=3)
    apply_records([original])
    before = rows()
    changed = batch("kept", n=3)
    changed["s"] = ["round_robin"] * 3
    changed["rsn"] = ["another reason"] * len(changed["rsn"])
    changed["at"] += 60

    result, _ = apply_records([changed, batch("fresh", n=2)])

    assert result.decisions == 2
    after = rows()
    assert {rid: after[rid] for rid in before} == before
    assert after["fresh-0"][4] == "adaptive"


def test_an_amendment_in_the_same_chunk_or_a_later_one_is_applied(writer):
    record = batch("am", n=5)
    same = amend_record("am-0", ["svc-b"], "refused svc-a at dispatch", primary_replaced=True)
    ahead = amend_record("am-1", ["svc-b"], "arrived before its decision")
    result, carried = apply_records([ahead, record, same])
    assert (result.decisions, carried) == (5, [])
    later = amend_record("am-4", [], "every selected service refused", primary_replaced=True)
    _, carried = apply_records([later])
    assert carried == []

    stored = RoutingDecision.objects.in_bulk(field_name="request_id")
    assert stored["am-0"].selected_services == ["svc-b"]
    assert stored["am-0"].primary_service == "svc-b"
    assert stored["am-0"].reason == "refused svc-a at dispatch"
    assert stored["am-0"].propensity is None  # "np": the primary was replaced
    assert stored["am-1"].selected_services == ["svc-b"]
    assert stored["am-1"].reason == "arrived before its decision"
    assert stored["am-2"].reason.startswith("learned")  # not amended
    assert stored["am-2"].propensity == 1 / 3
    assert stored["am-4"].selected_services == []
    assert stored["am-4"].primary_service == ""
    assert stored["am-4"].no_eligible_service is True
    assert stored["am-4"].propensity is None  # it was 1/3


def test_an_amendment_without_np_keeps_the_propensity(writer):
    record = batch("keep", n=1)
    apply_records([record])

    apply_records([amend_record("keep-0", ["svc-a"], "second service refused")])

    row = RoutingDecision.objects.get(request_id="keep-0")
    assert row.propensity == pytest.approx(1 / 3) and row.propensity == 1 / 3
    assert row.reason == "second service refused"


def test_an_amendment_arriving_with_its_decision_delivered_again_is_applied(writer):
    # The decision was written by an earlier flush; it comes again (a re-read segment, a
    # reclaimed entry) in the chunk that holds its amendment: the insert skips it, and the
    # amendment folded into it must still reach the row.
    record = batch("again", n=2)
    apply_records([record])

    apply_records([record, amend_record("again-0", ["svc-b"], "refused", primary_replaced=True)])

    row = RoutingDecision.objects.get(request_id="again-0")
    assert (row.selected_services, row.primary_service, row.reason, row.propensity) == (
        ["svc-b"],
        "svc-b",
        "refused",
        None,
    )


def test_an_amendment_or_outcome_without_its_decision_is_carried_then_applied(writer):
    amend = amend_record("late-0", ["svc-b"], "refused early", primary_replaced=True)
    outcome = outcome_record("late-0", "svc-b", True, 12.5, 200, 0.75)
    stale = outcome_record("gone", "svc-a", True, 1.0, 200)
    stale["at"] = time.time() - flush_module.CARRY_MAX_AGE_S - 1

    result, carried = apply_records([amend, outcome, stale])

    assert result.carried == 2 and carried == [amend, outcome]  # the stale one is dropped
    record = batch("late", n=1)
    result, carried = apply_records([record, *carried])
    assert (result.decisions, result.outcomes, carried) == (1, 1, [])
    row = RoutingDecision.objects.get(request_id="late-0")
    assert (row.selected_services, row.propensity, row.outcome_service) == (
        ["svc-b"],
        None,
        "svc-b",
    )


def test_outcomes_in_the_same_chunk_or_a_later_one_are_applied_exactly(writer):
    record = batch("out", n=3)
    decisions = {rec["id"]: rec for rec in expand_records([record])}
    now_ = outcome_record("out-0", "svc-a", True, 12.345678, 200, reward=0.8125)
    result, _ = apply_records([record, now_])
    assert (result.decisions, result.outcomes) == (3, 1)
    later = outcome_record("out-1", "svc-a", False, 1500.0, 503, reward=None)
    result, _ = apply_records([later])
    assert result.outcomes == 1

    stored = rows()
    assert stored["out-0"] == expected(decisions["out-0"], now_)
    assert stored["out-1"] == expected(decisions["out-1"], later)
    assert stored["out-2"] == expected(decisions["out-2"])


def test_the_primary_services_outcome_wins_over_a_secondary_one(writer):
    record = batch("top", n=5)
    apply_records([record])
    primary = {i: outcome_record(f"top-{i:x}", "svc-a", True, 10.0 + i, 200) for i in range(5)}
    secondary = {
        i: outcome_record(f"top-{i:x}", "svc-b", False, 99.0, 500, primary=False) for i in range(5)
    }
    # 0: secondary then primary in one chunk; 1: primary then secondary in one chunk;
    # 2: a secondary alone fills the empty row; 3: a later secondary never replaces a stored
    # primary; 4: a later primary replaces a stored secondary.
    apply_records([secondary[0], primary[0], primary[1], secondary[1], secondary[2]])
    apply_records([primary[3]])
    apply_records([secondary[4]])
    result, _ = apply_records([secondary[3], primary[4]])

    assert result.outcomes == 1  # the skipped secondary is not counted
    stored = RoutingDecision.objects.in_bulk(field_name="request_id")
    services = {i: stored[f"top-{i:x}"].outcome_service for i in range(5)}
    assert services == {0: "svc-a", 1: "svc-a", 2: "svc-b", 3: "svc-a", 4: "svc-a"}
    assert stored["top-3"].latency_ms == 13.0
    assert stored["top-4"].reported_at == _ts(primary[4]["at"])


def test_a_spooled_backlog_flushed_twice_holds_each_decision_once(writer, tmp_path):
    (tmp_path / "spool").mkdir()
    spool = SpoolBuffer(tmp_path / "spool")
    one, two = batch("sp1", n=3), batch("sp2", n=3)
    spool.append([one])
    spool.append([two, one])  # sent twice
    spool.append([outcome_record("sp1-0", "svc-a", True, 5.0, 200)])
    spool.seal()

    first = flush_history(tmp_path / "spool", use_settings=False)
    spool.append([two, amend_record("sp2-1", ["svc-a"], "refused svc-b")])
    spool.seal()
    second = flush_history(tmp_path / "spool", use_settings=False)

    assert (first.decisions, first.outcomes) == (6, 1)
    assert second.decisions == 0
    assert RoutingDecision.objects.count() == 6
    row = RoutingDecision.objects.get(request_id="sp2-1")
    assert (row.selected_services, row.reason) == (["svc-a"], "refused svc-b")
    assert RoutingDecision.objects.get(request_id="sp1-0").outcome_service == "svc-a"

"""The compact records decisions, amendments and outcomes travel in until the flush."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter

from routing.core.types import round6


def decision_record(
    request_id: str, decision, request, override_id: int | None, context=None, client: str = ""
) -> dict:
    """``client``: who routed it (the owner of its outcome report, see routing.runtime)."""
    return {
        "k": "d",
        "id": request_id,
        "t": request.request_type,
        "f": {
            "priority": request.priority,
            "complexity": request.complexity,
            "capabilities": list(request.capabilities),
            "payload_size": request.payload_size,
            "anomaly_score": request.anomaly_score,
            "has_key": request.key is not None,
            "context": context,
            # Who was eligible: what off-policy evaluation of another policy needs.
            "candidates": list(decision.candidates),
        },
        "rs": decision.requested_strategy,
        "s": decision.strategy,
        "o": override_id,
        "sel": list(decision.selected),
        "sc": {k: round6(v) for k, v in decision.scores.items()},
        "c": round6(decision.confidence),
        "r": decision.reason[:500],
        "ne": decision.no_eligible_service,
        "ms": round(decision.latency_ms, 4),
        "p": decision.propensity,
        "cl": client,
        "at": time.time(),
    }


def decision_records(routed, requests, context=None, client: str = "") -> list[dict]:
    """The records of routed requests (``routed``: items with ``request_id``, ``decision``
    and ``override_id``, in ``requests`` order): one :func:`decision_record` for a single
    request, one :func:`batch_record` for several. :func:`expand_records` turns either back
    into one decision record per request."""
    if len(routed) == 1:
        r = routed[0]
        return [
            decision_record(r.request_id, r.decision, requests[0], r.override_id, context, client)
        ]
    return [batch_record(routed, requests, context, client)] if routed else []


def batch_record(routed, requests, context=None, client: str = "") -> dict:
    """A batch's decisions as one columnar record (``"k": "b"``): a column per field, the
    values a batch shares (decision time, fleet context) once, and reasons and candidate
    sets (a few distinct ones per batch) as indexes into lists of the distinct values.
    Rounding and truncation wait for :func:`expand_records`, which gives exactly the
    :func:`decision_record` of every item. A 1,000-item batch: ~0.5 ms and ~140 KB of JSON
    instead of ~2.7 ms and ~550 KB."""
    if len(routed) != len(requests):
        raise ValueError(f"{len(routed)} decisions for {len(requests)} requests")
    decisions = list(map(_decision, routed))
    reasons = list(map(_reason, decisions))
    candidate_sets = list(map(_candidates, decisions))
    distinct_reasons = list(dict.fromkeys(reasons))
    distinct_sets = list(dict.fromkeys(candidate_sets))
    record = {"k": "b", "at": time.time(), "ctx": context, "cl": client}
    for rows, columns in ((routed, _ROUTED_COLUMNS), (requests, _REQUEST_COLUMNS)):
        for key, get in columns:
            record[key] = list(map(get, rows))
    for key, get in _DECISION_COLUMNS:
        record[key] = list(map(get, decisions))
    record["hk"] = [key is not None for key in map(_key, requests)]
    record["cand"] = _positions(candidate_sets, distinct_sets)
    record["cands"] = distinct_sets
    record["r"] = _positions(reasons, distinct_reasons)
    record["rsn"] = [text if len(text) <= 500 else text[:500] for text in distinct_reasons]
    return record


def _positions(values: list, distinct: list) -> list[int]:
    """Each value's index in ``distinct`` (the distinct values, in order)."""
    index = {value: i for i, value in enumerate(distinct)}
    return list(map(index.__getitem__, values))


def _columns(**names: str) -> tuple[tuple[str, attrgetter], ...]:
    return tuple((key, attrgetter(name)) for key, name in names.items())


# A batch record is built a column at a time (C-speed map), not a Python step per item:
# record key -> attribute, of each Routed, RouteRequest and Decision.
_ROUTED_COLUMNS = _columns(id="request_id", o="override_id")
_REQUEST_COLUMNS = _columns(
    t="request_type",
    pri="priority",
    cx="complexity",
    cap="capabilities",
    ps="payload_size",
    an="anomaly_score",
)
_DECISION_COLUMNS = _columns(
    rs="requested_strategy",
    s="strategy",
    sel="selected",
    sc="scores",
    c="confidence",
    ne="no_eligible_service",
    ms="latency_ms",
    p="propensity",
)
_decision, _reason, _candidates, _key = map(attrgetter, ("decision", "reason", "candidates", "key"))


def expand_records(records: Iterable[dict]) -> Iterator[dict]:
    """``records`` with every batch record replaced by its decision records, in order."""
    for rec in records:
        if rec.get("k") != "b":
            yield rec
            continue
        at, context, client = rec["at"], rec["ctx"], rec.get("cl", "")
        cands = [list(c) for c in rec["cands"]]
        reasons = rec["rsn"]
        columns = zip(
            rec["id"], rec["t"], rec["pri"], rec["cx"], rec["cap"], rec["ps"], rec["an"],
            rec["hk"], rec["cand"], rec["rs"], rec["s"], rec["o"], rec["sel"], rec["sc"],
            rec["c"], rec["r"], rec["ne"], rec["ms"], rec["p"], strict=True,
        )  # fmt: skip
        for rid, t, pri, cx, cap, ps, an, hk, ci, rs, s, o, sel, sc, c, ri, ne, ms, p in columns:
            yield {
                "k": "d",
                "id": rid,
                "t": t,
                "f": {
                    "priority": pri,
                    "complexity": cx,
                    "capabilities": list(cap),
                    "payload_size": ps,
                    "anomaly_score": an,
                    "has_key": hk,
                    "context": context,
                    "candidates": list(cands[ci]),
                },
                "rs": rs,
                "s": s,
                "o": o,
                "sel": list(sel),
                "sc": {k: round6(v) for k, v in sc.items()},
                "c": round6(c),
                "r": reasons[ri],
                "ne": ne,
                "ms": round(ms, 4),
                "p": p,
                "cl": client,
                "at": at,
            }


def amend_record(
    request_id: str, selected: Sequence[str], reason: str, primary_replaced: bool = False
) -> dict:
    """A decision whose services a breaker refused at dispatch (a cross-worker race).
    ``primary_replaced``: its first service was refused, so the logged propensity (that
    service's probability) is no longer the probability of the one that serves: the amended
    row keeps none (off-policy evaluation skips it; training still learns from it)."""
    rec = {"k": "a", "id": request_id, "sel": list(selected), "r": reason[:500], "at": time.time()}
    if primary_replaced:
        rec["np"] = True
    return rec


def outcome_record(
    request_id, service_id, success, latency_ms, status_code, reward=None, primary=True
) -> dict:
    """``primary``: the outcome of the decision's first service (the one its propensity is
    about); a top-k request's other services report too, but only fill an empty row."""
    return {
        "k": "o",
        "id": request_id,
        "svc": service_id,
        "ok": success,
        "lat": latency_ms,
        "code": status_code,
        "rw": reward,
        "pr": primary,
        "at": time.time(),
    }

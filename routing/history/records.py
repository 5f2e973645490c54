"""The compact records decisions, amendments and outcomes travel in until the flush."""

from __future__ import annotations

import time
from collections.abc import Sequence


def decision_record(
    request_id: str, decision, request, override_id: int | None, context=None
) -> dict:
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
        "sc": {k: round(float(v), 6) for k, v in decision.scores.items()},
        "c": round(float(decision.confidence), 6),
        "r": decision.reason[:500],
        "ne": decision.no_eligible_service,
        "ms": round(decision.latency_ms, 4),
        "p": decision.propensity,
        "at": time.time(),
    }


def decision_records(routed, requests, context=None) -> list[dict]:
    """:func:`decision_record` for a batch (``routed``: items with ``request_id``,
    ``decision`` and ``override_id``, in ``requests`` order): the same dicts, built in one loop
    with the batch's decision time (``at``) read once (a 1,000-item batch: ~2.7 ms instead of
    ~3.1 ms)."""
    now = time.time()
    out = []
    append = out.append
    for r, req in zip(routed, requests, strict=True):
        d = r.decision
        scores = d.scores
        if len(scores) == 1:
            ((sid, score),) = scores.items()
            sc = {sid: round(float(score), 6)}
        else:
            sc = {k: round(float(v), 6) for k, v in scores.items()}
        reason = d.reason
        append(
            {
                "k": "d",
                "id": r.request_id,
                "t": req.request_type,
                "f": {
                    "priority": req.priority,
                    "complexity": req.complexity,
                    "capabilities": list(req.capabilities),
                    "payload_size": req.payload_size,
                    "anomaly_score": req.anomaly_score,
                    "has_key": req.key is not None,
                    "context": context,
                    "candidates": list(d.candidates),
                },
                "rs": d.requested_strategy,
                "s": d.strategy,
                "o": r.override_id,
                "sel": list(d.selected),
                "sc": sc,
                "c": round(float(d.confidence), 6),
                "r": reason if len(reason) <= 500 else reason[:500],
                "ne": d.no_eligible_service,
                "ms": round(d.latency_ms, 4),
                "p": d.propensity,
                "at": now,
            }
        )
    return out


def amend_record(request_id: str, selected: Sequence[str], reason: str) -> dict:
    """A decision whose services a breaker refused at dispatch (a cross-worker race)."""
    return {"k": "a", "id": request_id, "sel": list(selected), "r": reason[:500], "at": time.time()}


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

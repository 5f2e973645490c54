"""Retraining the learned gate (and the adaptive policy) from routing history.

``retrain_gate`` reads recent decisions with outcomes, trains a new gate starting from the
active one, validates both on the most recent slice of history (held out by time, so the new
gate is judged on requests it never saw), stores the new version, and activates it only when
its validation loss beats the active one's. Activation bumps the registry version, so every
web worker loads the new weights on its next snapshot refresh without a restart.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Max

from registry.services import bump_registry_version
from registry.snapshot import build_fleet_snapshot
from routing.core import gate as gate_lib
from routing.core import policy as policy_lib
from routing.core.types import RouteRequest
from routing.models import GateModel, RoutingDecision

logger = logging.getLogger(__name__)

# Most recent decisions with outcomes used per retraining (~3 s of CPU per 10k on 2 cores).
MAX_EXAMPLES = 20_000
MIN_EXAMPLES = 50
VALIDATION_FRACTION = 0.2


def _examples(max_examples: int) -> list[tuple[gate_lib.GateExample, str, tuple | None]]:
    rows = (
        RoutingDecision.objects.filter(success__isnull=False)
        .exclude(outcome_service="")
        .order_by("-decided_at")
        .values_list(
            "request_type", "features", "outcome_service", "success", "latency_ms", "strategy"
        )[:max_examples]
    )
    examples = []
    for request_type, features, service_id, success, latency_ms, strategy in reversed(list(rows)):
        features = features or {}
        request = RouteRequest(
            request_type=request_type,
            priority=float(features.get("priority", 0.5)),
            complexity=float(features.get("complexity", 0.5)),
            capabilities=tuple(features.get("capabilities") or ()),
            anomaly_score=features.get("anomaly_score"),
            payload_size=int(features.get("payload_size", 0)),
        )
        example = gate_lib.GateExample(request, service_id, bool(success), latency_ms)
        context = features.get("context")
        examples.append((example, strategy, tuple(context) if context else None))
    return examples


def _active_gate() -> tuple[GateModel | None, gate_lib.Gate]:
    active = GateModel.objects.filter(active=True).first()
    if active is None:
        return None, gate_lib.Gate()
    return active, gate_lib.gate_from_bytes(bytes(active.weights))


def retrain_gate(max_examples: int | None = None) -> dict:
    examples = _examples(max_examples or MAX_EXAMPLES)
    if len(examples) < MIN_EXAMPLES:
        return {"trained": False, "reason": f"only {len(examples)} examples with outcomes"}
    split = int(len(examples) * (1 - VALIDATION_FRACTION))
    train = [ex for ex, _, _ in examples[:split]]
    held_out = [ex for ex, _, _ in examples[split:]]
    snapshot = build_fleet_snapshot()
    active_row, active_gate = _active_gate()
    candidate = gate_lib.gate_from_bytes(gate_lib.gate_to_bytes(active_gate))
    training_metrics = gate_lib.train_gate(candidate, train, snapshot)
    new_val = gate_lib.evaluate_gate(candidate, held_out, snapshot)
    old_val = gate_lib.evaluate_gate(active_gate, held_out, snapshot)
    policy_blob, policy_metrics = _train_policy(examples[:split])
    training_metrics["policy"] = policy_metrics
    better = "loss" in new_val and (
        active_row is None or new_val["loss"] < old_val.get("loss", float("inf"))
    )
    with transaction.atomic():
        version = (GateModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        row = GateModel.objects.create(
            version=version,
            weights=gate_lib.gate_to_bytes(candidate),
            policy_weights=policy_blob,
            training_metrics=_jsonable(training_metrics),
            validation_metrics=_jsonable({**new_val, "baseline_loss": old_val.get("loss")}),
            notes="beats the active version" if better else "did not beat the active version",
        )
    if better:
        activate_gate_version(row.version)
    logger.info("retrain: v%s trained on %d examples, activated=%s", version, len(train), better)
    return {
        "trained": True,
        "version": version,
        "activated": better,
        "examples": len(examples),
        "validation": row.validation_metrics,
    }


def _train_policy(examples) -> tuple[bytes, dict]:
    """The adaptive policy learns which concrete strategy did well for which requests, in
    which fleet context (load, anomalies, errors at decision time, recorded in history)."""
    policy = policy_lib.StrategyPolicy()
    rows = [
        policy_lib.PolicyExample(ex.request, strategy, ex.success, ex.latency_ms, context)
        for ex, strategy, context in examples
    ]
    metrics = policy_lib.train_policy(policy, rows)
    return policy_lib.policy_to_bytes(policy), metrics


def activate_gate_version(version: int) -> None:
    """Make ``version`` the only active gate (activate or roll back); workers reload it."""
    with transaction.atomic():
        GateModel.objects.filter(active=True).exclude(version=version).update(active=False)
        updated = GateModel.objects.filter(version=version).update(active=True)
        if not updated:
            raise GateModel.DoesNotExist(f"no gate version {version}")
        bump_registry_version()
    from telemetry.events import publish_event

    publish_event("model_updated", {"version": version})


def _jsonable(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = _jsonable(value)
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
        else:
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                out[key] = str(value)
    return out

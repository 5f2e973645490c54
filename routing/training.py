"""Retraining from routing history, and the off-policy gate that decides what goes live.

``retrain_gate`` reads recent decisions with outcomes (oldest first) and splits them by time:

1. On the older 80% it fits a candidate: the online learner's statistics replayed from those
   outcomes (``routing.core.learning``) and the torch gate, which gives the prior for services
   with no outcomes yet.
2. On the newest 20%, never seen in training, it estimates off-policy (IPS, SNIPS, doubly
   robust, effective sample size: ``routing.core.offpolicy``) how the candidate's policy, with
   its exploration, would have done, and how the active version's would have (with no active
   version: the learner starting from nothing, which is what a new worker would run), from
   the logged propensities.
3. The candidate is stored with that evaluation; it is activated only when the DR improvement
   has a one-sided lower confidence bound above zero (``MOE_OPE_CONFIDENCE``; pessimistic
   about clipped importance weights) and the estimate rests on enough data
   (``MOE_OPE_MIN_ESS``, and enough support for both policies). Activated, its learner
   statistics are refitted on all the examples (the evaluated procedure on more, and newer,
   data), and every worker starts again from them on its next registry refresh.

Rewards are recomputed from success and latency with the objective in force now, so training,
evaluation and the dashboard always use one objective.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from registry.services import bump_registry_version
from registry.snapshot import build_fleet_snapshot
from routing.core import gate as gate_lib
from routing.core import offpolicy
from routing.core.learning import OutcomeLearner
from routing.core.offpolicy import LoggedDecision
from routing.core.types import RouteRequest
from routing.models import GateModel, RoutingDecision

logger = logging.getLogger(__name__)

# Most recent decisions with outcomes used per retraining (~3 s of CPU per 10k on 2 cores).
MAX_EXAMPLES = 20_000
MIN_EXAMPLES = 50
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class Example:
    request: RouteRequest
    service_id: str
    success: bool
    latency_ms: float | None
    reward: float
    candidates: tuple[str, ...]
    propensity: float | None


def _examples(max_examples: int, objective) -> list[Example]:
    """Decisions with an outcome, oldest first. The propensity is kept only where it is the
    probability of the service that reported: the decision's first (primary) pick (a primary
    replaced at dispatch has none: routing.history.records.amend_record). Off-policy
    evaluation skips the others; training uses them all."""
    rows = (
        RoutingDecision.objects.filter(success__isnull=False)
        .exclude(outcome_service="")
        .order_by("-decided_at")
        .values_list(
            "request_type",
            "features",
            "outcome_service",
            "primary_service",
            "success",
            "latency_ms",
            "propensity",
        )[:max_examples]
    )
    examples = []
    for rtype, features, service_id, primary, success, latency, propensity in reversed(list(rows)):
        features = features or {}
        if service_id != primary:
            propensity = None
        request = RouteRequest(
            request_type=rtype,
            priority=float(features.get("priority", 0.5)),
            complexity=float(features.get("complexity", 0.5)),
            capabilities=tuple(features.get("capabilities") or ()),
            anomaly_score=features.get("anomaly_score"),
            payload_size=int(features.get("payload_size", 0)),
        )
        examples.append(
            Example(
                request,
                service_id,
                bool(success),
                latency,
                objective.reward(bool(success), latency),
                tuple(features.get("candidates") or ()),
                propensity,
            )
        )
    return examples


def _active() -> tuple[GateModel | None, gate_lib.Gate]:
    active = GateModel.objects.filter(active=True).first()
    if active is None:
        return None, gate_lib.Gate()
    return active, gate_lib.gate_from_bytes(bytes(active.weights))


def _fit_learner(examples: list[Example], config, objective) -> OutcomeLearner:
    learner = OutcomeLearner(config, objective)
    for ex in examples:
        learner.observe(ex.service_id, ex.request.request_type, ex.request.complexity, ex.reward)
    return learner


def _policy(learner: OutcomeLearner):
    def probabilities(row: LoggedDecision) -> np.ndarray:
        mean, evidence, score = learner.scores(row.request_type, row.complexity, row.candidates)
        stale = learner.stale(row.request_type, row.candidates)
        return learner.probabilities(score, float(evidence.sum()), evidence, score - mean, stale)

    return probabilities


def _reward_model(learner: OutcomeLearner):
    def predict(row: LoggedDecision) -> np.ndarray:
        return learner.estimates(row.request_type, row.complexity, row.candidates)[0]

    return predict


def evaluate_candidate(
    candidate: OutcomeLearner,
    active: OutcomeLearner | None,
    held_out: list[Example],
    confidence: float,
    min_ess: float,
    cold_start: str = "cold start (no active version)",
) -> dict:
    """Off-policy evaluation of ``candidate`` against ``active`` (None: the learner starting
    from nothing, described by ``cold_start``) on ``held_out``; the dict stored with the
    version (see routing.core.offpolicy)."""
    logged = offpolicy.usable(
        [
            LoggedDecision(
                ex.request.request_type,
                ex.request.complexity,
                ex.candidates,
                ex.service_id,
                ex.propensity,
                ex.reward,
            )
            for ex in held_out
        ]
    )
    model = _reward_model(candidate)  # fitted on the training split only
    new = offpolicy.estimate(logged, _policy(candidate), model)
    if active is None:
        # What a worker runs with no version to load: the learner starting from nothing.
        active = OutcomeLearner(candidate.config, candidate.objective)
        against = cold_start
    else:
        against = "active version"
    old = offpolicy.estimate(logged, _policy(active), model)
    verdict = offpolicy.compare(new, old, confidence, min_ess)
    if len(logged) < 2:
        verdict["decision"] = (
            f"not enough logged decisions to compare: {len(logged)} of {len(held_out)} held "
            f"out usable ({_unusable(held_out)})"
        )
    return {
        "method": "doubly robust, paired, one-sided normal bound",
        "against": against,
        "held_out": len(held_out),
        "usable": len(logged),
        "candidate": new.as_dict(),
        "baseline": old.as_dict(),
        # For context: what the policy that logged these decisions actually obtained.
        "logged": offpolicy.logged_value(logged).as_dict(),
        "ess": round(new.ess, 1),
        **verdict,
    }


def _unusable(held_out: list[Example]) -> str:
    """Why held-out decisions cannot be used off-policy, counted."""
    no_p = sum(1 for ex in held_out if ex.propensity is None)
    bad_p = sum(
        1 for ex in held_out if ex.propensity is not None and not ex.propensity > 0
    )  # zero, negative or NaN
    outside = sum(1 for ex in held_out if ex.propensity and ex.service_id not in ex.candidates)
    return (
        f"{no_p} without a propensity, {bad_p} with a zero one, "
        f"{outside} without their service among the logged candidates"
    )


def _flush_history_first() -> None:
    """Outcomes reported a moment ago are still in the history buffers (the Redis stream, or
    spool segments) until the next scheduled flush: drain them, so a retrain right after
    reporting learns from them. A flush that fails leaves the retrain to what is stored."""
    from routing.history import flush_history

    try:
        flush_history()
    except Exception as exc:  # noqa: BLE001 - a broken buffer must not stop the retrain
        logger.warning("retrain: history flush failed, training on what is stored: %s", exc)


def retrain_gate(max_examples: int | None = None) -> dict:
    from routing.runtime import engine_config

    config = engine_config()
    objective = config.objective
    # Outcomes from now on are not in this version's learner: a worker loading it replays
    # the ones it observed since (OutcomeLearner.load_bytes).
    through = time.time()
    _flush_history_first()
    examples = _examples(max_examples or MAX_EXAMPLES, objective)
    if len(examples) < MIN_EXAMPLES:
        return {"trained": False, "reason": f"only {len(examples)} examples with outcomes"}
    split = int(len(examples) * (1 - VALIDATION_FRACTION))
    train, held_out = examples[:split], examples[split:]
    snapshot = build_fleet_snapshot()
    active_row, active_gate = _active()
    candidate_gate = gate_lib.gate_from_bytes(gate_lib.gate_to_bytes(active_gate))
    gate_examples = [
        gate_lib.GateExample(ex.request, ex.service_id, ex.success, ex.latency_ms) for ex in train
    ]
    training_metrics = gate_lib.train_gate(candidate_gate, gate_examples, snapshot)
    gate_val = gate_lib.evaluate_gate(
        candidate_gate,
        [gate_lib.GateExample(e.request, e.service_id, e.success, e.latency_ms) for e in held_out],
        snapshot,
    )
    candidate = _fit_learner(train, config.learner_config, objective)
    active = None
    cold_start = "cold start (no active version)"
    if active_row is not None:
        # Not "no active version": say which one could not be compared against.
        cold_start = f"cold start (active version {active_row.version} has no usable learner)"
        if active_row.policy_weights:
            active = OutcomeLearner(config.learner_config, objective)
            try:
                active.load_bytes(bytes(active_row.policy_weights))
            except (ValueError, KeyError, TypeError):
                active = None
    evaluation = evaluate_candidate(
        candidate,
        active,
        held_out,
        settings.MOE_OPE_CONFIDENCE,
        settings.MOE_OPE_MIN_ESS,
        cold_start,
    )
    # Which version the baseline was (None: a cold start, ``against`` says why).
    evaluation["baseline_version"] = active_row.version if active is not None else None
    better = bool(evaluation["better"])
    evaluation["activated"] = better
    evaluation["objective"] = objective.as_dict()
    deployed = _fit_learner(examples, config.learner_config, objective) if better else candidate
    with transaction.atomic():
        version = (GateModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
        row = GateModel.objects.create(
            version=version,
            weights=gate_lib.gate_to_bytes(candidate_gate),
            policy_weights=deployed.to_bytes(through=through),
            training_metrics=_jsonable(
                {**training_metrics, "examples": len(train), "learner": candidate.stats()}
            ),
            validation_metrics=_jsonable(gate_val),
            evaluation=_jsonable(evaluation),
            notes=evaluation["decision"][:500],
        )
    if better:
        activate_gate_version(row.version)
    logger.info(
        "retrain: v%s on %d examples, activated=%s (%s)",
        version,
        len(train),
        better,
        evaluation["decision"],
    )
    return {
        "trained": True,
        "version": version,
        "activated": better,
        "examples": len(examples),
        "evaluation": row.evaluation,
        "reason": evaluation["decision"],
    }


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

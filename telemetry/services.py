"""Fleet operations run by the Celery jobs: rebalance weights, probe health.

Both read live state through the router's state store (shared through Redis when configured)
and write the registry through bulk updates that bump the registry version once, so every web
worker rebuilds its snapshot with the new weights or health.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.choices import ServiceHealth, ServiceStatus
from registry.models import Service
from registry.services import bump_registry_version

logger = logging.getLogger(__name__)

# Weights move at most this fraction toward their target per run, so one noisy window
# cannot swing traffic; and they stay within [MIN_WEIGHT, MAX_WEIGHT].
REBALANCE_STEP = 0.5
MIN_WEIGHT, MAX_WEIGHT = 0.05, 10.0
# A weight change smaller than this is not written (avoids version churn).
MIN_CHANGE = 0.01
DEGRADED_LATENCY_MS = 1000.0


def rebalance_weights() -> dict:
    """Set each active service's weight from capacity, latency and errors.

    target_i = capacity_i / mean(capacity) * latency_factor_i * (1 - error_rate_i), where
    latency_factor = median EWMA latency / own EWMA latency (1 when not measured), clipped;
    the weight moves REBALANCE_STEP of the way toward its target. A pinned weight
    (``Service.weight_pinned``, set by an operator) is left alone and listed in ``pinned``;
    the service still counts in the fleet's mean capacity and median latency.
    """
    from routing.runtime import get_router

    services = list(Service.objects.filter(status=ServiceStatus.ACTIVE).order_by("service_id"))
    if not services:
        return {"changed": {}, "services": 0}
    ids = [s.service_id for s in services]
    live = get_router().live_states(ids)
    capacity = np.array([s.max_capacity for s in services], dtype=float)
    latency = np.array([live[sid]["ewma_latency_ms"] for sid in ids], dtype=float)
    errors = np.array([live[sid]["error_rate"] for sid in ids], dtype=float)
    if not settings.REDIS_URL:
        # Without Redis, live state belongs to the web process and this job runs in the
        # Celery worker: use the outcomes recorded in history instead where there are some.
        latency, errors = _with_recent_history(ids, latency, errors)
    measured = latency > 0
    median = float(np.median(latency[measured])) if measured.any() else 0.0
    latency_factor = np.where(measured, median / np.maximum(latency, 1e-6), 1.0)
    target = capacity / capacity.mean() * np.clip(latency_factor, 0.25, 4.0) * (1 - errors)
    target = np.clip(target, MIN_WEIGHT, MAX_WEIGHT)
    changed: dict[str, dict] = {}
    updates = []
    for service, goal in zip(services, target, strict=True):
        if service.weight_pinned:
            continue
        new = round(service.weight + REBALANCE_STEP * (float(goal) - service.weight), 4)
        new = min(max(new, MIN_WEIGHT), MAX_WEIGHT)
        if abs(new - service.weight) >= MIN_CHANGE:
            changed[service.service_id] = {"from": service.weight, "to": new}
            service.weight = new
            service.updated_at = timezone.now()
            updates.append(service)
    version = _write_weights(updates, changed) if updates else None
    anomalies = _update_anomaly_scores([s.service_id for s in services], latency, errors)
    result = {
        "changed": changed,
        "services": len(services),
        "pinned": sorted(s.service_id for s in services if s.weight_pinned),
        "registry_version": version,
        "anomalies": anomalies,
    }
    from telemetry.events import publish_event

    publish_event("rebalanced", result)
    return result


def _write_weights(updates: list[Service], changed: dict[str, dict]) -> int | None:
    """Write the new weights; return the registry version, or None when nothing was written.

    Rows an operator pinned or re-weighted since they were read are skipped (and dropped from
    ``changed``): the job must not undo what was set while it computed.
    """
    with transaction.atomic():
        current = dict(
            Service.objects.select_for_update()
            .filter(pk__in=[s.pk for s in updates], weight_pinned=False)
            .values_list("pk", "weight")
        )
        for service in updates:
            if current.get(service.pk) != changed[service.service_id]["from"]:
                del changed[service.service_id]
        kept = [s for s in updates if s.service_id in changed]
        if not kept:
            return None
        Service.objects.bulk_update(kept, ["weight", "updated_at"])
        return bump_registry_version()


# History used for weights when live state is not shared (the embedded default).
HISTORY_WINDOW = timedelta(minutes=10)
HISTORY_MIN_OUTCOMES = 5


def _with_recent_history(ids, latency: np.ndarray, errors: np.ndarray):
    from django.db.models import Avg, Count, Q

    from routing.models import RoutingDecision

    since = timezone.now() - HISTORY_WINDOW
    rows = (
        RoutingDecision.objects.filter(reported_at__gte=since, outcome_service__in=ids)
        .values("outcome_service")
        .annotate(
            n=Count("id"),
            failures=Count("id", filter=Q(success=False)),
            latency=Avg("latency_ms", filter=Q(success=True)),
        )
    )
    stats = {row["outcome_service"]: row for row in rows}
    latency, errors = latency.copy(), errors.copy()
    for i, sid in enumerate(ids):
        row = stats.get(sid)
        if row and row["n"] >= HISTORY_MIN_OUTCOMES:
            latency[i] = row["latency"] or latency[i]
            errors[i] = row["failures"] / row["n"]
    return latency, errors


def _update_anomaly_scores(service_ids, latency: np.ndarray, errors: np.ndarray) -> dict:
    """Telemetry outliers (latency / error-rate z-scores) become each service's anomaly score,
    which ``tda_aware`` routes around. Returns the services now scored above zero.

    The scores go to this process's store (the shared one with Redis) and to the database,
    which is what the web process sees in the embedded default: a changed score bumps the
    registry version, and each router applies the stored scores when it rebuilds its snapshot
    (:func:`apply_recorded_anomalies`).
    """
    from routing.core.anomaly import outlier_scores
    from routing.runtime import get_router

    scores = outlier_scores(latency, errors)
    store = get_router().store
    for service_id, score in zip(service_ids, scores, strict=True):
        store.set_anomaly(service_id, float(score))
    _record_anomaly_scores(dict(zip(service_ids, (float(x) for x in scores), strict=True)))
    return {sid: round(float(x), 3) for sid, x in zip(service_ids, scores, strict=True) if x > 0}


# A stored score that moves less than this is not rewritten (avoids registry version churn).
MIN_ANOMALY_CHANGE = 0.01


def _record_anomaly_scores(scores: dict[str, float]) -> bool:
    """Upsert the scores that changed; bump the registry version once if any did."""
    from telemetry.models import ServiceAnomaly

    with transaction.atomic():
        pks = dict(Service.objects.filter(service_id__in=scores).values_list("service_id", "pk"))
        slug_of = {pk: sid for sid, pk in pks.items()}
        # ServiceAnomaly.service_id is the Service row's primary key, not its slug.
        rows = ServiceAnomaly.objects.select_for_update().filter(service_id__in=slug_of)
        stored = {slug_of[row.service_id]: row for row in rows}
        now = timezone.now()
        create, update = [], []
        for service_id, pk in pks.items():
            score = min(1.0, max(0.0, scores[service_id]))
            row = stored.get(service_id)
            if row is None:
                if score > 0:
                    create.append(ServiceAnomaly(service_id=pk, score=score))
            elif abs(row.score - score) >= MIN_ANOMALY_CHANGE or (score == 0) != (row.score == 0):
                row.score, row.updated_at = score, now
                update.append(row)
        if create:
            ServiceAnomaly.objects.bulk_create(create)
        if update:
            ServiceAnomaly.objects.bulk_update(update, ["score", "updated_at"])
        changed = bool(create or update)
        if changed:
            bump_registry_version()
    return changed


def recorded_anomaly_scores() -> dict[str, float]:
    """service id -> the anomaly score the rebalance job last stored for it."""
    from telemetry.models import ServiceAnomaly

    return dict(ServiceAnomaly.objects.values_list("service__service_id", "score"))


def apply_recorded_anomalies(store) -> dict[str, float]:
    """Copy the stored anomaly scores into a router's live-state ``store`` (called when the
    router rebuilds its fleet snapshot). Nothing to do with Redis: the job set the shared
    store itself, and an external detector's scores there must not be overwritten."""
    if settings.REDIS_URL:
        return {}
    scores = recorded_anomaly_scores()
    for service_id, score in scores.items():
        store.set_anomaly(service_id, score)
    return scores


def probe_health(timeout_s: float | None = None) -> dict:
    """GET every non-disabled service's health URL; update health, last_seen and the breaker."""
    from routing.runtime import get_router

    timeout_s = timeout_s or settings.MOE_HEALTH_PROBE_TIMEOUT_SECONDS
    services = list(Service.objects.exclude(status=ServiceStatus.DISABLED))
    store = get_router().store
    results: dict[str, str] = {}
    updates = []
    now = timezone.now()
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for service in services:
            url = service.endpoint.rstrip("/") + service.health_path
            started = time.perf_counter()
            try:
                response = client.get(url)
                code = response.status_code
            except httpx.HTTPError:
                code = None
            latency_ms = (time.perf_counter() - started) * 1000
            if code is not None and 200 <= code < 300:
                health = (
                    ServiceHealth.DEGRADED
                    if latency_ms > DEGRADED_LATENCY_MS
                    else ServiceHealth.HEALTHY
                )
            else:
                health = ServiceHealth.UNHEALTHY
            store.record_outcome(
                f"probe:{service.service_id}:{time.time_ns()}",
                service.service_id,
                health != ServiceHealth.UNHEALTHY,
                latency_ms,
            )
            results[service.service_id] = health
            changed = health != service.health
            if code is not None:
                service.last_seen = now
            if changed or code is not None:
                service.health = health
                updates.append(service)
            if changed:
                logger.info("health: %s is now %s", service.service_id, health)
    if updates:
        with transaction.atomic():
            pks = [s.pk for s in updates]
            before = dict(Service.objects.filter(pk__in=pks).values_list("pk", "health"))
            Service.objects.bulk_update(updates, ["health", "last_seen"])
            if any(before.get(s.pk) != s.health for s in updates):
                bump_registry_version()
    return {"probed": len(services), "health": results}

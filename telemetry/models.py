"""What the telemetry jobs learn about services, kept where every process can read it.

In the embedded default the Celery worker and the web process share no memory, only the
database: the rebalance job's anomaly scores are written here, and each router copies them
into its live-state store when it rebuilds its fleet snapshot (the job bumps the registry
version when a score changed). With Redis the job also sets them in the shared store directly.
"""

from django.db import models


class ServiceAnomaly(models.Model):
    """A service's latest anomaly score (0 normal .. 1 outlier), as the rebalance job saw it."""

    service = models.OneToOneField(
        "registry.Service", on_delete=models.CASCADE, related_name="recorded_anomaly"
    )
    score = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__service_id"]
        verbose_name_plural = "service anomalies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=0.0) & models.Q(score__lte=1.0),
                name="telemetry_anomaly_score_unit",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service_id}: {self.score:.3f}"

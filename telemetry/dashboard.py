"""The operator dashboard at ``/dashboard/``: one page, drawn in the browser with plain JS.

The page polls ``GET /api/v1/services`` and ``GET /api/v1/metrics`` (session-authenticated)
and applies ``WS /ws/routing`` events live; see ``templates/telemetry/dashboard.html``.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from registry.permissions import is_operator
from telemetry.events import get_publisher

POLL_INTERVAL_MS = 2000


@require_GET
@login_required  # LOGIN_URL is the admin login
def dashboard(request):
    """Operators only: anonymous users go to the login page, other users get a 403."""
    if not is_operator(request.user):
        raise PermissionDenied("Only operators may view the dashboard.")
    publisher = get_publisher()
    config = {
        "wsPath": "/ws/routing",
        "servicesUrl": reverse("service-list"),
        "metricsUrl": reverse("metrics-json"),
        "loginUrl": f"{reverse('admin:login')}?next={request.path}",
        "pollMs": POLL_INTERVAL_MS,
        "routeFlushMs": round(publisher.interval * 1000),
    }
    return render(request, "telemetry/dashboard.html", {"config": config})

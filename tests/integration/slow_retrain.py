"""Test only, loaded by a Celery worker through ``CELERY_IMPORTS``
(``tests/integration/worker_lost_settings.py``): retraining the gate waits, STARTED, until the
file ``<MOE_VAR_DIR>/release-retrain`` exists (at most two minutes), then returns without
training. A test can kill the worker while a retrain runs, or let it finish; nothing in the
application's own code waits."""

import os
import time
from pathlib import Path

from django.conf import settings

import routing.training

RELEASE_FILE = "release-retrain"
LONGEST_WAIT_S = 120.0


def waiting_retrain(max_examples: int | None = None) -> dict:
    release = Path(settings.VAR_DIR) / RELEASE_FILE
    deadline = time.monotonic() + LONGEST_WAIT_S
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"trained": False, "released": release.exists()}


# routing.tasks.retrain_gate imports routing.training.retrain_gate when it runs. Only in the
# test's own servers: the test process imports this module too (RELEASE_FILE), and its
# in-process (eager) retrains must not wait.
if os.environ.get("DJANGO_SETTINGS_MODULE") == "tests.integration.worker_lost_settings":
    routing.training.retrain_gate = waiting_retrain

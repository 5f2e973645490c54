"""``moe_project.settings`` for the servers of ``test_a_job_whose_worker_died_says_so``: the
worker loads :mod:`tests.integration.slow_retrain` (a retrain waits until the test releases
it), and with Redis the broker's keys carry a prefix of the test's own
(``MOE_TEST_BROKER_PREFIX``), so its worker takes only the jobs its web process queued."""

import os

from moe_project.settings import *  # noqa: F403
from moe_project.settings import CELERY_BROKER_TRANSPORT_OPTIONS, REDIS_URL

CELERY_IMPORTS = ("tests.integration.slow_retrain",)
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "global_keyprefix": os.environ["MOE_TEST_BROKER_PREFIX"],
    }

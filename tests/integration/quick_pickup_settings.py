"""``moe_project.settings`` with a short ``MOE_JOB_PICKUP_SECONDS``, for servers that must report
a job no worker picks up within a test's patience (the default is a minute)."""

from moe_project.settings import *  # noqa: F403

MOE_JOB_PICKUP_SECONDS = 2.0

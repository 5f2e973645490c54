"""The routing core's tests need no Django, database or network; hypothesis stays small."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "core",
    max_examples=int(os.environ.get("CORE_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("core")

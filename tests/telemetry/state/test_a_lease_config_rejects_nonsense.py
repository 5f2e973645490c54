"""LeaseConfig refuses settings that cannot describe a lease, and both stores take it."""

import math

import pytest

from routing.core.state import LeaseConfig


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"min_s": 2.0, "max_s": 1.0}, "min_s .* must be <= max_s"),  # floor above the cap
        ({"default_s": 60.0}, "default_s .* within"),  # the default beyond the cap
        ({"default_s": 0.001, "min_s": 0.01}, "default_s .* within"),  # below the floor
        ({"default_s": 0.0}, "default_s must be finite and > 0"),
        ({"default_s": -1.0}, "default_s must be finite and > 0"),
        ({"factor": 0.0}, "factor must be finite and > 0"),
        ({"factor": -2.0}, "factor must be finite and > 0"),
        ({"factor": math.nan}, "factor must be finite and > 0"),
        ({"min_s": 0.0}, "min_s must be finite and > 0"),
        ({"max_s": math.inf}, "max_s must be finite and > 0"),
        ({"default_s": "0.1"}, "default_s must be a number"),
    ],
)
def test_nonsense_is_a_value_error_that_says_why(options, reason):
    with pytest.raises(ValueError, match=f"lease {reason}"):
        LeaseConfig(**options)


def test_sensible_configs_are_accepted_and_frozen():
    lease = LeaseConfig(default_s=0.5, factor=1.0, min_s=0.5, max_s=0.5)
    assert lease == LeaseConfig.fixed(0.5)
    with pytest.raises(AttributeError):
        lease.max_s = 1.0  # type: ignore[misc]


def test_both_stores_keep_the_lease_they_were_given(backend):
    lease = LeaseConfig(default_s=0.3, factor=4.0, min_s=0.02, max_s=9.0)
    assert backend(lease=lease).lease is lease
    assert backend().lease == LeaseConfig()

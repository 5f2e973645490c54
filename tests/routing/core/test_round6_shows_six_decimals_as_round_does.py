"""``round6``: how answers and history round scores and confidences (6 decimals), cheaper than
``round(x, 6)`` and giving what it gives."""

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from routing.core.types import round6


def test_it_gives_what_round_gives_on_a_seeded_sample():
    rng = random.Random(6)
    draws = [rng.random() for _ in range(100_000)] + [rng.uniform(-1e3, 1e3) for _ in range(20_000)]
    differ = [x for x in draws if round6(x) != round(x, 6)]
    assert differ == []


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_it_rounds_to_at_most_six_decimals_and_stays_within_half_a_unit(x):
    y = round6(x)
    assert isinstance(y, float)
    assert round(y, 6) == y  # nothing past the sixth decimal
    assert abs(y - x) <= 5e-7 * (1 + 1e-9) + abs(x) * 1e-15
    assert round6(y) == y


def test_large_numbers_and_non_finite_values():
    assert round6(12345678901.1234567) == round(12345678901.1234567, 6)
    assert round6(-2e9 - 0.1234567) == round(-2e9 - 0.1234567, 6)
    assert round6(math.inf) == math.inf and round6(-math.inf) == -math.inf
    assert math.isnan(round6(math.nan))
    assert round6(1) == 1.0 and type(round6(1)) is float

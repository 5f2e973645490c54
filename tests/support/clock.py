"""A clock for tests: ``clock()`` returns ``clock.now``, which moves only when told to."""


class FakeClock:
    """A wall clock that only moves when told to (starts at a realistic epoch time)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

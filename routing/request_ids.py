"""How request ids are made, for what reads them back (tests and benchmarks that ask which
worker answered). A request id is its worker's random prefix (``WORKER_PREFIX_DIGITS`` hex
digits), that worker's counter and 64 random bits (``Router._new_id``); a batch item's adds
``-<index in hex>``. No import of the router: cheap for scripts."""

WORKER_PREFIX_DIGITS = 12


def worker_prefix(request_id: str) -> str:
    """The prefix of the worker (process) that made ``request_id``."""
    return request_id[:WORKER_PREFIX_DIGITS]

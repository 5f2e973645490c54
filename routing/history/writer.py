"""The router's one way to write history: :class:`HistoryWriter`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from routing.history.buffers import RedisStreamBuffer, SpoolBuffer

logger = logging.getLogger(__name__)


class HistoryWriter:
    """Buffers the router's records: a Redis stream when a client is given (queued on the
    caller's pipeline, so a routed request still costs one round trip), spool files
    otherwise or when Redis fails. The flush job drains both."""

    def __init__(self, redis_client=None, spool: SpoolBuffer | None = None) -> None:
        self.spool = spool or SpoolBuffer()
        self.stream = RedisStreamBuffer(redis_client, self.spool) if redis_client else None

    def queue(self, pipe, records: Sequence[dict]) -> None:
        """Add records to the caller's Redis pipeline (needs a stream)."""
        self.stream.queue(pipe, records)

    def append(self, records: Sequence[dict], local: bool = False) -> None:
        """Write records now: to the stream (falls back to the spool), or the spool when
        ``local`` or without Redis."""
        if self.stream is not None and not local:
            self.stream.append(records)
        else:
            self.spool.append(records)

    def apply_now(self, records: Sequence[dict]) -> None:
        """Write straight to the database (an outcome whose decision is already flushed)."""
        from routing.history.flush import apply_records

        apply_records(records)

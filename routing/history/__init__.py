"""Routing history that loses nothing and stays off the hot path: one component.

Decisions and outcomes are appended to a buffer as compact records and written to the
database in bulk by :func:`flush_history` (``manage.py flush_history`` and the Celery job call
it). Two buffers:

* :class:`SpoolBuffer` (embedded default): each process appends JSON lines to its own segment
  file under ``var/history/`` with one ``write()`` per call, so a killed process loses nothing it
  acknowledged. Segments are sealed after a size or age limit and then deleted once flushed.
* :class:`RedisStreamBuffer` (with ``REDIS_URL``): one ``XADD`` per call on a stream, queued on
  the caller's pipeline so a routed request still costs one round trip. Flushers read through a
  consumer group and acknowledge after the database commit; entries a dead flusher left
  pending are reclaimed. If Redis is unreachable the records go to the spool instead.

Inserts ignore request ids already present, and outcomes are plain updates, so applying a
record twice is harmless: after a flush every routed request is in the table exactly once.
Outcomes whose decision is not in the table yet are carried over to the next flush.
"""

from routing.history.buffers import RedisStreamBuffer, SpoolBuffer, seal_local_spools
from routing.history.flush import FlushResult, apply_records, flush_history
from routing.history.prune import prune_history
from routing.history.records import (
    amend_record,
    batch_record,
    decision_record,
    decision_records,
    expand_records,
    outcome_record,
)
from routing.history.writer import HistoryWriter

__all__ = [
    "FlushResult",
    "HistoryWriter",
    "RedisStreamBuffer",
    "SpoolBuffer",
    "amend_record",
    "apply_records",
    "batch_record",
    "decision_record",
    "decision_records",
    "expand_records",
    "flush_history",
    "outcome_record",
    "prune_history",
    "seal_local_spools",
]

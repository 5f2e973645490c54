"""Where history records wait for the flush: per-process spool files, or a Redis stream."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)

STREAM_KEY = "moe:history"
STREAM_GROUP = "flushers"
SEGMENT_MAX_RECORDS = 5000
SEGMENT_MAX_AGE_S = 2.0
# Every spool of this process, so a flush here can seal them (no router needed).
_SPOOLS: weakref.WeakSet = weakref.WeakSet()


def _scalar(value):
    """orjson's fallback: a numpy scalar (a batch record keeps strategies' raw values) as the
    exact Python number it holds."""
    item = getattr(value, "item", None)
    if item is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return item()


def dumps(value) -> bytes:
    """JSON for a buffer: records, or a list of them."""
    return orjson.dumps(value, default=_scalar)


def spool_dir() -> Path:
    path = Path(settings.MOE_HISTORY_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


class SpoolBuffer:
    """Per-process segment files of JSON lines (see the module docstring)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or spool_dir()
        _SPOOLS.add(self)
        self._lock = threading.Lock()
        self._handle = None
        self._path: Path | None = None
        self._count = 0
        self._opened_at = 0.0

    def _open_segment(self) -> None:
        name = f"seg-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        self._path = self.directory / f"{name}.open"
        self._handle = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open on purpose
        self._count = 0
        self._opened_at = time.monotonic()
        # Sealed once it is SEGMENT_MAX_AGE_S old even if nothing more is appended: a flusher
        # in another process (the Celery worker) cannot seal it, and an open segment of a
        # live process is only read, never claimed, so it was re-read and re-applied by every
        # flush until the process ended (a web worker that spooled during a Redis outage
        # kept its last segment open for the rest of its life).
        timer = threading.Timer(SEGMENT_MAX_AGE_S, self._seal_if_current, (self._path,))
        timer.daemon = True
        timer.start()

    def _seal_if_current(self, path: Path) -> None:
        with self._lock:
            if self._handle is not None and self._path == path:
                self._seal()

    def _seal(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._path.rename(self._path.with_suffix(".ready"))
        self._handle = None

    def append(self, records: Sequence[dict]) -> None:
        if not records:
            return
        # One line per call: a record's JSON object, or a JSON array of a batch's records (one
        # serialisation instead of a thousand; read_records takes both).
        blob = dumps(records[0] if len(records) == 1 else list(records)) + b"\n"
        with self._lock:
            if self._handle is not None and (
                self._count >= SEGMENT_MAX_RECORDS
                or time.monotonic() - self._opened_at >= SEGMENT_MAX_AGE_S
            ):
                self._seal()
            if self._handle is None:
                self._open_segment()
            self._handle.write(blob)
            self._count += len(records)

    def seal(self) -> None:
        """Close the current segment so the next flush can delete it once applied."""
        with self._lock:
            self._seal()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_records(path: Path) -> list[dict]:
    records = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return records
    for line in raw.split(b"\n"):
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            # Only a torn final line of a segment still being written can fail to parse;
            # it is re-read on the next flush once complete.
            continue
        if type(value) is list:  # a batch's records (SpoolBuffer.append)
            records.extend(value)
        else:
            records.append(value)
    return records


class RedisStreamBuffer:
    """A Redis stream; ``append`` can queue onto the caller's pipeline."""

    def __init__(self, client, fallback: SpoolBuffer) -> None:
        self.client = client
        self.fallback = fallback

    def queue(self, pipe, records: Sequence[dict]) -> None:
        if records:
            pipe.xadd(STREAM_KEY, {"r": dumps(list(records))})

    def append(self, records: Sequence[dict]) -> None:
        import redis

        if not records:
            return
        try:
            self.client.xadd(STREAM_KEY, {"r": dumps(list(records))})
        except redis.RedisError:
            logger.warning("history: Redis unavailable, %d records spooled locally", len(records))
            self.fallback.append(records)


def seal_local_spools() -> None:
    """Close this process's open segments so a flush in this process can take them."""
    for spool in list(_SPOOLS):
        spool.seal()

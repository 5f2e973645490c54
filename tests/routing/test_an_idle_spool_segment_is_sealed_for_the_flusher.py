"""A process's spool segment is sealed once it is old, even if nothing more is written to it.

A web worker spools history to a local segment while Redis is unreachable. When Redis came
back, nothing more was appended, so the segment stayed open for the rest of the worker's life:
the flusher (another process) only reads an open segment of a live process, never claims it,
so every flush re-read and re-applied it. An idle segment is now sealed after
``SEGMENT_MAX_AGE_S``; the next flush claims it, applies it once and deletes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from routing.history import buffers
from routing.history.buffers import SpoolBuffer
from routing.history.flush import flush_history
from routing.models import RoutingDecision
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _record(request_id: str) -> dict:
    return {
        "k": "d",
        "id": request_id,
        "t": "inference",
        "f": {"complexity": 0.5, "candidates": ["svc-a"]},
        "rs": "semantic",
        "s": "semantic",
        "o": None,
        "sel": ["svc-a"],
        "sc": {"svc-a": 1.0},
        "c": 1.0,
        "r": "test",
        "ne": False,
        "ms": 0.01,
        "p": 1.0,
        "cl": "",
        "at": time.time(),
    }


def test_an_idle_segment_is_sealed_without_another_write(tmp_path, monkeypatch):
    monkeypatch.setattr(buffers, "SEGMENT_MAX_AGE_S", 0.2)
    spool = SpoolBuffer(tmp_path)
    spool.append([_record("idle-1")])
    assert [p.suffix for p in tmp_path.iterdir()] == [".open"]
    assert wait_for(lambda: [p.suffix for p in tmp_path.iterdir()] == [".ready"])
    # The next write opens a new segment; the sealed one is left as it was.
    spool.append([_record("idle-2")])
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".open", ".ready"]


@pytest.mark.django_db
def test_another_live_process_s_idle_segment_is_flushed_once_and_removed(tmp_path):
    """The writer is another process that stays alive (as a web worker does): its segment is
    claimed, applied and deleted by this process's flush, not left to be re-read."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from routing.history import buffers
                buffers.SEGMENT_MAX_AGE_S = 0.2
                spool = buffers.SpoolBuffer(Path({str(tmp_path)!r}))
                spool.append([{_record("spooled-by-a-worker")!r}])
                print("written", flush=True)
                time.sleep(60)
                """
            ),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "written"
        assert wait_for(lambda: [p.suffix for p in tmp_path.iterdir()] == [".ready"])
        assert writer.poll() is None  # still alive: its segment was sealed by its own timer
        result = flush_history(tmp_path, use_settings=False)
        assert result.decisions == 1
        assert RoutingDecision.objects.filter(request_id="spooled-by-a-worker").count() == 1
        assert list(tmp_path.iterdir()) == []  # nothing left for the next flush to re-read
    finally:
        writer.kill()
        writer.wait()

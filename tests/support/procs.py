"""Child processes of tests and benchmarks: find the venv's tools, stop a process group, read
CPU time from /proc. Processes are always stopped by their own group, never by name."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tool(name: str) -> str:
    """An executable next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def kill_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), then
    SIGKILL whatever is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def proc_stats() -> dict[int, tuple[str, int, int]]:
    """pid -> (command name, ppid, utime + stime in clock ticks) for every process (Linux
    /proc)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may contain spaces; the rest follows the last ")".
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry.name)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime in clock ticks) for every process (Linux /proc)."""
    return {pid: (ppid, ticks) for pid, (_, ppid, ticks) in proc_stats().items()}


def tree_cpu_ticks(root_pids: list[int]) -> dict[int, int]:
    """pid -> CPU time (user + system, clock ticks) so far, for ``root_pids`` and descendants."""
    table = proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks = {}
    stack = list(root_pids)
    while stack:
        pid = stack.pop()
        if pid in table:
            ticks[pid] = table[pid][1]
        stack.extend(children.get(pid, ()))
    return ticks

"""path_lock: processes that build into one cache folder take turns (toolkit/fsio.py)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from toolkit.fsio import path_lock

HOLD = """
import sys, time
from toolkit.fsio import path_lock
with path_lock(sys.argv[1]):
    t0 = time.time()
    time.sleep(0.4)
    print(t0, time.time(), flush=True)
"""


def test_processes_holding_one_lock_never_overlap(tmp_path: Path) -> None:
    lock = tmp_path / "build" / ".abc.lock"
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    spans = sorted(tuple(map(float, p.communicate(timeout=60)[0].split())) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, spans                  # each waited for the one before it


def test_reentrant_in_a_thread_exclusive_across_threads(tmp_path: Path) -> None:
    lock, events = tmp_path / ".l.lock", []

    def other() -> None:
        with path_lock(lock):
            events.append("other")

    with path_lock(lock):
        with path_lock(lock):                       # the same thread again: no deadlock
            t = threading.Thread(target=other)
            t.start()
            time.sleep(0.3)
            events.append("main")                   # the other thread is still waiting
    t.join(timeout=10)
    assert events == ["main", "other"]

"""Child processes that die with edgetk (Linux PR_SET_PDEATHSIG): forked workers and the tools it runs.

A SIGKILLed edgetk gets no chance to stop its children; the kernel does it for them with this flag.
"""
from __future__ import annotations

import functools
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """In a child: have Linux send `sig` when the parent dies; exit at once if `parent` died already. No-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


def child_kwargs(sig: int = signal.SIGTERM) -> dict[str, object]:
    """subprocess.Popen/run keyword arguments for a child that gets `sig` when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return {}
    return {"preexec_fn": functools.partial(die_with_parent, int(sig), os.getpid())}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child process to listen on: QEMU's serial, a Ray
    node)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""`--json` output: one JSON document on stdout, every human line (and child process output) on stderr."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Iterator, TextIO

_stdout: list[TextIO] = []   # the real stdout while a --json command runs
_emitted: list[int] = []     # documents written by the running command


def emit(doc: Any) -> None:
    """Write one JSON document to the real stdout (the command's result under --json)."""
    stream = _stdout[-1] if _stdout else sys.stdout
    stream.write(json.dumps(doc, indent=2, default=str) + "\n")
    stream.flush()
    if _emitted:
        _emitted[-1] += 1


def json_active() -> bool:
    """Whether a --json command is running (its stdout holds one JSON document; toolkit.progress stays quiet)."""
    return bool(_stdout)


def emitted() -> int:
    """How many documents the running command has written."""
    return _emitted[-1] if _emitted else 0


@contextlib.contextmanager
def json_stdout(enabled: bool = True) -> Iterator[None]:
    """While active, print() and children write to stderr; emit() writes to the real stdout."""
    if not enabled:
        _emitted.append(0)
        try:
            yield
        finally:
            _emitted.pop()
        return
    saved_fd, real = _detach_stdout()
    _stdout.append(real)
    _emitted.append(0)
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout = old
        _stdout.pop()
        _emitted.pop()
        _reattach_stdout(saved_fd, real)


def _detach_stdout() -> tuple[int | None, TextIO]:
    """Point file descriptor 1 at stderr (children's output too) and return a stream on the real stdout."""
    try:
        is_fd1 = sys.stdout is sys.__stdout__ and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        is_fd1 = False
    if not is_fd1:
        return None, sys.stdout  # captured (tests): redirect at the Python level only
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved, os.fdopen(os.dup(saved), "w", encoding="utf-8")


def _reattach_stdout(saved_fd: int | None, real: TextIO) -> None:
    if saved_fd is None:
        return
    with contextlib.suppress(OSError):
        real.close()
    os.dup2(saved_fd, 1)
    os.close(saved_fd)

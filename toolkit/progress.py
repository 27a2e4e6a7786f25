"""Progress on long work, drawn with rich on stderr for a person at a terminal; silent otherwise.

One display per process: `bar(...)` for counted work (batches, samples) with rate and ETA, `stage(...)` for a
step without a count (a spinner, then one "done" line with its time). Nested calls share the display.
`third_party()` wraps calls into libraries with their own bars and INFO logs (NNCF, tqdm users): their rich
bars draw inside this display on stderr, or nowhere when the display is off; nothing reaches stdout.
The display is off when stderr is not a terminal, under --json (toolkit.output), with -q (the root logger
above INFO; library callers get it by configuring logging at INFO), or when the caller passes quiet=True.
Drawing never touches random generators or data order.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any, Iterator

from toolkit.output import json_active

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"progress": None, "depth": 0, "configured": None, "handlers": []}


def enabled() -> bool:
    """Whether a display is wanted: stderr is a terminal, no --json document is being written, logging at INFO."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not json_active() and logging.getLogger().getEffectiveLevel() <= logging.INFO


class Bar:
    """A handle on one line of the display; every method does nothing when the display is off."""

    def __init__(self, task: Any = None) -> None:
        self._task = task

    def advance(self, n: float = 1, info: str | None = None) -> None:
        """Count n more units done; `info` replaces the text after the counts (e.g. "loss 0.4312")."""
        p = _state["progress"]
        if p is not None and self._task is not None:
            p.update(self._task, advance=n, **({} if info is None else {"info": info}))


@contextlib.contextmanager
def bar(description: str, total: int | None, unit: str = "step", *, quiet: bool = False) -> Iterator[Bar]:
    """A counted line (`total` units of `unit`) with rate and ETA, removed when the block ends."""
    with _display(quiet) as p:
        if p is None:
            yield Bar()
            return
        task = p.add_task(description, total=total, unit=unit, info="")
        try:
            yield Bar(task)
        finally:
            p.remove_task(task)


@contextlib.contextmanager
def stage(description: str, *, quiet: bool = False) -> Iterator[Bar]:
    """A step without a count: a spinner with its elapsed time, then "✓ description (1.2 s)" above the display."""
    t0 = time.monotonic()
    with _display(quiet) as p:
        if p is None:
            yield Bar()
            return
        task = p.add_task(description, total=None, unit="", info="")
        try:
            yield Bar(task)
        finally:
            p.remove_task(task)
        p.console.print(f"[green]✓[/green] {description} [dim]({time.monotonic() - t0:.1f} s)[/dim]",
                        highlight=False)


@contextlib.contextmanager
def third_party(*, quiet: bool = False) -> Iterator[None]:
    """Around calls into NNCF and other libraries: their rich bars draw in this display (or nowhere), tqdm bars
    are off when the display is, NNCF's log goes through logging to stderr at WARNING (INFO with -v), and
    hints libraries log on the root logger below ERROR (onnxruntime's "Please consider to run pre-processing
    before quantization") are dropped unless -v."""
    with _display(quiet) as p:
        _route_nncf_log()
        saved = os.environ.get("TQDM_DISABLE")
        if p is None:
            os.environ["TQDM_DISABLE"] = "1"
        root = logging.getLogger()
        hints = None if root.getEffectiveLevel() < logging.INFO else _RootHints()
        if hints is not None:
            root.addFilter(hints)
        try:
            yield
        finally:
            if hints is not None:
                root.removeFilter(hints)
            if saved is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = saved


class _RootHints(logging.Filter):
    """Drops records a library logs on the root logger itself (logging.warning(...)) below ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name != "root" or _EDGETK in record.pathname


_EDGETK = os.path.dirname(os.path.abspath(__file__))


def _route_nncf_log() -> None:
    """NNCF logs to its own handler on stdout at INFO; send its records through the root logger instead."""
    lg = logging.getLogger("nncf")
    for h in list(lg.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            lg.removeHandler(h)
    lg.propagate = True
    # never DEBUG: at DEBUG NNCF writes graph dumps into ./nncf_debug of the current folder
    lg.setLevel(logging.INFO if logging.getLogger().getEffectiveLevel() < logging.INFO else logging.WARNING)


@contextlib.contextmanager
def _display(quiet: bool) -> Iterator[Any]:
    """The shared rich Progress (None when off); the outermost call decides whether it is on, starts and stops it."""
    if _state["depth"] == 0:
        _configure(enabled() and not quiet)
    _state["depth"] += 1
    try:
        if quiet or not _state["configured"] or _state["progress"] is not None:
            yield None if quiet or not _state["configured"] else _state["progress"]
            return
        p = _state["progress"] = _new_progress()
        try:
            with p:
                _logs_above()
                yield p
        finally:
            _logs_restore()
            _state["progress"] = None
    finally:
        _state["depth"] -= 1


def _configure(on: bool) -> None:
    """Point rich's global console (NNCF's bars use it) at stderr, quiet when the display is off."""
    if _state["configured"] is on:
        return
    import rich

    rich.reconfigure(stderr=True, quiet=not on)
    _state["configured"] = on


def _new_progress() -> Any:
    import rich
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30), _counts_column(),
                    TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                    console=rich.get_console(), transient=True, redirect_stdout=False, redirect_stderr=True)


def _counts_column() -> Any:
    """Counts, rate and ETA for counted work ("12/40 3.1 sample/s eta 0:09"); nothing for a stage."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Counts(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            unit, speed, left = task.fields.get("unit", ""), task.speed, task.time_remaining
            rate = f"{speed:,.1f} {unit}/s" if speed is not None else f"- {unit}/s"
            eta = f"{int(left) // 60}:{int(left) % 60:02d}" if left is not None else "-:--"
            return Text(f"{task.completed:,.0f}/{task.total:,.0f} {rate} eta {eta}")

    return Counts()


def _logs_above() -> None:
    """Log handlers bound to the real stderr write through the display (lines appear above it, not through it)."""
    if sys.stderr is sys.__stderr__:
        return
    for h in logging.getLogger().handlers:
        if type(h) is logging.StreamHandler and h.stream is sys.__stderr__:
            _state["handlers"].append((h, h.setStream(sys.stderr)))


def _logs_restore() -> None:
    for h, stream in _state["handlers"]:
        h.setStream(stream)
    _state["handlers"].clear()

"""data.loader: your own Python for everything else, named in the recipe.

"package.module:function" (a module beside the recipe is importable: data.base_dir, the recipe's
folder, is on sys.path while it loads) or the name of an entry point in group `edgetk.datasets`.
The function takes the DataConfig and returns TaskData; ids default to "train#i" / "test#i".
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import sys
from typing import Any, Callable, Iterator

import numpy as np

from toolkit.data.base import TaskData
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
GROUP = "edgetk.datasets"
FIX = 'write data.loader = "module:function" (a module beside the recipe, or an installed package), or an entry point name in group edgetk.datasets'


@contextlib.contextmanager
def on_path(folder: str) -> Iterator[None]:
    """folder on sys.path for the duration (unchanged when empty or already there)."""
    add = bool(folder) and folder not in sys.path
    if add:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if add and folder in sys.path:
            sys.path.remove(folder)


def resolve_loader(spec: str) -> Callable[[DataConfig], Any]:
    """The function a data.loader names (module:function, or an edgetk.datasets entry point)."""
    if ":" not in spec:
        from importlib.metadata import entry_points

        found = [ep for ep in entry_points(group=GROUP) if ep.name == spec]
        if not found:
            names = sorted(ep.name for ep in entry_points(group=GROUP))
            raise EdgetkError(f"data.loader = {spec!r}: no entry point of that name in group {GROUP} "
                              f"(installed: {', '.join(names) or 'none'})", fix=FIX)
        return found[0].load()
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise EdgetkError(f"data.loader = {spec!r}: module {e.name!r} not found", fix=FIX) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise EdgetkError(f"data.loader = {spec!r}: {module_name} has no function {attr!r}", fix=FIX)
    return fn


def load_hook(cfg: DataConfig) -> TaskData:
    """Call the data.loader hook and check what it returns."""
    with on_path(cfg.base_dir):
        fn = resolve_loader(cfg.loader)
        try:
            data = fn(cfg)
        except EdgetkError:
            raise
        except Exception as e:
            log.debug("data.loader %s raised", cfg.loader, exc_info=True)
            raise EdgetkError(f"data.loader = {cfg.loader!r} raised {type(e).__name__}: {e}",
                              fix="fix the loader (edgetk -v shows the traceback)") from None
    if not isinstance(data, TaskData):
        raise EdgetkError(f"data.loader = {cfg.loader!r} returned {type(data).__name__}, not TaskData",
                          fix="return toolkit.data.TaskData(x_train, y_train, x_test, y_test, labels, kind)")
    for side in ("train", "test"):
        n = len(getattr(data, f"x_{side}"))
        if len(getattr(data, f"y_{side}")) != n:
            raise EdgetkError(f"data.loader = {cfg.loader!r}: x_{side} and y_{side} differ in length", fix="one label per sample")
    fill = {f"ids_{s}": np.array([f"{s}#{i}" for i in range(len(getattr(data, f"x_{s}")))], dtype=str)
            for s in ("train", "test") if getattr(data, f"ids_{s}") is None}
    split = data.split or {"method": "loader", "loader": cfg.loader}
    return dataclasses.replace(data, **fill, split=split, name=data.name or cfg.loader)

"""Datasets: a source stage (a preset by data.name, your files by data.format, or a data.loader hook),
then one split stage and one feature stage (the [frontend] or float standardisation), giving TaskData."""
from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from toolkit.data.base import TaskData

if TYPE_CHECKING:
    from toolkit.data.source import Problems, Samples
    from toolkit.data.split import Split
    from toolkit.recipe import DataConfig, Recipe

log = logging.getLogger(__name__)

# data.name -> preset module under toolkit.data: source(cfg, problems, frontend) -> Samples, float_features(...). One line each.
LOADERS = {
    "fsdd": "toolkit.data.fsdd",
    "basicmotions": "toolkit.data.basicmotions",
    "mitdb": "toolkit.data.mitdb",
    "digits": "toolkit.data.digits",
}
# data.format -> module with source(cfg, problems, frontend) -> Samples. One line each.
FORMATS = {
    "audio-folder": "toolkit.data.audio",
    "csv": "toolkit.data.series",
    "parquet": "toolkit.data.series",
    "image-folder": "toolkit.data.image",
    "npz": "toolkit.data.arrays",
}


def load_dataset(recipe: Recipe) -> TaskData:
    """The recipe's dataset as TaskData (decoded files and features cached under $EDGETK_CACHE)."""
    return load_data(recipe.data, recipe.extra.get("frontend"), recipe.path)


def load_data(cfg: DataConfig, frontend: Any = None, source: str = "recipe") -> TaskData:
    """[data] (+ the optional [frontend] config) -> TaskData: source, split, features; data.groups applied last."""
    from toolkit.data.source import Problems

    if cfg.loader:
        from toolkit.data.hook import load_hook

        data = load_hook(cfg)
    else:
        from toolkit.data.features import make_task

        module = source_module(cfg, source)
        samples, split = load_samples(cfg, frontend, Problems(cfg.on_error), source)
        data = make_task(samples, split, cfg, frontend, getattr(module, "float_features", None))
    if cfg.groups:
        from toolkit.data.base import select_groups

        data = select_groups(data, cfg.groups)
    log.debug("%s", data.summary())
    return data


def source_module(cfg: DataConfig, source: str = "recipe") -> ModuleType:
    """The preset (data.name) or format (data.format) module."""
    from toolkit.recipe import check_choice

    if cfg.format:
        check_choice(source, "data.format", cfg.format, FORMATS)
        return importlib.import_module(FORMATS[cfg.format])
    check_choice(source, "data.name", cfg.name, LOADERS)
    return importlib.import_module(LOADERS[cfg.name])


def load_samples(cfg: DataConfig, frontend: Any, problems: Problems, source: str = "recipe") -> tuple[Samples, Split]:
    """The source and split stages: raw samples and their train/test indices."""
    from toolkit.data.split import split_samples

    samples = source_module(cfg, source).source(cfg, problems, frontend)
    return samples, split_samples(samples.y, samples.groups, samples.given, cfg, samples.name or source)


__all__ = ["TaskData", "load_dataset", "load_data", "load_samples", "LOADERS", "FORMATS"]

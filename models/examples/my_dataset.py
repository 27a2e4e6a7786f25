"""An example data.loader hook (models/examples/hook.toml): DataConfig in, TaskData out.

This one reuses BasicMotions through the data stages; yours would read your own files from cfg.root
(resolved against cfg.base_dir, the recipe's folder).
"""
from __future__ import annotations

from toolkit.data import TaskData, load_data
from toolkit.recipe import DataConfig


def load(cfg: DataConfig) -> TaskData:
    """Return train/test arrays in the model layout with labels (ids_* and raw_* are optional)."""
    return load_data(DataConfig(name="basicmotions", split_seed=cfg.split_seed))

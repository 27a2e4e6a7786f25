"""Training: deterministic, checkpointed every epoch, exactly resumable; load_run reads a finished run."""
from __future__ import annotations

from toolkit.train.rundir import Run, load_run
from toolkit.train.trainer import LossFn, ParamFilter, train

__all__ = ["train", "load_run", "Run", "LossFn", "ParamFilter"]

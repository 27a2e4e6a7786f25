"""Per-epoch training checkpoints: written atomically, read with torch.load(weights_only=True)."""
from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_bytes

log = logging.getLogger(__name__)
LOOP_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng")      # every training loop's checkpoint
KEYS = (*LOOP_KEYS, "history", "recipe")                              # the trainer's checkpoints/last.pt


def rng_state() -> dict[str, Any]:
    """Every RNG state the trainer touches (torch CPU, numpy global, Python random)."""
    return {"torch": torch.get_rng_state(), "numpy": json.dumps(_np_state()),
            "python": json.dumps(random.getstate())}


def _np_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = json.loads(state["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save the state to bytes, then write it atomically (a kill never leaves half a file)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
    """Read a checkpoint safely; any damage becomes one EdgetkError naming the file and the fix."""
    fix = (f"delete {path.parent.parent} and train again without --resume (the run cannot be continued), "
           "or restore an intact copy of the checkpoint")
    if not path.is_file():
        raise EdgetkError(f"no checkpoint to resume from: {path} does not exist",
                          fix="resume a run folder written by `edgetk train` (it holds checkpoints/last.pt), "
                          "or start a new run without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise EdgetkError(f"checkpoint {path} is corrupted or not a checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else 'unreadable'})", fix=fix) from None
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise EdgetkError(f"checkpoint {path} is not an edgetk training checkpoint (missing fields)", fix=fix)
    return state


def save_loop(path: Path, model: nn.Module, opt: Any, sched: Any, epoch: int,
              gens: Sequence[torch.Generator] = (), **extra: Any) -> None:
    """Checkpoint a training loop after `epoch` epochs: weights, optimizer, scheduler, global RNGs, its own generators."""
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                           "epoch": epoch, "rng": rng_state(), "generators": [g.get_state() for g in gens], **extra})


def restore_loop(state: dict[str, Any], model: nn.Module, opt: Any, sched: Any,
                 gens: Sequence[torch.Generator] = ()) -> int:
    """Put what save_loop() captured back into the loop's objects; returns the epochs done."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    for g, g_state in zip(gens, state.get("generators", ()), strict=True):
        g.set_state(g_state)
    return int(state["epoch"])


def resume_loop(path: Path | None, model: nn.Module, opt: Any, sched: Any,
                gens: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """Restore the save_loop() checkpoint at path when there is one; returns its state ({} when none: start afresh)."""
    if path is None or not path.is_file():
        return {}
    state = load_checkpoint(path, LOOP_KEYS)
    restore_loop(state, model, opt, sched, gens)
    log.info("resuming %s after epoch %d", path, state["epoch"])
    return state

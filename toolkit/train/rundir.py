"""Run folder artifacts (weights, metrics, curve) and load_run() to read a finished run back."""
from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from toolkit.data import TaskData, load_dataset
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_bytes, atomic_write_json
from toolkit.recipe import Recipe, recipe_from_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """A finished training run: its folder, recipe, model (eval mode, weights loaded), data and metrics."""

    dir: Path
    recipe: Recipe
    model: nn.Module
    data: TaskData
    metrics: dict[str, Any]


def write_results(out: Path, recipe: Recipe, model: nn.Module, data: TaskData, history: list[dict]) -> dict[str, Any]:
    """Write model.safetensors, metrics.json and curve.png; return the metrics."""
    from safetensors.torch import save

    from toolkit.nn.profile import profile_model
    from toolkit.train.evaluate import evaluate

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", save(state))
    prof = profile_model(model, data.input_shape)
    metrics = {"task": recipe.task, "kind": data.kind, **evaluate(model, data), "params": prof.params,
               "macs": prof.macs, "labels": data.labels, "n_train": len(data.x_train), "n_test": len(data.x_test),
               "input_shape": list(data.input_shape), "epochs": len(history), "seed": recipe.train.seed,
               "final_loss": history[-1]["loss"] if history else None,
               "train_seconds": sum(h["seconds"] for h in history)}
    atomic_write_json(out / "metrics.json", metrics)
    write_split(out, data)
    write_curve(out / "curve.png", history, recipe.task)
    return metrics


def write_split(out: Path, data: TaskData) -> None:
    """RUN_DIR/split.json: how train/test were cut, every sample id and digest, skipped files (load_run checks it)."""
    from toolkit.data.split import split_record

    if data.ids_train is not None and data.ids_test is not None:
        atomic_write_json(out / "split.json", split_record(data))


# Fixed margins instead of fig.tight_layout() (a second layout pass, 1/3 of write_curve's time): each side of the
# 6-inch width holds a y label, its ticks and a tick label like "0.0025" or "99.25".
_CURVE_MARGIN = 0.16


def write_curve(path: Path, history: list[dict], title: str) -> None:
    """Training loss and test metric per epoch, as a PNG (matplotlib's Agg canvas, no pyplot)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=_CURVE_MARGIN, right=1 - _CURVE_MARGIN, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["value"] for h in history], color="tab:orange", label=history[0]["metric"] if history else "")
    ax2.set_ylabel(history[0]["metric"] if history else "metric")
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def load_run(run_dir: str | Path, data: TaskData | None = None) -> Run:
    """Read a finished run folder: recipe, model with its weights (eval mode), dataset and metrics. `data`: the
    run's dataset when the caller has it loaded already (a job that just trained the run): not read again, still
    checked against the run's recorded split."""
    d = Path(run_dir)
    for name in ("recipe.toml", "model.safetensors", "metrics.json"):
        if not (d / name).is_file():
            fix = (f"finish it with `edgetk train --resume {d}`" if (d / "checkpoints" / "last.pt").is_file()
                   else "pass a run folder written by `edgetk train RECIPE -o RUN_DIR`")
            raise EdgetkError(f"{d} is not a finished training run ({name} is missing)", fix=fix)
    recipe = recipe_from_dict(tomllib.loads((d / "recipe.toml").read_text(encoding="utf-8")), source=str(d / "recipe.toml"))
    metrics = _read_metrics(d / "metrics.json")
    data = data if data is not None else load_dataset(recipe)
    if (d / "split.json").is_file():
        from toolkit.data.split import check_record

        check_record(_read_metrics(d / "split.json"), data, str(d / "split.json"))
    return Run(d, recipe, _load_model(d / "model.safetensors", recipe, data, metrics), data, metrics)


def _load_model(path: Path, recipe: Recipe, data: TaskData, metrics: dict) -> nn.Module:
    """The recipe's model with path's weights; an unmerged fine-tuned run is rebuilt with PEFT, as export ships it."""
    from toolkit.nn import build_model

    model = build_model(recipe, data)
    cfg = None if metrics.get("merged", False) else recipe.finetune
    if cfg is None:
        return _load_weights(model, path).eval()
    from toolkit.specialize.peft import apply_peft, deployable

    return deployable(_load_weights(apply_peft(model, cfg), path), cfg).requires_grad_(True)


def _load_weights(model: nn.Module, path: Path) -> nn.Module:
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as e:
        raise EdgetkError(f"{path} does not fit the recipe's model ({type(e).__name__})",
                          fix="re-train the run; the weights are damaged or from another recipe") from None
    return model


def _read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgetkError(f"{path} is not valid JSON ({e})", fix="the run is damaged; re-train it") from None

"""Fold a fine-tuned run's PEFT weights into its base architecture and write a plain run folder."""
from __future__ import annotations

import json
import logging
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeReport:
    """What merging changed: parameter counts and MACs before/after and the output difference."""

    mode: str
    out: Path
    unmerged_params: int
    unmerged_macs: int
    merged_params: int
    merged_macs: int
    base_params: int
    base_macs: int
    max_abs_diff: float
    n_inputs: int


def load_peft_model(run_dir: Path):
    """(recipe, data, unmerged PEFT model) of a fine-tuned run folder holding peft.safetensors."""
    from safetensors.torch import load_file

    from toolkit.data import load_dataset
    from toolkit.nn import build_model
    from toolkit.recipe import recipe_from_dict
    from toolkit.specialize.peft import apply_peft

    path = run_dir / "peft.safetensors"
    recipe_path = run_dir / "recipe.toml"
    if not path.is_file() or not recipe_path.is_file():
        raise EdgetkError(f"{run_dir} is not a fine-tuned run (peft.safetensors or recipe.toml is missing)",
                          fix="pass a run folder written by `edgetk train` with a [finetune] recipe")
    recipe = recipe_from_dict(tomllib.loads(recipe_path.read_text(encoding="utf-8")), source=str(recipe_path))
    if recipe.finetune is None:
        raise EdgetkError(f"{recipe_path} has no [finetune] section", fix="pass the fine-tuned run, not its base")
    data = load_dataset(recipe)
    model = apply_peft(build_model(recipe, data), recipe.finetune)
    model.load_state_dict(load_file(str(path)))
    return recipe, data, model.eval()


def merge_run(run_dir: str | Path, out: str | Path | None = None) -> MergeReport:
    """Merge RUN_DIR's PEFT weights into a plain run folder (default RUN_DIR-merged)."""
    import torch

    from toolkit.fsio import atomic_dir, atomic_write_json
    from toolkit.nn import build_model
    from toolkit.nn.profile import profile_model
    from toolkit.specialize.jobs import write_merged

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir.with_name(run_dir.name + "-merged")
    recipe, data, model = load_peft_model(run_dir)
    before = profile_model(model, data.input_shape)
    base = profile_model(build_model(recipe, data), data.input_shape)
    with atomic_dir(out) as tmp:
        for name in ("recipe.toml", "history.jsonl", "peft.safetensors"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        check = write_merged(tmp, recipe, model, data)
        after = profile_model(model, data.input_shape)
        metrics = json.loads((tmp / "metrics.json").read_text())
        atomic_write_json(tmp / "metrics.json", {**metrics, **check, "merged_from": str(run_dir),
                                                 "finetune_mode": recipe.finetune.mode})
    return MergeReport(recipe.finetune.mode, out, before.params, before.macs, after.params, after.macs,
                       base.params, base.macs, check["merge_max_abs_diff"], min(256, len(data.x_test)))


def describe(r: MergeReport) -> str:
    """Human-readable summary of a merge."""
    same = r.merged_params == r.base_params and r.merged_macs == r.base_macs
    return (f"merged {r.mode}: params {r.unmerged_params:,} -> {r.merged_params:,} (base {r.base_params:,}), "
            f"MACs {r.unmerged_macs:,} -> {r.merged_macs:,} (base {r.base_macs:,}); "
            f"{'identical to the base architecture' if same else 'DIFFERS from the base'}; "
            f"max |merged - unmerged| = {r.max_abs_diff:.2e} on {r.n_inputs} test inputs -> {r.out}")



"""Recipe-driven jobs behind `edgetk train` for recipes with [pretrain], [distill], [finetune] or [fleet].

Each job writes plain run folders (recipe.toml, model.safetensors, metrics.json, ...) through the
trainer, so `edgetk export RUN_DIR` works on their output like on any other run.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from toolkit.data import TaskData, load_dataset
from toolkit.data.base import select_groups, subset
from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_write_bytes, atomic_write_json
from toolkit.recipe import Recipe

if TYPE_CHECKING:
    from toolkit.specialize.fleet import StackRunner

log = logging.getLogger(__name__)
SPECIAL = ("fleet", "finetune", "distill", "pretrain")


def is_special(recipe: Recipe) -> bool:
    """Whether the recipe has a section handled here."""
    return any(recipe.extra.get(name) is not None for name in SPECIAL)


def run_recipe(recipe: Recipe, out: Path, json_progress: bool = False, resume: bool = False,
               stacks: StackRunner | None = None) -> Path:
    """Run (or resume) the recipe's specialization job into out; returns the run folder (a fleet: the parent folder).

    A job continues from whatever checkpoints its folder holds (checkpoints/pretrain.pt, stack-<i>.pt,
    last.pt); a new job refuses a folder that holds any. `stacks` trains a batched fleet's stacks elsewhere
    (toolkit.cluster: Ray tasks); other jobs ignore it.
    """
    from toolkit.train.trainer import begin_run

    jobs = [n for n in SPECIAL if recipe.extra.get(n) is not None]
    if len(jobs) > 1:
        raise EdgetkError(f"{recipe.path}: sections {', '.join(jobs)} cannot be combined in one recipe",
                          fix="chain them: train one recipe, then point the next one at its run folder")
    begin_run(recipe, Path(out), resume, checkpoints="*.pt")
    if jobs[0] == "fleet":
        return train_fleet_job(recipe, Path(out), json_progress, stacks)
    return {"finetune": finetune_job, "distill": distill_job,
            "pretrain": pretrain_job}[jobs[0]](recipe, Path(out), json_progress)


def _train(recipe: Recipe, out: Path, **hooks) -> Path:
    """toolkit.train.train, resuming when out holds the trainer's checkpoint."""
    from toolkit.train import train

    return train(recipe, out, resume=(out / "checkpoints" / "last.pt").is_file(), **hooks)


def _seeded_model(recipe: Recipe, data: TaskData, seed: int) -> torch.nn.Module:
    from toolkit.nn import build_model

    torch.manual_seed(seed)
    return build_model(recipe, data)


def _fleet_model(recipe: Recipe, shapes: TaskData, dtype: str, seed: int) -> torch.nn.Module:
    """A fleet member's initial model (module-level, so a partial of it pickles small for cluster tasks)."""
    return _seeded_model(recipe, shapes, seed).to(getattr(torch, dtype))


def pretrain_job(recipe: Recipe, out: Path, json_progress: bool = False) -> Path:
    """Pretrain the encoder on all (unlabelled) training inputs, then fine-tune on few labels."""
    from toolkit.specialize.pretrain import few_labels, pretrain_encoder

    cfg = recipe.pretrain
    data = load_dataset(recipe)
    torch.set_num_threads(max(1, recipe.train.threads))
    model = _seeded_model(recipe, data, recipe.train.seed)
    losses = pretrain_encoder(model, data.x_train, cfg, recipe.train, out / "checkpoints" / "pretrain.pt")
    labelled = few_labels(data, cfg.labels_per_class, recipe.train.seed)
    log.info("fine-tuning on %d labelled examples", len(labelled.y_train))
    run = _train(recipe, out, model=model, data=labelled, json_progress=json_progress)
    _add_metrics(run, {"pretrain_losses": losses, "n_unlabelled": len(data.x_train)})
    return run


def distill_job(recipe: Recipe, out: Path, json_progress: bool = False) -> Path:
    """Train the recipe's model as a student of a teacher run (trained first when none is given)."""
    from toolkit.specialize.distill import kd_loss
    from toolkit.train import load_run

    from toolkit.specialize.distill import unlabel
    from toolkit.specialize.pretrain import few_label_index
    from toolkit.train.distill_data import training_schedule

    cfg = recipe.distill
    data = load_dataset(recipe)
    keep = few_label_index(data, cfg.labels_per_class, recipe.train.seed) if cfg.labels_per_class else None
    teacher_dir = Path(cfg.teacher_run) if cfg.teacher_run else out.parent / f"{out.name}-teacher"
    if not cfg.teacher_run:
        wide = dataclasses.replace(recipe.model, width=cfg.teacher_width)
        t_recipe = recipe.replace(model=wide, extra={})
        if keep is not None:
            teacher = few_label_teacher(training_schedule(t_recipe, len(keep)), teacher_dir, data, keep, json_progress)
        elif not (teacher_dir / "metrics.json").is_file():
            _train(t_recipe, teacher_dir, json_progress=json_progress)
    if cfg.teacher_run or keep is None:
        teacher = load_run(teacher_dir)
    if teacher.recipe.task != recipe.task:
        raise EdgetkError(f"teacher run {teacher_dir} is task {teacher.recipe.task}, not {recipe.task}",
                          fix="point [distill] teacher_run at a run of the same task")
    loss = kd_loss(teacher.model, cfg, recipe.train.label_smoothing)
    run = _train(recipe, out, loss_fn=loss, data=data if keep is None else unlabel(data, keep), json_progress=json_progress)
    _add_metrics(run, {"teacher_run": str(teacher_dir), "teacher_value": teacher.metrics["value"],
                       "teacher_params": teacher.metrics["params"], "teacher_macs": teacher.metrics["macs"],
                       "labels_per_class": cfg.labels_per_class, "n_labelled": len(data.x_train) if keep is None else len(keep),
                       "n_unlabelled": 0 if keep is None else len(data.x_train) - len(keep)})
    return run


def few_label_teacher(t_recipe: Recipe, out: Path, data: TaskData, keep: np.ndarray, json_progress: bool):
    """The teacher trained (or, when finished before, reloaded) on the labelled training inputs `keep` only.

    Its run folder records that subset's split, so it is read back here rather than through load_run
    (which compares the split with the recipe's whole dataset)."""
    from types import SimpleNamespace

    from safetensors.torch import load_file

    model = _seeded_model(t_recipe, data, t_recipe.train.seed)
    if (out / "metrics.json").is_file():
        model.load_state_dict(load_file(str(out / "model.safetensors")))
    else:
        _train(t_recipe, out, model=model, data=subset(data, keep, np.arange(len(data.x_test))), json_progress=json_progress)
    metrics = json.loads((out / "metrics.json").read_text())
    return SimpleNamespace(recipe=t_recipe, model=model.eval(), metrics=metrics)


def finetune_job(recipe: Recipe, out: Path, json_progress: bool = False) -> Path:
    """Adapt a base run to the recipe's data with a PEFT mode; LoRA/BitFit/probe/top are merged back."""
    from safetensors.torch import save

    from toolkit.nn.profile import profile_model
    from toolkit.specialize.peft import MERGEABLE, apply_peft, trainable_params
    from toolkit.train import load_run

    cfg = recipe.finetune
    base = load_run(cfg.base_run)
    if base.recipe.model != recipe.model or base.recipe.task != recipe.task:
        raise EdgetkError(f"the base run {cfg.base_run} is {base.recipe.task} {base.recipe.model}, the recipe wants "
                          f"{recipe.task} {recipe.model}", fix="make [model] match the base run's recipe")
    data = load_dataset(recipe)                          # [data] groups picks the new speakers / robots
    base_prof = profile_model(base.model, data.input_shape)
    torch.manual_seed(recipe.train.seed)                 # new LoRA/adapter weights: the recipe's, not the process's
    model = apply_peft(base.model, cfg)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    n_train = trainable_params(model)
    run = _train(recipe, out, model=model, data=data, param_filter=lambda n, _p: n in names, json_progress=json_progress)
    atomic_write_bytes(run / "peft.safetensors", save({k: v.detach().contiguous() for k, v in model.state_dict().items()}))
    info = {"finetune_mode": cfg.mode, "trainable_params": n_train, "base_params": base_prof.params,
            "base_macs": base_prof.macs, "merged": False,
            **deployed_cost(cfg.mode, profile_model(model, data.input_shape), base_prof)}
    if cfg.mode in MERGEABLE and cfg.merge:
        info.update(write_merged(run, recipe, model, data))
    _add_metrics(run, info)
    return run


def deployed_cost(mode: str, prof, base) -> dict:
    """What the exported model costs beyond the base: nothing for modes that fold, the adapters' params/MACs."""
    from toolkit.specialize.peft import MERGEABLE

    if mode in MERGEABLE:  # folded here (merge = true) or by load_run/export (merge = false)
        return {"deployed": "base architecture", "extra_params": 0, "extra_macs": 0}
    return {"deployed": "base + unmerged adapters", "extra_params": prof.params - base.params,
            "extra_macs": prof.macs - base.macs}


def write_merged(out: Path, recipe: Recipe, model: torch.nn.Module, data: TaskData) -> dict:
    """Fold the PEFT model in place, rewrite out's weights and metrics; return the merge check."""
    from toolkit.specialize.peft import merge_peft
    from toolkit.train.rundir import write_results

    x = torch.from_numpy(data.x_test[:256])
    with torch.no_grad():
        before = model.eval()(x)
        merged = merge_peft(model).eval()
        diff = float((merged(x) - before).abs().max())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines() if line.strip()]
    write_results(out, recipe, merged, data, history)
    log.info("merged: max |merged - unmerged| = %.3g on %d test inputs", diff, len(x))
    return {"merged": True, "merge_max_abs_diff": diff}


def train_fleet_job(recipe: Recipe, out: Path, json_progress: bool = False, stacks: StackRunner | None = None) -> Path:
    """Train one member per data group in one batched job; write out/<member>/ run folders and out/fleet.json."""
    import functools

    from toolkit.specialize.fleet import split_members, train_fleet

    data = load_dataset(recipe)
    if data.groups_train is None:
        raise EdgetkError(f"dataset {data.name} has no groups ({recipe.fleet.group_by}) to build a fleet from",
                          fix="use a dataset with groups, e.g. kws-digits (speakers)")
    torch.set_num_threads(max(1, recipe.train.threads))
    cfg = recipe.fleet
    members = split_members(data, cfg.members, recipe.train.seed, cfg.dtype)
    if cfg.mode == "specialize":
        summary = _specialize_members(recipe, out, data, members, json_progress)
        seconds = summary["seconds"]
    else:
        shapes = subset(data, np.arange(1), np.arange(min(1, len(data.y_test))))   # what build_model reads
        seconds = train_fleet(functools.partial(_fleet_model, recipe, shapes, cfg.dtype), members, recipe.train,
                              cfg.batched, cfg.stack, out / "checkpoints", cfg.workers, cfg.exact, stacks)
        summary = {"seconds": seconds, "workers": members[0].extra["workers"],
                   **({"cluster": stacks.summary()} if stacks is not None and cfg.batched else {})}
    rows = [write_member(out / m.name, recipe, m, data) for m in members]
    summary = {"members": rows, **summary, "batched": cfg.batched, "group_by": cfg.group_by,
               "dtype": cfg.dtype, "exact": cfg.exact, "mode": cfg.mode}
    atomic_write_json(out / "fleet.json", summary)
    if json_progress:
        print(json.dumps({"event": "done", "run_dir": str(out), "members": len(rows), "seconds": seconds}), flush=True)
    else:
        values = ", ".join(f"{r['name']} {r['value']:.3f}" for r in rows)
        how = ("batched" if recipe.fleet.batched else "sequential") if cfg.mode == "scratch" else (
            f"{cfg.peft} specializations of {summary['base_run']}" +
            (f", base trained in {summary['base_seconds']:.1f} s" if summary["base_seconds"] else ""))
        print(f"fleet of {len(rows)} ({how}, {seconds:.1f} s): {values} -> {out}/<member>")
    return out


def _specialize_members(recipe: Recipe, out: Path, data: TaskData, members: list, json_progress: bool) -> dict:
    """[fleet] mode = "specialize": load (or first train, into out/base) the shared base, then specialize
    every member above its frozen layers (toolkit.specialize.fleet.train_shared_fleet); the summary's timings."""
    import time

    from toolkit.specialize.fleet import group_config, tops_config, train_shared_fleet
    from toolkit.train import load_run

    cfg = recipe.fleet
    if cfg.dtype != "float32":
        raise EdgetkError(f"{recipe.path}: [fleet] mode = \"specialize\" trains in float32, not {cfg.dtype}",
                          fix="remove [fleet] dtype or set it to \"float32\"")
    t0 = time.perf_counter()
    base_dir = Path(cfg.base) if cfg.base else out / "base"
    trained = not cfg.base and not (base_dir / "metrics.json").is_file()
    if trained:
        log.info("fleet: training the shared base on every group's training data into %s", base_dir)
        _train(recipe.replace(extra={k: v for k, v in recipe.extra.items() if k != "fleet"},
                              description=f"shared base of the {recipe.task} fleet"), base_dir,
               json_progress=json_progress, data=data)
    base_s = time.perf_counter() - t0
    base = load_run(base_dir, data=data if trained else None)     # trained just now on this very dataset
    if base.recipe.model != recipe.model or base.recipe.task != recipe.task:
        raise EdgetkError(f"the fleet's base run {base_dir} is {base.recipe.task} {base.recipe.model}, the recipe "
                          f"wants {recipe.task} {recipe.model}", fix="make [model] match the base run's recipe")
    tops = tops_config(recipe.train, cfg.epochs)
    t = train_shared_fleet(base.model, members, tops, cfg.peft, cfg.top_layers, cfg.rank, cfg.alpha, cfg.stack,
                           cfg.exact, group_config(recipe.train, cfg.group_epochs, cfg.group_lr))
    return {"seconds": t["seconds"], "base_run": str(base_dir), "base_seconds": base_s if not cfg.base else 0.0,
            "base_value": base.metrics["value"], "peft": cfg.peft, "cache_seconds": t["cache_s"],
            "group_seconds": t["group_s"], "group_epochs": cfg.group_epochs,
            "top_seconds": t["train_s"], "top_epochs": tops.epochs, "trainable_params_per_member": t["trainable_params"]}


def write_member(out: Path, recipe: Recipe, member, data: TaskData) -> dict:
    """One fleet member as a plain run folder (its recipe: the fleet's, with its seed, without [fleet]; float32 weights)."""
    from toolkit.fsio import atomic_write_text
    from toolkit.train.rundir import write_results

    train_cfg = dataclasses.replace(recipe.train, seed=member.seed)
    data_cfg = dataclasses.replace(recipe.data, groups=(member.group,))
    extra = {k: v for k, v in recipe.extra.items() if k != "fleet"}
    r = recipe.replace(train=train_cfg, data=data_cfg, extra=extra,
                       description=f"fleet member {member.name} of {recipe.task}")
    mdata = select_groups(data, (member.group,))          # what load_run(out) will load again
    atomic_write_text(out / "recipe.toml", r.to_toml())
    metrics = write_results(out, r, member.model.float(), mdata, [])     # runs hold float32 weights
    _add_metrics(out, {"fleet_member": member.name, "group_by": recipe.fleet.group_by})
    return {"name": member.name, "seed": member.seed, "run_dir": str(out), "value": metrics["value"],
            "trained_value": member.test_top1 / 100}          # top-1 in the training dtype (value: saved float32)


def _add_metrics(run: Path, extra: dict) -> None:
    path = run / "metrics.json"
    atomic_write_json(path, {**json.loads(path.read_text()), **extra})

"""Task recipes (models/*.toml) as frozen dataclasses, validated on load with "did you mean" errors.

A recipe has a top-level `task` (and optional `description`) plus one table per section. Each
section is a frozen dataclass registered in SECTIONS (required) or OPTIONAL_SECTIONS; unknown
keys, wrong types and missing required keys raise one EdgetkError naming the file and the field.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from toolkit.errors import EdgetkError
from toolkit.frontends.config import TYPES as FRONTEND_TYPES
from toolkit.frontends.config import FrontendConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and how to cut it: a built-in preset (name), your own files (format) or a Python hook (loader)."""

    name: str = ""            # built-in preset: fsdd | basicmotions | mitdb | digits (exactly one of name/format/loader)
    format: str = ""          # your own files: audio-folder | csv | parquet | image-folder | npz (toolkit/data)
    loader: str = ""          # Python hook "package.module:function" (DataConfig -> TaskData) or an `edgetk.datasets` entry point
    root: str = ""            # data folder (npz: the file); relative paths start at base_dir; "" = the preset's default
    base_dir: str = ""        # folder that relative paths (root, manifest, noise, loader modules) start from; set to the recipe's folder on load
    window: int = 0           # samples per window (mitdb; csv/parquet: 0 = a whole recording per sample)
    stride: int = 0           # hop between windows in samples (0 = the preset's default; csv/parquet: = window)
    train_fraction: float = 0.0  # mitdb: leading share of the record used for training (0 = default)
    test_fraction: float = 0.2   # share held out for test by the group and fraction splits
    split_seed: int = 0       # seed of the group/fraction split (and of noise augmentation)
    groups: tuple[str, ...] = ()  # keep only samples of these groups (fsdd: speakers); () = all
    split: str = "auto"       # auto (folders/given, else group when groups exist, else fraction) | folders | group | fraction
    on_error: str = "raise"   # a broken file: raise (one error naming it) | skip (skipped, listed in the run and `edgetk data`)
    normalize: str = "auto"   # float inputs without [frontend]: auto | channel | scalar | none (train-set mean/std)
    group_pattern: str = ""   # regex with a named group `group` matched on file names, e.g. '^(?P<group>[^_]+)_'
    manifest: str = ""        # CSV with columns file,label[,group][,split]: which files, their class, group and split
    sample_rate: int = 0      # audio: rate to resample to (0 = [frontend] sample_rate, else 8000)
    clip_samples: int = 0     # audio: samples per clip after resampling (0 = [frontend] clip_samples, else 1 s)
    pad: str = "end"          # audio: where short clips get zeros: end | center
    crop: str = "start"       # audio: which part of a long clip is kept: start | center
    channel: int = -1         # audio: -1 = mix all channels to mono; k = keep channel k
    noise: str = ""           # audio: folder of noise WAVs ("" = none)
    noise_mode: str = "augment"  # augment: mix noise into training clips | class: noise clips become a class
    noise_label: str = "_silence_"  # noise_mode = "class": the class name
    noise_snr_db: tuple[float, ...] = (5.0, 20.0)  # augment: [low, high] SNR in dB, drawn uniformly per clip
    noise_prob: float = 0.5   # augment: share of training clips that get noise (seeded by split_seed)
    columns: tuple[str, ...] = ()  # csv/parquet: sensor columns in order (() = every numeric column but time/label)
    timestamp_column: str = ""  # csv/parquet: timestamps in ms ("" = none; then rate_hz is required)
    label_column: str = ""    # csv/parquet: per-row class ("" = the class is the file's folder)
    rate_hz: float = 0.0      # csv/parquet: the sample rate (declared, or checked against the timestamps; 0 = from them)
    rate_tolerance: float = 0.05  # csv/parquet: allowed relative deviation of a timestamp step from 1 / rate
    image_size: tuple[int, ...] = ()  # image-folder: [height, width] after resize (() = keep; every image the same size)
    color: str = "grayscale"  # image-folder: grayscale | rgb


DATA_FORMATS = ("audio-folder", "csv", "parquet", "image-folder", "npz")
# [data] fields that only some formats read: setting one for another format is an error, not silently ignored.
_FORMAT_FIELDS = {
    "audio-folder": ("sample_rate", "clip_samples", "pad", "crop", "channel", "noise", "noise_mode", "noise_label",
                     "noise_snr_db", "noise_prob"),
    "csv": ("columns", "timestamp_column", "label_column", "rate_hz", "rate_tolerance", "window", "stride"),
    "image-folder": ("image_size", "color"),
}
_FORMAT_FIELDS["parquet"] = _FORMAT_FIELDS["csv"]


def check_data(cfg: DataConfig, source: str) -> DataConfig:
    """Validate [data] combinations (one EdgetkError naming the field) and fill base_dir with the recipe's folder."""
    import re

    chosen = [k for k in ("name", "format", "loader") if getattr(cfg, k)]
    if len(chosen) != 1:
        got = ", ".join(f"{k} = {getattr(cfg, k)!r}" for k in chosen) or "none of them"
        raise EdgetkError(f"{source}: [data] needs exactly one of name, format or loader (got {got})",
                          fix='write e.g. format = "audio-folder" with root = "my_words", or name = "fsdd" for a preset')
    if cfg.format:
        check_choice(source, "data.format", cfg.format, DATA_FORMATS)
        if not cfg.root:
            raise EdgetkError(f"{source}: data.format = {cfg.format!r} needs data.root", fix="set root to your data folder (npz: the file)")
        defaults = DataConfig(format=cfg.format)
        for fmt, names in _FORMAT_FIELDS.items():
            for n in names:
                if fmt != cfg.format and n not in _FORMAT_FIELDS.get(cfg.format, ()) and getattr(cfg, n) != getattr(defaults, n):
                    raise EdgetkError(f"{source}: data.{n} applies to format {fmt!r}, not {cfg.format!r}", fix=f"remove data.{n}")
    if cfg.format in ("csv", "parquet") and not (cfg.timestamp_column or cfg.rate_hz > 0):
        what = f"data.window = {cfg.window} samples" if cfg.window else "a time series"
        raise EdgetkError(f"{source}: {what} without a rate: set data.timestamp_column or data.rate_hz",
                          fix='add timestamp_column = "t_ms" (timestamps in ms) or rate_hz = 50.0')
    if cfg.stride and not cfg.window:
        raise EdgetkError(f"{source}: data.stride = {cfg.stride} without data.window", fix="set data.window (samples per window)")
    for n in ("window", "stride", "sample_rate", "clip_samples"):
        check_minimum(source, f"data.{n}", getattr(cfg, n), 0)
    if not 0.0 < cfg.test_fraction < 1.0:
        raise EdgetkError(f"{source}: data.test_fraction = {cfg.test_fraction} is not between 0 and 1", fix="use e.g. 0.2")
    if len(cfg.noise_snr_db) != 2 or cfg.noise_snr_db[0] > cfg.noise_snr_db[1] or not 0.0 <= cfg.noise_prob <= 1.0:
        raise EdgetkError(f"{source}: data.noise_snr_db must be [low, high] and data.noise_prob within [0, 1] "
                          f"(got {list(cfg.noise_snr_db)}, {cfg.noise_prob})", fix="e.g. noise_snr_db = [5.0, 20.0], noise_prob = 0.5")
    if cfg.image_size and (len(cfg.image_size) != 2 or min(cfg.image_size) < 1):
        raise EdgetkError(f"{source}: data.image_size must be [height, width], got {list(cfg.image_size)}", fix="e.g. image_size = [32, 32]")
    if cfg.group_pattern:
        try:
            named = "group" in re.compile(cfg.group_pattern).groupindex
        except re.error as e:
            raise EdgetkError(f"{source}: data.group_pattern is not a valid regex ({e})", fix="e.g. '^(?P<group>[^_]+)_'") from None
        if not named:
            raise EdgetkError(f"{source}: data.group_pattern has no named group `group`", fix="write it as (?P<group>...), e.g. '^(?P<group>[^_]+)_'")
    if not cfg.base_dir and Path(source).is_file():
        cfg = dataclasses.replace(cfg, base_dir=str(Path(source).resolve().parent))
    return cfg


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture and how wide."""

    arch: str                 # dscnn | cnn1d | autoencoder | resnet
    width: float = 1.0        # channel/unit multiplier applied to every hidden layer
    dropout: float = 0.0      # dropout before the classifier (identity at export)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; everything that changes the final weights."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3          # peak learning rate
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | sgd
    scheduler: str = "cosine"  # cosine | none
    label_smoothing: float = 0.0
    seed: int = 0             # seeds weights init, shuffling and dropout
    threads: int = 1          # torch CPU threads (fixed so results are reproducible)
    augment: tuple[str, ...] = ()  # per-batch input augmentation: shift | noise | mask | gain (toolkit/train/augment.py)
    kernel: str = "torch"     # torch | fused: the DS-CNN's whole training step as one C call (toolkit/train/fused.py)


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised pretraining on unlabelled inputs, then supervised fine-tuning (toolkit/specialize)."""

    objective: str = "masked"  # masked: fill hidden time frames | bottleneck: reconstruct through a small code
    epochs: int = 30           # pretraining epochs (the supervised stage uses [train])
    lr: float = 0.003
    mask_ratio: float = 0.5    # masked: share of time frames hidden
    mask_span: int = 4         # masked: frames per hidden span
    bottleneck: int = 16       # size of the code the decoder reconstructs the input from
    labels_per_class: int = 0  # supervised stage keeps this many labelled examples per class (0 = all)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a teacher into the recipe's (student) model (toolkit/specialize)."""

    teacher_run: str = ""      # RUN_DIR of a trained teacher; "" = train one first with teacher_width
    teacher_width: float = 4.0
    temperature: float = 4.0
    alpha: float = 0.7         # weight of the soft-target loss (1 - alpha: hard-label loss)
    labels_per_class: int = 0  # > 0: few labels: the teacher learns from this many labelled inputs per class, the
                               # student from every training input (the teacher's soft targets; hard labels where known)


@dataclass(frozen=True)
class FinetuneConfig:
    """Adapt a base run to new data: full | top | probe | bitfit | lora | adapter (toolkit/specialize)."""

    base_run: str              # RUN_DIR of the base model
    mode: str = "lora"
    rank: int = 4              # LoRA rank / adapter bottleneck channels
    alpha: float = 8.0         # LoRA update scale alpha / rank
    top_layers: int = 2        # "top": conv/linear layers from the output that train
    merge: bool = True         # fold LoRA into the base weights in the run folder (plain base architecture)


@dataclass(frozen=True)
class FleetConfig:
    """One specialized model per data group, trained as one batched job (toolkit/specialize)."""

    group_by: str = "speaker"  # documentation of what TaskData.groups_* hold for the dataset
    members: int = 0           # 0 = one per group; more cycles the groups with new seeds
    batched: bool = True       # false: train the members one after another (the baseline)
    stack: int = 4             # members per grouped-operator pass (measured fastest on CPU: activations stay in L2)
    dtype: str = "float32"     # training precision; float64: members equal their twins trained alone (runs save float32)
    workers: int = 0           # processes sharing the stacks, 1 torch thread each: 0 = one per CPU core, 1 = in process
    exact: bool = True         # each member computes the bits it would alone (probed per layer); false: ~20 % faster
    mode: str = "scratch"      # scratch: every member trains its whole network; specialize: members share one base
    base: str = ""             # specialize: RUN_DIR of the shared base ("" = train it first into <out>/base)
    peft: str = "top"          # specialize: what each member trains above the frozen base: probe | top | bitfit | lora
    top_layers: int = 2        # specialize: conv/linear layers from the output that train (top, bitfit, lora)
    rank: int = 4              # specialize, lora: LoRA rank
    alpha: float = 8.0         # specialize, lora: update scale alpha / rank
    epochs: int = 0            # specialize: epochs of the members' training above the base (0 = [train] epochs)
    group_epochs: int = 0      # specialize: first fine-tune the whole base on each group's data this long (0 = off)
    group_lr: float = 0.005    # specialize: that fine-tune's peak learning rate (the rest of [train] as for the base)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# Optional sections: add a frozen dataclass above and one line here, e.g. "distill": DistillConfig.
# They are read from `[name]` tables and reached as recipe.section("name") or recipe.name.
OPTIONAL_SECTIONS: dict[str, type] = {
    "pretrain": PretrainConfig, "distill": DistillConfig, "finetune": FinetuneConfig, "fleet": FleetConfig,
}
OPTIONAL_SECTIONS["frontend"] = FrontendConfig  # fixed-point C signal processing shared with the device (toolkit/frontends)
TOP_LEVEL = {"task": str, "description": str}
# String fields with a fixed set of values, checked on load (data.name / model.arch are checked
# against the loader and model registries when used, before anything is written).
CHOICES: dict[str, tuple[str, ...]] = {"train.optimizer": ("adamw", "sgd"), "train.scheduler": ("cosine", "none"),
                                       "train.kernel": ("torch", "fused"),
                                       "fleet.dtype": ("float32", "float64")}
CHOICES.update({"fleet.mode": ("scratch", "specialize"), "fleet.peft": ("probe", "top", "bitfit", "lora")})
CHOICES.update({"data.split": ("auto", "folders", "group", "fraction"), "data.on_error": ("raise", "skip"),
                "data.normalize": ("auto", "channel", "scalar", "none"), "data.pad": ("end", "center"),
                "data.crop": ("start", "center"), "data.noise_mode": ("augment", "class"),
                "data.color": ("grayscale", "rgb")})
CHOICES["frontend.type"] = FRONTEND_TYPES
# Integer fields with a lower bound, checked on load.
MINIMUMS: dict[str, int] = {"fleet.workers": 0}


@dataclass(frozen=True)
class Bound:
    """The valid range of a numeric field: low..high, each end included unless *_open (None: unbounded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: float) -> bool:
        return not ((self.low is not None and (v < self.low or (self.low_open and v == self.low)))
                    or (self.high is not None and (v > self.high or (self.high_open and v == self.high))))

    def __str__(self) -> str:
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        return f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}{')' if self.high_open or self.high is None else ']'}"


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


INT64_MAX = (1 << 63) - 1
SEED = Bound(0, INT64_MAX)
FRACTION = Bound(0, 1)
# Numeric fields and their valid ranges, checked on load (ints and floats; tuple fields per element). NaN and
# infinities are refused for every float field, and every int must fit int64. Sections owned elsewhere add their
# entries here too ([frontend] validates itself in FrontendConfig.validate()).
BOUNDS: dict[str, Bound] = {
    "model.width": Bound(0, 64, low_open=True), "model.dropout": Bound(0, 1, high_open=True),
    "train.epochs": Bound(1, 1_000_000), "train.batch_size": Bound(1, 1 << 24), "train.lr": Bound(0, 100, low_open=True),
    "train.weight_decay": Bound(0, 100), "train.label_smoothing": Bound(0, 1, high_open=True), "train.seed": SEED,
    "train.threads": Bound(1, 4096),
    "pretrain.epochs": Bound(1, 1_000_000), "pretrain.lr": Bound(0, 100, low_open=True),
    "pretrain.mask_ratio": Bound(0, 1, low_open=True, high_open=True), "pretrain.mask_span": Bound(1, 1 << 20),
    "pretrain.bottleneck": Bound(1, 1 << 20), "pretrain.labels_per_class": Bound(0, 1 << 31),
    "distill.teacher_width": Bound(0, 64, low_open=True), "distill.temperature": Bound(0, 1000, low_open=True),
    "distill.alpha": FRACTION, "distill.labels_per_class": Bound(0, 1 << 31),
    "finetune.rank": Bound(1, 1 << 16), "finetune.alpha": Bound(0, 1e6, low_open=True),
    "finetune.top_layers": Bound(1, 1 << 16),
    "fleet.members": Bound(0, 1 << 20), "fleet.stack": Bound(1, 1 << 16), "fleet.workers": Bound(0, 4096),
    "fleet.top_layers": Bound(1, 1 << 16), "fleet.rank": Bound(1, 1 << 16), "fleet.alpha": Bound(0, 1e6, low_open=True),
    "fleet.epochs": Bound(0, 1_000_000), "fleet.group_epochs": Bound(0, 1_000_000),
    "fleet.group_lr": Bound(0, 100, low_open=True),
    "data.window": Bound(0, 1 << 31), "data.stride": Bound(0, 1 << 31), "data.train_fraction": Bound(0, 1, high_open=True),
    "data.split_seed": SEED,  # data.test_fraction: check_data
    "data.sample_rate": Bound(0, 1 << 24), "data.clip_samples": Bound(0, 1 << 31), "data.channel": Bound(-1, 1 << 16),
    "data.noise_snr_db": Bound(-200, 200), "data.noise_prob": FRACTION, "data.rate_hz": Bound(0, 1e9),
    "data.rate_tolerance": FRACTION, "data.image_size": Bound(1, 1 << 16),
}


def check_bounds(source: str, name: str, value: Any) -> None:
    """Raise an EdgetkError naming file, field, value and valid range for a NaN, an infinity, an int beyond int64
    or a value outside BOUNDS[name] (tuples: each element)."""
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        bound = BOUNDS.get(name)
        if isinstance(v, float) and not math.isfinite(v):
            raise EdgetkError(f"{source or 'recipe'}: {name} = {v!r} is not a finite number",
                              fix=f"set {name} to a value in {bound or 'the finite numbers'}")
        if (bound is not None and v not in bound) or (isinstance(v, int) and abs(v) > INT64_MAX):
            raise EdgetkError(f"{source or 'recipe'}: {name} = {value!r} is outside its valid range "
                              f"{bound or Bound(-INT64_MAX, INT64_MAX)}",
                              fix=f"set {name} to a value in {bound or Bound(-INT64_MAX, INT64_MAX)}")


@dataclass(frozen=True)
class Recipe:
    """A validated task recipe."""

    task: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # optional sections by name
    path: str = ""            # the file it was loaded from ("" when built in code)

    def section(self, name: str) -> Any:
        """An optional section's dataclass, or None when the recipe has no such table."""
        if name not in OPTIONAL_SECTIONS:
            raise KeyError(name)
        return self.extra.get(name)

    def __getattr__(self, name: str) -> Any:
        if name in OPTIONAL_SECTIONS:
            return self.extra.get(name)
        raise AttributeError(name)

    def replace(self, **sections: Any) -> Recipe:
        """A copy with some sections replaced (dataclass instances or field dicts)."""
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (defaults filled in), ready for TOML."""
        out: dict[str, Any] = {"task": self.task, "description": self.description}
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        for name, cfg in self.extra.items():
            out[name] = dataclasses.asdict(cfg)
        return out

    def to_toml(self) -> str:
        """The resolved recipe as TOML text."""
        import tomli_w

        return tomli_w.dumps(_tomlable(self.to_dict()))


def _tomlable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _tomlable(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, tuple):
        return [_tomlable(v) for v in obj]
    return obj


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe TOML; overrides like "train.epochs=3" are applied first."""
    path = Path(path)
    if not path.is_file():
        from toolkit.paths import repo_dir

        models = repo_dir("models")
        names = ", ".join(sorted(p.name for p in models.glob("*.toml"))) or "(none)"
        what = "recipe is a folder, not a file" if path.is_dir() else "recipe not found"
        raise EdgetkError(f"{what}: {path}", fix=f"pass a recipe file, e.g. models/imu-motions.toml; shipped: {names}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise EdgetkError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})",
                          fix="save the recipe as UTF-8") from None
    except OSError as e:
        raise EdgetkError(f"cannot read recipe {path}: {e.strerror}", fix="pass a readable recipe file") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgetkError(f"{path}: not valid TOML: {e}", fix="fix the syntax at the position shown") from None
    for item in overrides or []:
        _apply_override(raw, item, path)
    return recipe_from_dict(raw, source=str(path))


def recipe_from_dict(raw: Mapping[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a parsed recipe dict and build the Recipe."""
    known = list(TOP_LEVEL) + list(SECTIONS) + list(OPTIONAL_SECTIONS)
    for key in raw:
        if key not in known:
            _unknown(source, key, known, where="top level")
    for key, typ in TOP_LEVEL.items():
        if key in raw and not isinstance(raw[key], typ):
            _wrong_type(source, key, typ, raw[key])
    if "task" not in raw:
        raise EdgetkError(f"{source}: missing required field 'task'", fix='add e.g. task = "imu-motions" at the top')
    sections = {n: _build(cls, raw.get(n), source, n) for n, cls in SECTIONS.items()}
    sections["data"] = check_data(sections["data"], source)
    extra = {n: _build(cls, raw[n], source, n) for n, cls in OPTIONAL_SECTIONS.items() if n in raw}
    return Recipe(task=raw["task"], description=raw.get("description", ""), extra=extra, path=source, **sections)


def _build(cls: type, table: Any, source: str, section: str) -> Any:
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise EdgetkError(f"{source}: [{section}] must be a table, got {type(table).__name__}",
                          fix=f"write it as a [{section}] section")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            _unknown(source, f"{section}.{key}", [f"{section}.{n}" for n in fields], where=f"[{section}]")
    values = {}
    for name, f in fields.items():
        if name in table:
            values[name] = _check_type(table[name], hints[name], source, f"{section}.{name}")
            if f"{section}.{name}" in CHOICES:
                check_choice(source, f"{section}.{name}", values[name], CHOICES[f"{section}.{name}"])
            if f"{section}.{name}" == "train.augment":
                check_augment(values[name], source)
            if f"{section}.{name}" in MINIMUMS:
                check_minimum(source, f"{section}.{name}", values[name], MINIMUMS[f"{section}.{name}"])
            check_bounds(source, f"{section}.{name}", values[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EdgetkError(f"{source}: missing required field '{section}.{name}'",
                              fix=f"add `{name} = ...` under [{section}]")
    return cls(**values)


def _check_type(value: Any, hint: Any, source: str, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is type(None) and value is None:
                return None
            try:
                return _check_type(value, arg, source, name)
            except EdgetkError:
                continue
        _wrong_type(source, name, hint, value)
    if origin is tuple:
        if not isinstance(value, list):
            _wrong_type(source, name, hint, value)
        inner = typing.get_args(hint)[0]
        return tuple(_check_type(v, inner, source, name) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        _wrong_type(source, name, hint, value)
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _wrong_type(source: str, name: str, hint: Any, value: Any) -> typing.NoReturn:
    raise EdgetkError(f"{source}: field '{name}' must be {_type_name(hint)}, got {type(value).__name__} {value!r}",
                      fix=f"set {name} to a {_type_name(hint)} value")


def _unknown(source: str, key: str, valid: list[str], where: str) -> typing.NoReturn:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid names: {', '.join(valid)}"
    raise EdgetkError(f"{source}: unknown field '{key}' in {where}; {hint}",
                      fix=f"rename or remove '{key}'" + (f" (closest valid name: {close[0]})" if close else ""))


def check_choice(source: str, name: str, value: str, choices: typing.Iterable[str]) -> None:
    """Raise an EdgetkError naming the field and the closest valid value unless value is one of choices."""
    choices = list(choices)
    if value in choices:
        return
    close = difflib.get_close_matches(value, choices, n=1)
    raise EdgetkError(f"{source or 'recipe'}: unknown {name}={value!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                      fix=f"choose one of: {', '.join(choices)}")


AUGMENTS = ("shift", "noise", "mask", "gain")   # train.augment names (toolkit/train/augment.py)


def check_augment(names: typing.Sequence[str], source: str = "recipe") -> tuple[str, ...]:
    """train.augment as a tuple; one EdgetkError for an unknown or repeated name."""
    for n in names:
        check_choice(source, "train.augment", n, AUGMENTS)
    if len(set(names)) != len(names):
        raise EdgetkError(f"{source or 'recipe'}: train.augment lists a name twice: {list(names)}",
                          fix=f"list each of {', '.join(AUGMENTS)} at most once")
    return tuple(names)


def check_minimum(source: str, name: str, value: int, low: int) -> None:
    """Raise an EdgetkError naming the field unless value >= low."""
    if value < low:
        raise EdgetkError(f"{source or 'recipe'}: {name}={value} is below its minimum {low}",
                          fix=f"set {name} to {low} or more")


def _apply_override(raw: dict[str, Any], item: str, source: Path) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise EdgetkError(f"bad override {item!r}: expected KEY=VALUE", fix="write e.g. --set train.epochs=3")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()  # bare words are strings: model.arch=resnet
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise EdgetkError(f"override {item!r}: '{p}' is not a table in {source}", fix="use SECTION.FIELD=VALUE")
    node[leaf] = value

"""Calibration and test inputs for an imported model: a recipe's dataset, an .npz, an .npy, a folder of .npy files,
a raw float32 .bin, or seeded random inputs, each with its provenance (random inputs say so everywhere).

Arrays come back float32 in the SOURCE model's layout (NHWC for a TFLite model or an NHWC ONNX model, NCHW
otherwise); int8 arrays (quantized features, e.g. MLPerf Tiny's kws_input.npy) are dequantized with the input
quantization the caller knows (--input-quant, or the int8 model's own).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError

log = logging.getLogger(__name__)

RANDOM = "random"
DEFAULT_RANGE = (-1.0, 1.0)  # random inputs when nothing tells the model's input range


@dataclass(frozen=True, eq=False)
class Inputs:
    """Model inputs with their origin."""

    x: np.ndarray                       # float32, source layout, leading sample axis
    y: np.ndarray | None                # labels, when the source has them
    provenance: dict[str, Any]          # manifest "data.calib" / "data.test"
    labels: tuple[str, ...] = ()
    kind: str | None = None
    frontend: dict[str, Any] = field(default_factory=dict)

    @property
    def is_random(self) -> bool:
        """True for seeded random inputs."""
        return self.provenance.get("source") == RANDOM


@dataclass(frozen=True)
class InputSpec:
    """What the model takes: one sample's shape in the source layout, and how int8 data maps to float."""

    shape: tuple[int, ...]               # without the batch axis
    layout: str                          # "NCHW" | "NHWC" | "flat"
    input_quant: tuple[float, int] | None = None   # (scale, zero point) of int8 inputs
    input_range: tuple[float, float] | None = None  # random inputs: uniform over this range


def load_inputs(spec: str | None, role: str, model: InputSpec, *, n: int | None, seed: int) -> Inputs:
    """The inputs named by `spec` (None or "random": seeded random ones), at most n of them (seeded draw)."""
    if spec is None or spec == RANDOM:
        return random_inputs(model, n or 100, seed + (1 if role == "test" else 0))
    path = Path(spec)
    if path.suffix == ".toml":
        got = _recipe(path, role, model)
    elif path.is_dir():
        got = _folder(path, model)
    elif not path.is_file():
        raise EdgetkError(f"--{role} {spec}: no such file or folder",
                          fix="pass a recipe .toml, an .npz (x, optional y), an .npy, a folder of .npy files, "
                              "a raw float32 .bin, or 'random'")
    elif path.suffix in READERS:
        got = READERS[path.suffix](path, model)
    else:
        raise EdgetkError(f"--{role} {path}: unknown data format {path.suffix!r}",
                          fix=f"use one of: .toml (recipe), {', '.join(READERS)}, a folder of .npy files, or 'random'")
    return subsample(got, n, seed)


def random_inputs(model: InputSpec, n: int, seed: int) -> Inputs:
    """n seeded random inputs: uniform int8 dequantized with the input quantization when known, else uniform
    over the input range (default [-1, 1])."""
    rng = np.random.default_rng(seed)
    if model.input_range is None and model.input_quant is not None:
        s, z = model.input_quant
        q = rng.integers(-128, 128, size=(n, *model.shape))
        x = ((q - z) * np.float32(s)).astype(np.float32)
        lo, hi = float((-128 - z) * s), float((127 - z) * s)
        how = f"uniform int8 dequantized with scale {s:.6g}, zero point {z} (range [{lo:.4g}, {hi:.4g}])"
    else:
        lo, hi = model.input_range or DEFAULT_RANGE
        x = rng.uniform(lo, hi, size=(n, *model.shape)).astype(np.float32)
        how = f"uniform in [{lo:.4g}, {hi:.4g}]"
    return Inputs(x, None, {"source": RANDOM, "seed": seed, "n": n, "range": [lo, hi],
                            "description": f"seeded random inputs, {how}, seed {seed}"})


def subsample(got: Inputs, n: int | None, seed: int) -> Inputs:
    """At most n of the inputs (a seeded draw, in their order)."""
    if n is None or len(got.x) <= n:
        return got
    idx = np.sort(np.random.default_rng(seed).permutation(len(got.x))[:n])
    prov = got.provenance | {"n": int(n), "of": int(len(got.x)), "seed": seed}
    return Inputs(got.x[idx], None if got.y is None else got.y[idx], prov, got.labels, got.kind, got.frontend)


def _to_model(a: np.ndarray, model: InputSpec, what: str, *, flat: bool = False) -> np.ndarray:
    """`a` as float32 [N, *shape]; int8 data is dequantized, other dtypes cast."""
    size = int(np.prod(model.shape))
    if a.dtype == np.int8:
        if model.input_quant is None:
            raise EdgetkError(f"{what} holds int8 values, but the model takes float inputs and no input "
                              "quantization is known",
                              fix="pass --input-quant SCALE,ZERO_POINT (or an int8 .tflite of the same model) to "
                                  "dequantize them")
        s, z = model.input_quant
        a = (a.astype(np.int32) - z) * np.float32(s)
    elif not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise EdgetkError(f"{what} has dtype {a.dtype}", fix="store the inputs as a numeric array")
    if flat and a.size % size == 0:
        return np.ascontiguousarray(a.reshape(-1, *model.shape), dtype=np.float32)
    if tuple(a.shape) == model.shape:
        a = a[None]
    if tuple(a.shape[1:]) != model.shape:
        raise EdgetkError(f"{what} has shape {list(a.shape)}; the model takes [N, {', '.join(map(str, model.shape))}] "
                          f"({model.layout})",
                          fix=f"store the inputs in the model's own layout ({model.layout}), one sample per row")
    return np.ascontiguousarray(a, dtype=np.float32)


def _file_prov(path: Path, source: str, n: int, **extra: Any) -> dict[str, Any]:
    from toolkit.fsio import sha256_file

    desc = f"{source} file {path}" if path.is_file() else f"{source} {path}"
    return {"source": source, "path": str(path), "n": int(n), "description": desc,
            **({"sha256": sha256_file(path)} if path.is_file() else {}), **extra}


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise EdgetkError(f"{path} is not a readable .npy array ({e})", fix="save it with numpy.save") from None


def _npy(path: Path, model: InputSpec) -> Inputs:
    a = _load_npy(path)
    x = _to_model(a, model, str(path))
    return Inputs(x, None, _file_prov(path, "npy", len(x), **_dequant_note(a, model)))


def _npz(path: Path, model: InputSpec) -> Inputs:
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise EdgetkError(f"{path} is not a readable .npz archive ({e})", fix="save it with numpy.savez") from None
    if "x" not in arrays:
        raise EdgetkError(f"{path} has no array 'x' (it holds {sorted(arrays)})",
                          fix="save the inputs as numpy.savez(path, x=inputs, y=labels)")
    x = _to_model(arrays["x"], model, f"{path}['x']")
    y = arrays.get("y")
    if y is not None and len(y) != len(x):
        raise EdgetkError(f"{path}: {len(y)} labels for {len(x)} inputs", fix="store one label per input in 'y'")
    labels = tuple(str(v) for v in arrays["labels"]) if "labels" in arrays else ()
    return Inputs(x, None if y is None else np.asarray(y), _file_prov(path, "npz", len(x), **_dequant_note(arrays["x"], model)),
                  labels)


def _bin(path: Path, model: InputSpec) -> Inputs:
    raw = np.fromfile(path, dtype="<f4")
    size = int(np.prod(model.shape))
    if raw.size == 0 or raw.size % size:
        raise EdgetkError(f"{path} holds {raw.size} float32 values, not a multiple of the model input's {size}",
                          fix="a .bin is read as raw little-endian float32 inputs, one after another")
    x = _to_model(raw, model, str(path), flat=True)
    return Inputs(x, None, _file_prov(path, "bin", len(x), dtype="float32 little-endian"))


def _folder(path: Path, model: InputSpec) -> Inputs:
    files = sorted(path.glob("*.npy"))
    if not files:
        raise EdgetkError(f"{path} holds no .npy files", fix="put one .npy per input (or per batch) in the folder")
    xs = [_to_model(_load_npy(f), model, str(f)) for f in files]
    x = np.concatenate(xs)
    return Inputs(x, None, _file_prov(path, "folder", len(x), files=len(files)) |
                  {"description": f"folder {path} ({len(files)} .npy files)"})


def _dequant_note(a: np.ndarray, model: InputSpec) -> dict[str, Any]:
    return {"dequantized_with": list(model.input_quant)} if a.dtype == np.int8 and model.input_quant else {}


def _recipe(path: Path, role: str, model: InputSpec) -> Inputs:
    """A recipe's dataset: the training split calibrates, the test split tests (torch layout → source layout)."""
    from toolkit.data import load_dataset
    from toolkit.recipe import load_recipe

    data = load_dataset(load_recipe(path))
    split = "train" if role == "calib" else "test"
    x = data.x_train if split == "train" else data.x_test
    y = data.y_train if split == "train" else data.y_test
    if model.layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    x = _to_model(x, model, f"recipe {path} ({split} split of {data.name})")
    prov = {"source": "recipe", "path": str(path), "dataset": data.name, "split": split, "n": int(len(x)),
            "description": f"{split} split of {data.name} (recipe {path})"}
    return Inputs(x, y, prov, tuple(data.labels), data.kind, dict(data.frontend))


READERS: dict[str, Callable[[Path, InputSpec], Inputs]] = {".npz": _npz, ".npy": _npy, ".bin": _bin}

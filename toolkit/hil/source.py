"""What `profile`, `validate`, `build` and `flash` accept: a BUNDLE folder or an int8 MODEL.tflite.

A .tflite is wrapped into a bundle folder under build/bundles/ through one call,
`toolkit.hil.bundle.bundle_from_tflite` (the importer may replace that function; this module only
needs its role: the model + int8 test inputs in a folder `load_bundle` reads). Its test inputs are
uniform random int8 of the model's input shape, labelled "random inputs" in every report, or the
arrays of `--inputs FILE.npy|.npz` (an .npz may add labels as `y`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.fsio import atomic_dir, atomic_write_json, sha256_file
from toolkit.hil.bundle import Bundle, load_bundle
from toolkit.paths import repo_dir

log = logging.getLogger(__name__)

RANDOM_SAMPLES = 20   # random inputs made for a bare .tflite when no count is asked
RANDOM_SEED = 0
_NPZ_X = ("x", "test_x", "inputs", "x_test")
_NPZ_Y = ("y", "test_y", "labels", "y_test")


@dataclass(frozen=True)
class ModelSource:
    """What the user named on the command line, as the CLI turns it into one object."""

    path: Path
    inputs: Path | None = None        # --inputs FILE.npy|.npz (only with a .tflite)
    samples: int | None = None        # random inputs to make (None: RANDOM_SAMPLES)
    cache: Path | None = None         # where wrapped bundles go (default build/bundles)


def open_bundle(src: ModelSource) -> Bundle:
    """The bundle behind a BUNDLE folder or a MODEL.tflite (wrapped once, then reused from the cache)."""
    path = src.path
    if path.is_dir():
        if src.inputs is not None:
            raise EdgetkError(f"--inputs {src.inputs}: {path} is a bundle and brings its own test set",
                              fix="drop --inputs, or pass the bundle's model_int8.tflite with --inputs")
        return load_bundle(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        raise EdgetkError(f"{path} is an ONNX model: the device runs int8 TFLite bundles",
                          fix=f"import it first: edgetk import {path} -o BUNDLE, then pass BUNDLE")
    if suffix != ".tflite":
        raise EdgetkError(f"{path} is neither a bundle folder nor a .tflite model" +
                          ("" if path.exists() else " (it does not exist)"),
                          fix="pass a folder written by `edgetk export` / `edgetk import`, or an int8 .tflite")
    if not path.is_file():
        raise EdgetkError(f"{path} does not exist", fix="check the path")
    return _wrapped(path, src)


def _wrapped(tflite: Path, src: ModelSource) -> Bundle:
    from toolkit.tflite import read_model

    g = read_model(tflite)
    tin, tout = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    if tin.dtype != "int8" or tout.dtype != "int8":
        raise EdgetkError(f"{tflite} takes {tin.dtype} and gives {tout.dtype}: the firmware runs full-int8 models",
                          fix=f"quantize it: edgetk import {tflite} -o BUNDLE (int8 in and out), then pass BUNDLE")
    x, y, label, tag = _inputs(src, tin)
    sha = sha256_file(tflite)
    out = (src.cache or repo_dir("build") / "bundles") / f"{sha[:16]}-{tag}"
    if not (out / "manifest.json").is_file():
        from toolkit.hil.bundle import bundle_from_tflite

        with atomic_dir(out) as tmp:
            bundle_from_tflite(tflite, tmp, x)
            if y is not None:
                np.save(tmp / "test_y.npy", y)
            _add_manifest(tmp, g, tflite, sha, label, len(x), y is not None)
        log.info("wrapped %s into %s (%s)", tflite, out, label)
    return load_bundle(out)


def _inputs(src: ModelSource, tin: Any) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """(int8 inputs, labels or None, what they are in words, a cache tag)."""
    shape = tuple(tin.shape[1:])
    if src.inputs is None:
        n = src.samples or RANDOM_SAMPLES
        x = np.random.default_rng(RANDOM_SEED).integers(-128, 128, size=(n, *shape), dtype=np.int8)
        return x, None, f"random inputs (uniform int8, seed {RANDOM_SEED}, {n} samples): not data", f"random{n}"
    x, y = read_inputs(src.inputs)
    x = np.asarray(x)
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape:
        raise EdgetkError(f"{src.inputs}: inputs of shape {x.shape}, the model takes {shape} per sample",
                          fix=f"save an array of shape (N, {', '.join(map(str, shape))}) in the model's layout")
    if x.dtype != np.int8:
        x = quantize_input(x, tin, src.inputs)
    if y is not None and len(y) != len(x):
        raise EdgetkError(f"{src.inputs}: {len(y)} labels for {len(x)} inputs", fix="save one label per input")
    return x, y, f"inputs from {src.inputs} ({len(x)} samples{', labelled' if y is not None else ''})", \
        "in" + sha256_file(src.inputs)[:12]


def read_inputs(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (and labels, from an .npz) from a .npy or .npz file; never unpickles."""
    if not path.is_file():
        raise EdgetkError(f"--inputs {path} does not exist", fix="check the path")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise EdgetkError(f"--inputs {path} is not a numpy .npy/.npz file without pickles: {e}",
                          fix="save it with numpy.save / numpy.savez (numeric arrays)") from e
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        names = list(data.files)
        xk = next((k for k in _NPZ_X if k in names), names[0] if len(names) == 1 else None)
        if xk is None:
            raise EdgetkError(f"--inputs {path} holds {names}: which one are the inputs?",
                              fix=f"name the inputs one of {', '.join(_NPZ_X)} (labels: {', '.join(_NPZ_Y)})")
        yk = next((k for k in _NPZ_Y if k in names), None)
        return data[xk], (data[yk].astype(np.int64) if yk else None)


def quantize_input(x: np.ndarray, tin: Any, where: Path) -> np.ndarray:
    """Float inputs to the model's int8 input (its scale and zero point), as TFLite's QUANTIZE does."""
    if not np.issubdtype(x.dtype, np.floating) or tin.quant is None:
        raise EdgetkError(f"{where}: inputs of dtype {x.dtype}; the model takes int8",
                          fix="save int8 inputs, or float32 ones the model's input quantization applies to")
    scale, zp = float(tin.quant.scale[0]), int(tin.quant.zero_point[0])
    return np.clip(np.rint(x / np.float32(scale)) + zp, -128, 127).astype(np.int8)


def _add_manifest(folder: Path, g: Any, tflite: Path, sha: str, label: str, n: int, labelled: bool) -> None:
    """Fill in what the wrapper knows and a bundle writer may not have written (never overwrites a key)."""
    from toolkit.hil.mlperf import key_for_sha256
    from toolkit.tflite.stats import summary

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    s = summary(g)
    io = {w: {"shape": rec["shape"], "dtype": rec["dtype"], "layout": "NHWC" if len(rec["shape"]) == 4 else "",
              "scale": (rec["scale"] or [1.0])[0], "zero_point": (rec["zero_point"] or [0])[0]}
          for w, rec in (("input", s["inputs"][0]), ("output", s["outputs"][0]))}
    autoencoder = io["input"]["shape"] == io["output"]["shape"]
    mine: dict[str, Any] = {"kind": "anomaly" if autoencoder else "classification", "macs": s["macs"],
                            "params": s["params"], "ops": s["ops"], **io,
                            "source": {"file": str(tflite), "sha256": sha, "wrapped": "as is (int8 .tflite)"}}
    key = key_for_sha256(sha)
    if key:
        mine["mlperf_key"] = key.key
    for k, v in mine.items():
        manifest.setdefault(k, v)
    test_set = manifest.setdefault("test_set", {})
    test_set.setdefault("inputs", label)
    test_set.setdefault("n", n)
    test_set.setdefault("x", "test_x_int8.npy")
    if labelled:
        test_set.setdefault("y", "test_y.npy")
    atomic_write_json(path, manifest)

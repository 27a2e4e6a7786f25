"""What `profile`, `validate`, `build` and `flash` accept: a BUNDLE folder or an int8 MODEL.tflite.

A .tflite is wrapped into a bundle folder under build/bundles/ by one call to the importer's int8 wrap
(`toolkit.importer.tflite_int8.wrap_int8_tflite`, what `toolkit.hil.bundle.bundle_from_tflite` and
`edgetk import MODEL_int8.tflite` use; called directly here because it also takes the labels and the
task kind): the model as is, int8 test inputs, TFLite-Micro's outputs as golden answers, a manifest.
The test inputs are uniform random int8 of the model's input shape, labelled "random inputs" in
every report, or the arrays of `--inputs FILE.npy|.npz` (an .npz may add labels as `y`).
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
from toolkit.hil.bundle import Bundle, load_bundle, record_files
from toolkit.paths import cache_dir

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
    from toolkit.importer.tflite_int8 import wrap_int8_tflite
    from toolkit.tflite import read_model

    g = read_model(tflite)
    tin, tout = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    if tin.dtype != "int8" or tout.dtype != "int8":
        raise EdgetkError(f"{tflite} takes {tin.dtype} and gives {tout.dtype}: the firmware runs full-int8 models",
                          fix=f"quantize it: edgetk import {tflite} -o BUNDLE (int8 in and out), then pass BUNDLE")
    x, y, data = _inputs(src, tin)
    sha = sha256_file(tflite)
    out = (src.cache or cache_dir("bundles")) / f"{sha[:16]}-{data['tag']}"
    autoencoder = tin.size == tout.size
    if autoencoder and y is not None and set(np.unique(y).tolist()) != {0, 1}:
        raise EdgetkError(f"{src.inputs}: labels {sorted(set(np.unique(y).tolist()))[:5]} for an autoencoder "
                          "(output size = input size): its ROC AUC needs labels 0 (normal) and 1 (anomaly), both present",
                          fix="save y as 0/1 with both classes, or leave y out for an unlabelled run")
    if not (out / "manifest.json").is_file():
        with atomic_dir(out) as tmp:
            wrap_int8_tflite(tflite, tmp, x, y, kind="anomaly" if autoencoder else "classification",
                             formats=("tflite",), data={"test": data["test"], "random": src.inputs is None},
                             kind_from="output size = input size: an autoencoder" if autoencoder else "default")
            _add_manifest(tmp, sha, data["label"])
        log.info("wrapped %s into %s (%s)", tflite, out, data["label"])
    return load_bundle(out)


def _inputs(src: ModelSource, tin: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(int8 inputs, labels or None, {label: what they are in words, tag: for the cache, test: provenance})."""
    shape = tuple(tin.shape[1:])
    if src.inputs is None:
        n = src.samples or RANDOM_SAMPLES
        x = np.random.default_rng(RANDOM_SEED).integers(-128, 128, size=(n, *shape), dtype=np.int8)
        how = f"uniform int8, seed {RANDOM_SEED}, {n} samples"
        return x, None, {"label": f"random inputs ({how}): not data", "tag": f"random{n}",
                         "test": {"source": "random", "seed": RANDOM_SEED, "n": n, "description": how}}
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
    label = f"inputs from {src.inputs} ({len(x)} samples{', labelled' if y is not None else ''})"
    return x, y, {"label": label, "tag": "in" + sha256_file(src.inputs)[:12],
                  "test": {"source": str(src.inputs), "n": int(len(x)), "description": label}}


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


def _add_manifest(folder: Path, sha: str, label: str) -> None:
    """Add what the wrap does not write: the words for the inputs and the MLPerf key of a reference model."""
    from toolkit.hil.mlperf import key_for_sha256

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.setdefault("test_set", {}).setdefault("inputs", label)
    key = key_for_sha256(sha)
    if key:
        manifest.setdefault("mlperf_key", key.key)
    atomic_write_json(path, manifest)
    record_files(folder)  # the cached bundle is checked like an exported one each time it is loaded

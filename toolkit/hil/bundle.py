"""What the runner reads from a BUNDLE (ARCHITECTURE.md): model, hash, test inputs, fidelity."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.fsio import sha256_file


@dataclass(frozen=True)
class Bundle:
    """An exported model bundle, as the HIL runner sees it."""

    path: Path
    tflite: Path
    sha256: str
    x: np.ndarray              # int8 test inputs, model layout (NHWC), leading sample axis
    y: np.ndarray | None       # labels (classification) or 0/1 (anomaly), if present
    manifest: dict[str, Any]
    fidelity: dict[str, Any] | None
    reference_out: np.ndarray | None = None  # golden int8 outputs (test_out_int8.npy), one row per input
    raw: np.ndarray | None = None            # golden raw windows (test_raw_int16.npy): x = the frontend's features
    frontend: dict[str, Any] | None = None   # frontend.json: the C frontend's info, None without one

    @property
    def raw_label(self) -> str:
        """What the device received when it ran from raw samples, in words."""
        return ("the bundle's raw test windows (test_raw_int16.npy, int16 samples through the frontend on the device"
                + (", labels test_y.npy)" if self.y is not None else ")"))

    @property
    def has_frontend(self) -> bool:
        """True when the bundle carries a C frontend and the raw windows its test inputs came from."""
        return self.raw is not None and self.frontend is not None

    @property
    def inputs_label(self) -> str:
        """What the test inputs are, in words, for every report ("random inputs ..." when not real data)."""
        said = (self.manifest.get("test_set") or {}).get("inputs")
        if isinstance(said, str) and said:
            return said
        test = (self.manifest.get("data") or {}).get("test")  # an imported bundle: where its test inputs came from
        if isinstance(test, dict) and test.get("source") == "random":
            return f"random inputs ({test.get('description', 'seeded')}): not data"
        return "the bundle's test split (test_x_int8.npy" + (", labels test_y.npy)" if self.y is not None else ")")

    @property
    def random_inputs(self) -> bool:
        """True when the test inputs are random numbers, not data."""
        return self.inputs_label.startswith("random inputs")

    @property
    def macs(self) -> int:
        return int(self.manifest.get("macs", 0) or 0)

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", self.manifest.get("task_kind", "classification")))

    def io(self, which: str) -> dict[str, Any]:
        """The manifest's "input" / "output" record (shape, layout, scale, zero_point), {} if absent."""
        rec = self.manifest.get(which) or (self.manifest.get(which + "s") or [{}])[0]
        return rec if isinstance(rec, dict) else {}

    @property
    def c_dir(self) -> Path | None:
        """The generated C library inside the bundle, when exported with --formats c."""
        c = self.path / "c"
        return c if (c / "edgetk_model.h").is_file() else None


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgetkError(f"{path} is not valid JSON: {e}", fix="re-run `edgetk export`") from e


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle folder; errors say which file is missing and how to make it."""
    path = Path(path)
    tflite = path / "model_int8.tflite"
    if not tflite.is_file():
        raise EdgetkError(f"{path} is not a bundle: no model_int8.tflite",
                          fix="export one: edgetk export RUN_DIR -o BUNDLE (see ARCHITECTURE.md)")
    xs = path / "test_x_int8.npy"
    if not xs.is_file():
        raise EdgetkError(f"{xs} missing: the runner needs int8 test inputs to send to the device",
                          fix="re-run `edgetk export` (it writes test_x_int8.npy and test_y.npy)")
    x = np.load(xs, allow_pickle=False)
    if x.dtype != np.int8:
        raise EdgetkError(f"{xs} has dtype {x.dtype}, expected int8", fix="re-run `edgetk export`")
    raw, frontend = _optional(path / "test_raw_int16.npy", len(x), np.int16), _json(path / "frontend.json")
    if (raw is None) != (frontend is None):
        have, lack = ("test_raw_int16.npy", "frontend.json") if frontend is None else ("frontend.json", "test_raw_int16.npy")
        raise EdgetkError(f"{path} has {have} but no {lack}: the raw test windows need the frontend that made them",
                          fix="re-export the bundle (edgetk export), or remove the stale file")
    return Bundle(path=path, tflite=tflite, sha256=sha256_file(tflite), x=x, y=_optional(path / "test_y.npy", len(x)),
                  manifest=_json(path / "manifest.json") or {}, fidelity=_json(path / "fidelity.json"),
                  reference_out=_optional(path / "test_out_int8.npy", len(x), np.int8), raw=raw, frontend=frontend)


def _optional(path: Path, n: int, dtype: type | None = None) -> np.ndarray | None:
    """An optional per-sample array of the bundle (labels, golden outputs): None when absent, checked when there."""
    if not path.is_file():
        return None
    a = np.load(path, allow_pickle=False)
    if a.ndim == 0 or len(a) != n or (dtype is not None and a.dtype != dtype):
        raise EdgetkError(f"{path} holds {len(a)} rows of {a.dtype}; the bundle has {n} test inputs"
                          + (f" and needs {np.dtype(dtype).name}" if dtype is not None else ""),
                          fix="re-export the bundle (edgetk export) or remove the stale file")
    return a


def bundle_from_tflite(tflite: str | Path, out_dir: str | Path, x: np.ndarray | None = None, *,
                       samples: int = 8, seed: int = 0) -> Bundle:
    """A bundle around any int8 .tflite (e.g. an MLPerf Tiny model): the model, int8 test inputs, TFLite-Micro's
    outputs as golden answers, a manifest and a fidelity report (`edgetk import` of an int8 model, without C).

    Without `x`, the inputs are uniform random int8 of the model's input shape, labelled "random" in the
    manifest and fidelity.md. The folder out_dir is replaced as a whole.
    """
    from toolkit.importer.tflite_int8 import wrap_int8_tflite
    from toolkit.tflite import read_model

    if x is None:
        g = read_model(tflite)
        shape = tuple(g.tensor(g.inputs[0]).shape[1:])
        x = np.random.default_rng(seed).integers(-128, 128, size=(samples, *shape), dtype=np.int8)
        data = {"test": {"source": "random", "seed": seed, "n": samples,
                         "description": f"uniform random int8, seed {seed}"}, "random": True}
    else:
        data = {"test": {"source": "given", "n": int(len(x)), "description": "int8 inputs given by the caller"},
                "random": False}
    return load_bundle(wrap_int8_tflite(tflite, out_dir, np.asarray(x, dtype=np.int8), formats=("tflite",),
                                        data=data))

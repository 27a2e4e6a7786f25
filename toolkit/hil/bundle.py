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


_RERUN = "re-export the bundle (edgetk export), or restore the file from where it came from"


def _json(path: Path) -> dict[str, Any] | None:
    """A JSON object file of the bundle, None when absent; one EdgetkError naming the file otherwise."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise EdgetkError(f"{path} is not valid JSON: {e}", fix=_RERUN) from e
    if not isinstance(data, dict):
        raise EdgetkError(f"{path} holds a JSON {type(data).__name__}, not an object", fix=_RERUN)
    return data


#: manifest fields the runner reads -> the JSON types they may have (None: null allowed)
_MANIFEST = {"kind": (str,), "task_kind": (str,), "task": (str,), "mlperf_key": (str,), "macs": (int, None),
             "tflm_arena_bytes": (int, None), "params": (int, None), "labels": (list,), "files": (dict,),
             "test_set": (dict, None), "data": (dict, None), "source": (dict, None), "import": (dict, None),
             "frontend": (dict, None), "onnxruntime_session_config": (dict, None), "input": (dict, None),
             "output": (dict, None), "inputs": (list,), "outputs": (list,)}
_IO = {"scale": (float, int, list, None), "zero_point": (int, list, None), "shape": (list,), "layout": (str,)}


def _is(value: Any, types: tuple) -> bool:
    for t in types:
        if (t is None and value is None) or (t is int and isinstance(value, int) and not isinstance(value, bool)) \
                or (t is float and isinstance(value, float)) or (t not in (int, float, None) and isinstance(value, t)):
            return True
    return False


def _type_error(path: Path, key: str, value: Any, types: tuple) -> EdgetkError:
    names = " or ".join("null" if t is None else {dict: "object", list: "array", str: "string"}.get(t, t.__name__)
                        for t in types)
    return EdgetkError(f"{path}: field {key!r} is {type(value).__name__} {value!r:.60}, expected {names}", fix=_RERUN)


def check_manifest(path: Path, m: dict[str, Any]) -> None:
    """The manifest fields the runner reads have the types it needs; errors name the file and the field."""
    for key, types in _MANIFEST.items():
        if key in m and not _is(m[key], types):
            raise _type_error(path, key, m[key], types)
    if isinstance(m.get("macs"), int) and m["macs"] < 0:
        raise EdgetkError(f"{path}: field 'macs' is negative ({m['macs']})", fix=_RERUN)
    records = [(k, m[k]) for k in ("input", "output") if isinstance(m.get(k), dict)]
    records += [(f"{k}[{i}]", r) for k in ("inputs", "outputs") for i, r in enumerate(m.get(k) or [])]
    for name, rec in records:
        if not isinstance(rec, dict):
            raise _type_error(path, name, rec, (dict,))
        for key, types in _IO.items():
            if key in rec and not _is(rec[key], types):
                raise _type_error(path, f"{name}.{key}", rec[key], types)
    test = m.get("test_set") or {}
    if "inputs" in test and not isinstance(test["inputs"], str):
        raise _type_error(path, "test_set.inputs", test["inputs"], (str,))
    for name, rec in (m.get("files") or {}).items():
        if not (isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and _is(rec.get("bytes", 0), (int,))):
            raise EdgetkError(f"{path}: field 'files.{name}' must be {{\"sha256\": hex, \"bytes\": size}}, got {rec!r:.80}",
                              fix=_RERUN)


def verify_files(path: Path, m: dict[str, Any]) -> dict[str, str]:
    """Check every file the manifest lists (size, then sha256, each file hashed once) against the bundle folder;
    one EdgetkError naming the first file that differs. Returns {name: sha256} of the files hashed.

    Files under c/ are not compared: `edgetk codegen BUNDLE` may regenerate them, and the generated C carries the
    model it came from (EDGETK_MODEL_SHA256), which the runner compares with the device's answer. A listed file
    that is missing is an error when the runner reads it (the test arrays, frontend.json, fidelity.json)."""
    hashed: dict[str, str] = {}
    for name, rec in sorted((m.get("files") or {}).items()):
        if name.startswith(("c/", "c\\")) or ".." in Path(name).parts or Path(name).is_absolute():
            continue
        f = path / name
        if not f.is_file():
            if name in _READ:
                raise EdgetkError(f"{f} is listed in {path / 'manifest.json'} but missing", fix=_RERUN)
            continue
        size = f.stat().st_size
        digest = sha256_file(f) if size == rec.get("bytes", size) else None
        if digest != rec["sha256"].lower():
            said = f"{size} bytes, expected {rec.get('bytes')}" if digest is None else \
                f"sha256 {digest[:12]}…, the manifest lists {rec['sha256'][:12]}…"
            raise EdgetkError(f"{f} is not the file this bundle was exported with ({said}): replaced or corrupted "
                              "after export", fix=f"{_RERUN}; a file replaced on purpose needs its entry in "
                              "manifest.json 'files' removed or updated")
        hashed[name] = digest
    return hashed


_READ = ("model_int8.tflite", "test_x_int8.npy", "test_y.npy", "test_out_int8.npy", "test_raw_int16.npy",
         "frontend.json", "fidelity.json")


def _npy(path: Path) -> np.ndarray:
    """An array file of the bundle, read without pickles; one EdgetkError naming it when it cannot be read."""
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise EdgetkError(f"{path} is not a readable .npy array (truncated, corrupted, or holding Python objects): "
                          f"{e}", fix=_RERUN) from e
    if not isinstance(a, np.ndarray):
        raise EdgetkError(f"{path} is not a single .npy array", fix=_RERUN)
    return a


def _model_io(tflite: Path) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(input shape without batch, output shape without batch, output dtype) of the model."""
    from toolkit.tflite import read_model

    g = read_model(tflite)
    i, o = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    return tuple(int(d) for d in i.shape[1:]), tuple(int(d) for d in o.shape[1:]), str(o.dtype)


def _per_sample(path: Path, a: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """a with each sample reshaped to `shape` (same element count), else one EdgetkError."""
    size = int(np.prod(shape, dtype=np.int64))
    if a.ndim < 1 or len(a) == 0 or int(np.prod(a.shape[1:], dtype=np.int64)) != size:
        raise EdgetkError(f"{path} has shape {list(a.shape)}: expected at least one sample of {size} values "
                          f"({what} {list(shape)})", fix=_RERUN)
    return a.reshape(len(a), *shape)


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle folder; its manifest's file hashes are checked; errors say which file is wrong and what to do."""
    path = Path(path)
    tflite = path / "model_int8.tflite"
    if not tflite.is_file():
        raise EdgetkError(f"{path} is not a bundle: no model_int8.tflite",
                          fix="export one: edgetk export RUN_DIR -o BUNDLE (see ARCHITECTURE.md)")
    xs = path / "test_x_int8.npy"
    if not xs.is_file():
        raise EdgetkError(f"{xs} missing: the runner needs int8 test inputs to send to the device",
                          fix="re-run `edgetk export` (it writes test_x_int8.npy and test_y.npy)")
    manifest = _json(path / "manifest.json") or {}
    check_manifest(path / "manifest.json", manifest)
    sha = verify_files(path, manifest).get("model_int8.tflite") or sha256_file(tflite)
    in_shape, out_shape, out_dtype = _model_io(tflite)
    x = _npy(xs)
    if x.dtype != np.int8:
        raise EdgetkError(f"{xs} has dtype {x.dtype}, expected int8", fix="re-run `edgetk export`")
    x = _per_sample(xs, x, in_shape, "the model's input")
    frontend = _json(path / "frontend.json")
    raw = _optional(path / "test_raw_int16.npy", len(x), np.int16)
    if (raw is None) != (frontend is None):
        have, lack = ("test_raw_int16.npy", "frontend.json") if frontend is None else ("frontend.json", "test_raw_int16.npy")
        raise EdgetkError(f"{path} has {have} but no {lack}: the raw test windows need the frontend that made them",
                          fix="re-export the bundle (edgetk export), or remove the stale file")
    if raw is not None:
        shape = (frontend.get("raw") or {}).get("shape") if isinstance(frontend.get("raw"), dict) else None
        raw = _per_sample(path / "test_raw_int16.npy", raw, tuple(shape) if isinstance(shape, list) and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape) else raw.shape[1:] or (0,),
            "the frontend's raw window")
    y = _optional(path / "test_y.npy", len(x))
    if y is not None and (y.ndim != 1 or y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.isfinite(y).all())):
        raise EdgetkError(f"{path / 'test_y.npy'} must hold one finite number per test input (labels), got "
                          f"{y.dtype} {list(y.shape)}", fix=_RERUN)
    ref = _optional(path / "test_out_int8.npy", len(x), np.int8)
    if ref is not None and out_dtype == "int8":
        ref = _per_sample(path / "test_out_int8.npy", ref, out_shape, "the model's output")
    return Bundle(path=path, tflite=tflite, sha256=sha, x=x, y=y, manifest=manifest,
                  fidelity=_json(path / "fidelity.json"), reference_out=ref, raw=raw, frontend=frontend)


def _optional(path: Path, n: int, dtype: type | None = None) -> np.ndarray | None:
    """An optional per-sample array of the bundle (labels, golden outputs): None when absent, checked when there."""
    if not path.is_file():
        return None
    a = _npy(path)
    if a.ndim == 0 or len(a) != n or (dtype is not None and a.dtype != dtype):
        raise EdgetkError(f"{path} holds {len(a) if a.ndim else 0} rows of {a.dtype}; the bundle has {n} test inputs"
                          + (f" and needs {np.dtype(dtype).name}" if dtype is not None else ""),
                          fix="re-export the bundle (edgetk export) or remove the stale file")
    return a


def record_files(path: str | Path) -> Path:
    """(Re)write manifest.json's `files` table (sha256 and size of every file but the manifest, as `edgetk export`
    writes it) for the bundle folder as it is now: for bundles made here, and for a file replaced on purpose."""
    from toolkit.export.writer import file_records
    from toolkit.fsio import atomic_write_json

    path = Path(path)
    manifest = _json(path / "manifest.json") or {}
    return atomic_write_json(path / "manifest.json", {**manifest, "files": file_records(path)})


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
    return load_bundle(record_files(wrap_int8_tflite(tflite, out_dir, np.asarray(x, dtype=np.int8),
                                                     formats=("tflite",), data=data)).parent)

"""npz: arrays you already have. `x` [N, ...] (the model input layout, torch NCHW), `y` [N] (int class ids or
strings), optional `groups` [N], `labels` (class names for int y), `split` [N] ("train" / "test") and `soft` [N, classes]
(a soft label per sample: probabilities summing to 1, e.g. a teacher's; the trainer's cross-entropy then uses them
instead of y, which stays the hard label for the metrics).
Read with np.load(allow_pickle=False): object arrays are refused."""
from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.data.source import Problems, Samples, data_root
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

FIX = "np.savez(path, x=inputs, y=labels[, groups=..., labels=..., split=...]) with plain (non-object) arrays"


def read_npz(path: Any) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; EdgetkError for unreadable or pickled content."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise EdgetkError(f"{path}: not a readable .npz of plain arrays ({e})", fix=FIX) from None


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """x, y, groups, labels and split from the .npz file data.root."""
    path = data_root(cfg, ".npz file")
    z = read_npz(path)
    for key in ("x", "y"):
        if key not in z:
            raise EdgetkError(f"{path}: no array {key!r} (it has {sorted(z)})", fix=FIX)
    x, y = z["x"], z["y"]
    n = len(x)
    for key in ("y", "groups", "split"):
        if key in z and z[key].shape != (n,):
            raise EdgetkError(f"{path}: {key!r} has shape {list(z[key].shape)}, x has {n} samples", fix=f"give {key} one entry per sample")
    if y.dtype.kind in "iu":
        labels = [str(v) for v in z["labels"]] if "labels" in z else [str(v) for v in range(int(y.max()) + 1)]
        if y.min() < 0 or y.max() >= len(labels):
            raise EdgetkError(f"{path}: y holds ids outside 0..{len(labels) - 1}", fix="give one name per class in `labels`")
        ids = y.astype(np.int64)
    elif y.dtype.kind == "U":
        labels = sorted(set(y.tolist()))
        ids = np.array([labels.index(v) for v in y.tolist()], dtype=np.int64)
    else:
        raise EdgetkError(f"{path}: y must hold int class ids or strings, got {y.dtype}", fix=FIX)
    if x.dtype.kind not in "iuf":
        raise EdgetkError(f"{path}: x must be numeric, got {x.dtype}", fix=FIX)
    given = z["split"].astype(str) if "split" in z else None
    if given is not None and not np.isin(given, ["train", "test"]).all():
        raise EdgetkError(f"{path}: split holds values other than train/test", fix="write 'train' or 'test' per sample")
    soft = soft_labels(z["soft"], n, len(labels), path) if "soft" in z else None
    return Samples(x=x.astype(np.float32), y=ids, labels=labels, ids=np.array([f"{path.name}#{i}" for i in range(n)]),
                   modality="array", info={"file": path.name, "shape": list(x.shape[1:])}, aux={"soft": soft},
                   groups=z["groups"].astype(str) if "groups" in z else None, given=given,
                   files=({"file": path.name, "shape": list(x.shape), "dtype": str(x.dtype)},), name=f"npz {path.stem}")


def soft_labels(soft: np.ndarray, n: int, n_classes: int, path: Any) -> np.ndarray:
    """The npz `soft` column checked: float [n, classes], finite, non-negative, each row summing to 1."""
    fix = "write soft as float probabilities [samples, classes], each row summing to 1 (e.g. softmax(teacher logits / T))"
    if soft.shape != (n, n_classes):
        raise EdgetkError(f"{path}: 'soft' has shape {list(soft.shape)}, expected [{n}, {n_classes}] (samples, classes)", fix=fix)
    if soft.dtype.kind != "f":
        raise EdgetkError(f"{path}: 'soft' must hold floats, got {soft.dtype}", fix=fix)
    soft = soft.astype(np.float32)
    if not np.isfinite(soft).all() or (soft < 0).any() or not np.allclose(soft.sum(1), 1.0, atol=1e-3):
        raise EdgetkError(f"{path}: 'soft' rows must be finite non-negative probabilities summing to 1", fix=fix)
    return soft

"""The feature stage: split raw samples through the recipe's [frontend] (fixed-point C, toolkit.frontends) or,
without one, through the float features and the train-set standardisation (one place for every format).

Float features without [frontend]: audio -> the numpy MFCC reference (toolkit/data/mfcc.py, 40 ms
frames every 20 ms at the clip's rate) as [1, frames, 10]; time series [T, C] -> [C, 1, T];
images [C, H, W] and arrays as they are. data.normalize = auto standardises with the train split's
mean/std per channel (MFCC: per coefficient; series: per sensor; arrays of 3+ dims: along axis 1),
and images and flat arrays with one scalar mean/std.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable

import numpy as np

from toolkit.data.base import TaskData
from toolkit.data.cache import cached_arrays
from toolkit.data.mfcc import MfccConfig, mfcc
from toolkit.data.source import Samples
from toolkit.data.split import Split
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
FloatFeatures = Callable[[np.ndarray, np.ndarray, Samples, DataConfig], tuple[np.ndarray, np.ndarray, dict[str, Any]]]
MODALITY_FRONTENDS = {"audio": ("mfcc", "logmel"), "series": ("imu",)}   # which [frontend] types fit which samples
DEFAULT_RATE = 8000


def active_frontend(frontend: Any) -> Any:
    """The recipe's [frontend] config, or None when absent or type = "none"."""
    return frontend if frontend is not None and getattr(frontend, "type", "none") != "none" else None


def audio_target(cfg: DataConfig, frontend: Any) -> tuple[int, int]:
    """(sample rate, clip samples) audio is resampled and cut to: the frontend's, else data.sample_rate / clip_samples."""
    fe = active_frontend(frontend)
    if fe is not None:
        for name in ("sample_rate", "clip_samples"):
            mine = getattr(cfg, name)
            if mine and mine != getattr(fe, name):
                raise EdgetkError(f"data.{name} = {mine} differs from frontend.{name} = {getattr(fe, name)}",
                                  fix=f"remove data.{name} (the [frontend] section sets it)")
        return int(fe.sample_rate), int(fe.clip_samples)
    rate = cfg.sample_rate or DEFAULT_RATE
    return rate, cfg.clip_samples or rate


def make_task(s: Samples, split: Split, cfg: DataConfig, frontend: Any = None,
              float_features: FloatFeatures | None = None) -> TaskData:
    """TaskData from split samples: [frontend] features when the recipe has one, else float features + standardisation."""
    tr, te = split.train, split.test
    raw_tr, raw_te = s.x[tr], s.x[te]
    info = dict(split.info)
    if s.aux.get("noise") is not None and cfg.noise_mode == "augment":
        from toolkit.data.audio import augment

        raw_tr, info["noise_mixed"] = augment(raw_tr, s.aux["noise"], cfg)
    missing = [s.labels[c] for c in range(len(s.labels)) if not (s.y[tr] == c).any()]
    if missing and s.kind == "classification":
        info["classes_without_train_samples"] = missing
        log.warning("%s: classes %s have no training samples after the %s split", s.name, missing, info["method"])
    fe = active_frontend(frontend)
    if fe is not None:
        x_tr, x_te, raw_tr, raw_te, fe_info = _through_frontend(fe, s, raw_tr, raw_te)
    else:
        x_tr, x_te, fe_info = (float_features or default_features)(raw_tr, raw_te, s, cfg)
    groups, soft = s.groups, s.aux.get("soft")
    return TaskData(x_tr, s.y[tr], x_te, s.y[te], list(s.labels), s.kind, fe_info, s.name,
                    groups_train=None if groups is None else groups[tr], groups_test=None if groups is None else groups[te],
                    ids_train=s.ids[tr], ids_test=s.ids[te], raw_train=raw_tr, raw_test=raw_te, split=info,
                    problems=tuple(s.problems), soft_train=None if soft is None else soft[tr],
                    soft_test=None if soft is None else soft[te])


def _through_frontend(fe: Any, s: Samples, raw_tr: np.ndarray, raw_te: np.ndarray) -> tuple:
    fits = MODALITY_FRONTENDS.get(s.modality, ())
    if fe.type not in fits:
        raise EdgetkError(f"[frontend] type = {fe.type!r} does not fit {s.modality} data ({s.name})",
                          fix=f"use a frontend of type {' | '.join(fits)}" if fits else "remove the [frontend] section")
    import dataclasses
    import json

    from toolkit.frontends import Frontend, apply_frontend

    def compute() -> dict[str, np.ndarray]:
        res = apply_frontend(fe, raw_tr, raw_te)
        return {"x_train": res.x_train, "x_test": res.x_test, "raw_train": res.raw_train_i16, "raw_test": res.raw_test_i16,
                "info": np.frombuffer(json.dumps(res.info).encode(), dtype=np.uint8)}

    key = {"version": 1, "frontend": dataclasses.asdict(fe), "stage1": Frontend(fe, raw_tr.shape[1:], None, ()).cache_key(),
           "train": _digest(raw_tr), "test": _digest(raw_te)}
    a = cached_arrays(f"frontend-{fe.type}", key, compute)
    info = json.loads(a["info"].tobytes())
    return a["x_train"], a["x_test"], a["raw_train"], a["raw_test"], {**info, "source": _public(s.info)}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() + str(a.dtype) + str(list(a.shape))


def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}


def default_features(raw_tr: np.ndarray, raw_te: np.ndarray, s: Samples, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Float features per modality (module docstring) standardised by data.normalize with train-set statistics."""
    if s.modality == "audio":
        mc = mfcc_config(int(s.info["sample_rate"]), int(s.info["clip_samples"]))
        x_tr, x_te = audio_mfcc(raw_tr, mc), audio_mfcc(raw_te, mc)
        fe: dict[str, Any] = {"type": "mfcc", **mc.asdict(), "layout": "[1, n_frames, n_mfcc]"}
        axis = -1
    elif s.modality == "series":
        x_tr, x_te = series_layout(raw_tr), series_layout(raw_te)
        fe = {"type": "series", "layout": "[channels, 1, time]"}
        axis = 1
    else:
        x_tr, x_te = raw_tr.astype(np.float32), raw_te.astype(np.float32)
        fe = {"type": s.modality, "layout": str(list(x_tr.shape[1:]))}
        axis = 1 if s.modality == "array" and x_tr.ndim >= 3 else None
    mode = cfg.normalize if cfg.normalize != "auto" else ("channel" if axis is not None else "scalar")
    x_tr, x_te, norm = normalize(x_tr, x_te, mode, axis if axis is not None else 1)
    return x_tr, x_te, {**fe, **_public(s.info), **norm}


def mfcc_config(rate: int, clip: int) -> MfccConfig:
    """The float MFCC reference at any rate: 40 ms frames, 20 ms hop, FFT of the next power of two (8 kHz: MfccConfig())."""
    frame, hop = round(0.04 * rate), round(0.02 * rate)
    if clip < frame:
        raise EdgetkError(f"clips of {clip} samples are shorter than one 40 ms MFCC frame at {rate} Hz",
                          fix="raise data.clip_samples")
    return MfccConfig(sample_rate=rate, clip_samples=clip, frame_len=frame, hop=hop,
                      n_fft=1 << (frame - 1).bit_length(), fmax=rate / 2)


def audio_mfcc(clips: np.ndarray, cfg: MfccConfig) -> np.ndarray:
    """int16 clips [N, clip] -> float MFCC [N, 1, frames, n_mfcc] (cached by the clips' digest and the parameters)."""
    if not len(clips):
        return np.zeros((0, 1, cfg.n_frames, cfg.n_mfcc), np.float32)
    key = {"version": 1, "mfcc": cfg.asdict(), "clips": _digest(clips)}
    return cached_arrays("mfcc", key, lambda: {"x": mfcc(clips.astype(np.float32) / 32768.0, cfg)})["x"][:, None]


def series_layout(x: np.ndarray) -> np.ndarray:
    """Windows [N, T, C] -> the model layout [N, C, 1, T] (contiguous float32)."""
    return np.ascontiguousarray(x.astype(np.float32).transpose(0, 2, 1)[:, :, None, :])


def normalize(x_tr: np.ndarray, x_te: np.ndarray, mode: str, axis: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Standardise both sets with the train set's mean/std: per entry of `axis` (channel), over everything (scalar), or not."""
    from toolkit.data.base import standardize

    if mode == "none":
        return x_tr, x_te, {"normalize": "none"}
    if not len(x_tr):
        raise EdgetkError("the train split is empty", fix="check data.split and the data folders")
    axes = tuple(range(x_tr.ndim)) if mode == "scalar" else tuple(a for a in range(x_tr.ndim) if a != axis % x_tr.ndim)
    x_tr, x_te, mean, std = standardize(x_tr, x_te, axis=axes)
    what = "(x - mean) / std" if mode == "scalar" else "per channel: (x - mean[c]) / std[c]"
    return x_tr, x_te, {"mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(), "normalize": what}

"""apply_frontend / frontend_from_info: raw windows -> int8 model inputs through the host build of the device C."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.frontends.config import TYPES, FrontendConfig
from toolkit.frontends.frontend import IMPLEMENTATION, Frontend
from toolkit.frontends.norm import Stage2, stage2_params

# frontend.type -> what its raw input is (the registry: one line per frontend)
FRONTENDS: dict[str, str] = {
    "mfcc": "audio int16 [N, clip_samples] -> MFCC [n_frames, n_mfcc]",
    "logmel": "audio int16 [N, clip_samples] -> log mel energies [n_frames, n_mels]",
    "imu": "sensor float32 [N, T, C] (units) or int16 counts -> [T, C]",
}


@dataclass(frozen=True)
class FrontendResult:
    """apply_frontend's output: model inputs for training plus what the device receives."""

    x_train: np.ndarray        # float32, torch layout, exactly (q - zp) * scale
    x_test: np.ndarray
    q_train: np.ndarray        # int8 [N, T, C]: the device's features
    q_test: np.ndarray
    raw_train_i16: np.ndarray  # int16 raw windows, what a device receives
    raw_test_i16: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)  # -> TaskData.frontend and the bundle manifest
    frontend: Frontend | None = None


def _audio_i16(raw: np.ndarray, cfg: FrontendConfig, split: str) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[1] != cfg.clip_samples:
        raise EdgetkError(f"{split} audio has shape {list(raw.shape)}; the {cfg.type} frontend wants "
                          f"[N, {cfg.clip_samples}] windows", fix="pad/crop clips to frontend.clip_samples samples")
    if raw.dtype == np.int16:
        return np.ascontiguousarray(raw)
    if np.issubdtype(raw.dtype, np.floating):  # float PCM in [-1, 1): value * 32768, rounded, saturated
        _finite(raw, split)
        return np.clip(np.round(raw.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    raise EdgetkError(f"{split} audio is {raw.dtype}", fix="pass int16 PCM (or float PCM in [-1, 1))")


def _imu_i16(raw: np.ndarray, cpu: tuple[float, ...] | None, split: str) -> np.ndarray:
    from toolkit.frontends.imu import to_counts

    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise EdgetkError(f"{split} IMU data has shape {list(raw.shape)}", fix="pass windows [N, T, C] (time-major)")
    if raw.dtype == np.int16:
        return np.ascontiguousarray(raw)
    _finite(raw, split)
    return to_counts(raw, cpu)


def _finite(raw: np.ndarray, split: str) -> None:
    bad = np.argwhere(~np.isfinite(raw))
    if len(bad):
        raise EdgetkError(f"{split} window {int(bad[0][0])} holds a non-finite value ({len(bad)} in all)",
                          fix="drop or repair those windows before the frontend (a sensor driver delivers integers)")


def _convert(cfg: FrontendConfig, raw_train: np.ndarray, raw_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    if cfg.type == "imu":
        from toolkit.frontends.imu import counts_per_unit

        cpu = () if np.asarray(raw_train).dtype == np.int16 else counts_per_unit(cfg, np.asarray(raw_train))
        return _imu_i16(raw_train, cpu, "train"), _imu_i16(raw_test, cpu, "test"), cpu
    return _audio_i16(raw_train, cfg, "train"), _audio_i16(raw_test, cfg, "test"), ()


def reference_distance(fe: Frontend, raw_test: np.ndarray, raw_test_i16: np.ndarray, stage1: np.ndarray) -> dict:
    """Distance of the fixed-point stage-1 features to the float reference: SNR (dB), max/RMS abs error."""
    if fe.cfg.type == "imu":
        ref = np.asarray(raw_test, dtype=np.float64)
        got = stage1.astype(np.float64) / np.array(fe.counts_per_unit) if fe.counts_per_unit else ref
        what = "float sensor values vs int16 counts / counts_per_unit"
    else:
        from toolkit.frontends.audio import float_reference

        ref = float_reference(fe.cfg, raw_test_i16)
        got = stage1.astype(np.float64) / 2.0 ** fe.frac_bits
        what = "toolkit/data/mfcc.py numpy float64 on the same int16 PCM"
    err = got - ref
    noise = float(np.sum(err ** 2))
    snr = float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref ** 2)) / noise)
    return {"snr_db": round(float(snr), 2), "max_abs_err": float(np.max(np.abs(err))) if err.size else 0.0,
            "rms_err": float(np.sqrt(np.mean(err ** 2))) if err.size else 0.0, "windows": int(len(ref)),
            "split": "test", "reference": what}


def apply_frontend(cfg: FrontendConfig, raw_train: np.ndarray, raw_test: np.ndarray) -> FrontendResult:
    """Raw windows -> int8 features through the host C, normalised with the train split's statistics."""
    cfg.validate()
    if cfg.type not in FRONTENDS:
        raise EdgetkError(f"frontend.type={cfg.type!r} computes no features",
                          fix=f"choose one of {', '.join(FRONTENDS)}, or remove the [frontend] section")
    tr, te, cpu = _convert(cfg, raw_train, raw_test)
    fe0 = Frontend(cfg, tr.shape[1:], None, cpu)
    s1_train = fe0.stage1(tr).astype(np.float64) / 2.0 ** fe0.frac_bits    # [N, T, C] float units
    mean = s1_train.mean(axis=(0, 1))
    std = s1_train.std(axis=(0, 1)) + 1e-6
    fe = Frontend(cfg, tr.shape[1:], stage2_params(mean, std, fe0.frac_bits, cfg.input_scale_log2), cpu)
    q_train, q_test = fe.features(tr), fe.features(te)
    info = fe.info()
    info["normalization"].update(mean=mean.tolist(), std=std.tolist(),
                                 rule="q = sat8(zp + round((f - off[c]) * mul[c] / 2^shift[c])) ~ (x - mean[c]) / std[c] / scale")
    info["float_reference_distance"] = reference_distance(fe, raw_test, te, fe.stage1(te))
    return FrontendResult(fe.to_torch(q_train), fe.to_torch(q_test), q_train, q_test, tr, te, info, fe)


def frontend_from_info(info: dict[str, Any]) -> Frontend:
    """Rebuild the Frontend recorded in TaskData.frontend / a bundle manifest (for export, codegen, profile)."""
    try:
        params = dict(info["params"])
        params["counts_per_unit"] = tuple(params.get("counts_per_unit", ()))
        cfg = FrontendConfig(**params)
        norm = info.get("normalization")
        st = Stage2(tuple(norm["off"]), tuple(norm["mul"]), tuple(norm["shift"]), int(norm["zero_point"])) if norm else None
        fe = Frontend(cfg, tuple(info["raw"]["shape"]), st, tuple(info.get("counts_per_unit", ())))
    except (KeyError, TypeError, ValueError) as e:
        raise EdgetkError(f"frontend info is incomplete or damaged ({type(e).__name__}: {e})",
                          fix="re-run the dataset/training step that wrote it") from None
    if info.get("implementation", IMPLEMENTATION) != IMPLEMENTATION:
        raise EdgetkError(f"frontend was made by {info['implementation']!r}, this edgetk has {IMPLEMENTATION!r}",
                          fix="retrain with this edgetk so device and training features match")
    return fe

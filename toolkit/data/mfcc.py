"""A numpy MFCC front end (the MLPerf Tiny KWS input shape: 49 frames x 10 coefficients).

Firmware must reproduce exactly these steps, so each one is a parameter of MfccConfig:
1. int16 PCM / 32768 -> float; keep the first `clip_samples` samples, zero-pad at the end.
2. Frames of `frame_len` samples every `hop` samples (no centre padding):
   1 + (8000 - 320) // 160 = 49 frames at 8 kHz, 40 ms window, 20 ms hop.
3. Periodic Hann window, |rfft(n_fft)|^2 power spectrum.
4. `n_mels` triangular mel filters (HTK mel scale, 2595 * log10(1 + f / 700)) from fmin to fmax.
5. Natural log of (mel energy + log_floor).
6. Orthonormal DCT-II over the mel axis; keep the first `n_mfcc` coefficients.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MfccConfig:
    """Front-end parameters; dataclasses.asdict() goes into TaskData.frontend."""

    sample_rate: int = 8000
    clip_samples: int = 8000      # 1 s
    frame_len: int = 320          # 40 ms
    hop: int = 160                # 20 ms
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 10
    fmin: float = 20.0
    fmax: float = 4000.0
    log_floor: float = 1e-6

    @property
    def n_frames(self) -> int:
        """Frames per clip (49 with the defaults)."""
        return 1 + (self.clip_samples - self.frame_len) // self.hop

    def asdict(self) -> dict:
        """Plain dict of the parameters plus the derived frame count."""
        return {**dataclasses.asdict(self), "n_frames": self.n_frames, "window": "hann-periodic",
                "mel_scale": "htk", "dct": "II-ortho", "pad": "zero-pad/crop at the end"}


def mel_filterbank(cfg: MfccConfig) -> np.ndarray:
    """Triangular mel filters, shape [n_mels, n_fft // 2 + 1]."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(np.array(cfg.fmin)), hz_to_mel(np.array(cfg.fmax)), cfg.n_mels + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins[None, :] - lo) / (mid - lo)
    down = (hi - bins[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis, shape [n_out, n_in]."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def mfcc(signals: np.ndarray, cfg: MfccConfig = MfccConfig()) -> np.ndarray:
    """MFCCs of a batch of float signals [B, clip_samples] -> [B, n_frames, n_mfcc] float32."""
    idx = np.arange(cfg.frame_len)[None, :] + cfg.hop * np.arange(cfg.n_frames)[:, None]
    frames = signals[:, idx]                                    # [B, frames, frame_len]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.frame_len) / cfg.frame_len)
    power = np.abs(np.fft.rfft(frames * window, n=cfg.n_fft)) ** 2  # [B, frames, n_fft/2+1]
    mel = power @ mel_filterbank(cfg).T                         # [B, frames, n_mels]
    return (np.log(mel + cfg.log_floor) @ dct_matrix(cfg.n_mels, cfg.n_mfcc).T).astype(np.float32)


def fit_clip(pcm: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad a signal at the end to exactly n samples."""
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(pcm))] = pcm[:n]
    return out

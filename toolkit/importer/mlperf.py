"""Real inputs for the MLPerf Tiny models: KWS features of real speech (shared FSDD), IC natural images.

MLPerf Tiny's KWS model takes [49, 10] MFCC of one second of 16 kHz audio. `mlperf_mfcc` recomputes them in
numpy the way its training pipeline describes them: 30 ms periodic-Hann frames every 20 ms, 512-point FFT
magnitude, 40 HTK mel bands 20-4000 Hz, log(x + 1e-6), DCT-II scaled by 1/sqrt(2·40), 10 coefficients. It is not
bit-exact with TensorFlow's ops, but its silence frames land on the reference input's -123.4 exactly and MLPerf's
own int8 model agrees with the float model on 99.5 % of FSDD clips through it (bench/import_mlperf.py). FSDD clips
(8 kHz) are resampled to 16 kHz: real speech in the model's input distribution, not its keywords.

IC takes 32×32 RGB images (0-255); there are no CIFAR-10 images here, so `natural_images` crops the two photos
scikit-learn ships (no download) at random places and sizes and samples them down to 32×32: real photographs,
not CIFAR's classes (the float model is unsure on many: median top-1 margin 0.38).
"""
from __future__ import annotations

import numpy as np

from toolkit.errors import EdgetkError


def mlperf_mfcc(audio: np.ndarray) -> np.ndarray:
    """[49, 10] MFCC of one second of 16 kHz audio in [-1, 1] (zero-padded), MLPerf Tiny KWS style (see above)."""
    a = np.zeros(16000)
    a[:min(16000, len(audio))] = audio[:16000]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)  # periodic Hann
    frames = np.stack([a[i:i + 480] * win for i in range(0, 16000 - 480 + 1, 320)])
    logmel = np.log(np.abs(np.fft.rfft(frames, 512)) @ _mel_matrix() + 1e-6)
    n = logmel.shape[1]
    dct = 2 * np.cos(np.pi * np.arange(n)[:, None] * (2 * np.arange(n)[None] + 1) / (2 * n))
    return (logmel @ dct.T / np.sqrt(2 * n))[:, :10].astype(np.float32)


def _mel_matrix(n_mels: int = 40, n_bins: int = 257, sr: int = 16000, lo: float = 20.0, hi: float = 4000.0) -> np.ndarray:
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    m = mel(np.linspace(0, sr / 2, n_bins)[1:])[:, None]
    e = np.linspace(mel(lo), mel(hi), n_mels + 2)
    lower, center, upper = e[:-2][None], e[1:-1][None], e[2:][None]
    w = np.maximum(0, np.minimum((m - lower) / (center - lower), (upper - m) / (upper - center)))
    return np.vstack([np.zeros((1, n_mels)), w])


def fsdd_speech(n: int, seed: int = 0) -> np.ndarray:
    """[n, 49, 10, 1] MLPerf-style MFCC of n FSDD clips (seeded draw), 8 → 16 kHz."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    from toolkit.paths import shared_dir

    files = sorted((shared_dir() / "data" / "fsdd" / "recordings").glob("*.wav"))
    if len(files) < n:
        raise EdgetkError(f"FSDD not found or too small under {shared_dir()}", fix="set EDGETK_SHARED")
    pick = np.random.default_rng(seed).permutation(len(files))[:n]
    out = []
    for i in pick:
        _, w = wavfile.read(files[i])
        out.append(mlperf_mfcc(resample_poly(w.astype(np.float64), 2, 1) / 32768.0))
    return np.stack(out)[..., None]


def natural_images(n: int, seed: int = 0) -> np.ndarray:
    """[n, 32, 32, 3] float32 (0-255) crops of scikit-learn's sample photos, nearest-sampled down to 32×32."""
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        im = imgs[k % len(imgs)]
        size = int(rng.integers(32, 160))
        y0, x0 = (int(rng.integers(0, im.shape[d] - size)) for d in (0, 1))
        idx = (np.arange(32) * size / 32).astype(int)
        out.append(im[y0:y0 + size, x0:x0 + size][idx][:, idx])
    return np.stack(out).astype(np.float32)

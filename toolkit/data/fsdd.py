"""Free Spoken Digit Dataset (FSDD) -> MFCC keyword spotting data.

Zohar Jackson et al., Free Spoken Digit Dataset, github Jakobovski/free-spoken-digit-dataset
(CC BY-SA 4.0): 3,000 8 kHz mono 16-bit WAVs `{digit}_{speaker}_{index}.wav`, 6 speakers x 10
digits x 50 recordings. Split: index 0-4 of every digit/speaker is test (300), the rest train (2,700).
"""
from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np

from toolkit.data.base import TaskData, standardize
from toolkit.data.cache import cached_arrays
from toolkit.data.mfcc import MfccConfig, fit_clip, mfcc
from toolkit.errors import EdgetkError
from toolkit.paths import shared_dir
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
LABELS = [str(d) for d in range(10)]
FIX = ("get the recordings from github Jakobovski/free-spoken-digit-dataset (folder recordings/) "
       "and set data.root (--set data.root=PATH) or EDGETK_SHARED to the folder holding data/fsdd")


def default_root() -> Path:
    """../shared/data/fsdd (or $EDGETK_SHARED/data/fsdd)."""
    return shared_dir() / "data" / "fsdd"


def find_wavs(root: Path) -> list[Path]:
    """The FSDD WAV files under root (or root/recordings), sorted by name."""
    if not root.is_dir():
        raise EdgetkError(f"FSDD data folder not found: {root}", fix=FIX)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    wavs = sorted(folder.glob("*_*_*.wav"))
    if not wavs:
        raise EdgetkError(f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) in {folder}", fix=FIX)
    return wavs


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """A mono 16-bit PCM WAV as float32 in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getframerate() != sample_rate or w.getsampwidth() != 2:
                raise EdgetkError(f"{path}: expected {sample_rate} Hz 16-bit PCM, got {w.getframerate()} Hz "
                                  f"{8 * w.getsampwidth()}-bit", fix="use the original FSDD recordings")
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            if w.getnchannels() > 1:
                pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
    except (wave.Error, EOFError) as e:
        raise EdgetkError(f"{path}: not a readable WAV ({e})", fix=FIX) from None
    return pcm.astype(np.float32) / 32768.0


def _features(wavs: list[Path], cfg: MfccConfig) -> dict[str, np.ndarray]:
    log.info("computing MFCCs for %d FSDD clips", len(wavs))
    clips = np.stack([fit_clip(read_wav(p, cfg.sample_rate), cfg.clip_samples) for p in wavs])
    parts = [p.stem.split("_") for p in wavs]
    return {"x": mfcc(clips, cfg), "digit": np.array([int(d) for d, _, _ in parts], dtype=np.int64),
            "index": np.array([int(i) for _, _, i in parts], dtype=np.int64),
            "speaker": np.array([s for _, s, _ in parts], dtype=str)}


def load(cfg: DataConfig) -> TaskData:
    """FSDD as [N, 1, 49, 10] MFCCs normalised per coefficient with train-set mean/std."""
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    wavs = find_wavs(root)
    fe = MfccConfig()
    params = {"version": 2, "frontend": fe.asdict(), "files": [(p.name, p.stat().st_size) for p in wavs]}
    arr = cached_arrays("fsdd-mfcc", params, lambda: _features(wavs, fe))
    test = arr["index"] < 5
    x = arr["x"][:, None]                                       # [N, 1, 49, 10]
    x_train, x_test, mean, std = standardize(x[~test], x[test], axis=(0, 1, 2))
    frontend = {"type": "mfcc", **fe.asdict(), "layout": "[1, n_frames, n_mfcc]",
                "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
                "normalize": "per coefficient: (mfcc - mean[c]) / std[c]"}
    speaker = arr["speaker"]
    return TaskData(x_train, arr["digit"][~test], x_test, arr["digit"][test], LABELS, "classification", frontend, "fsdd",
                    groups_train=speaker[~test], groups_test=speaker[test])

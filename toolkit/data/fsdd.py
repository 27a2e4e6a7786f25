"""Free Spoken Digit Dataset (FSDD) -> MFCC keyword spotting data (a preset of the audio stages).

Zohar Jackson et al., Free Spoken Digit Dataset, github Jakobovski/free-spoken-digit-dataset
(CC BY-SA 4.0): 3,000 8 kHz mono 16-bit WAVs `{digit}_{speaker}_{index}.wav`, 6 speakers x 10
digits x 50 recordings. Split: index 0-4 of every digit/speaker is test (300), the rest train (2,700).
Groups: the speaker. Without [frontend]: float MFCC 49x10 (toolkit/data/mfcc.py) per-coefficient standardised.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.audio import decode_clips
from toolkit.data.base import standardize
from toolkit.data.features import audio_mfcc, audio_target, mfcc_config
from toolkit.data.source import FileEntry, Problems, Samples, resolve
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


def entry(path: Path) -> FileEntry:
    """A recording's class (digit), group (speaker) and fixed split (index 0-4: test)."""
    digit, speaker, index = path.stem.split("_")
    return FileEntry(path, path.name, digit, speaker, "test" if int(index) < 5 else "train")


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """FSDD as int16 clips at the target rate (8 kHz, 1 s without [frontend])."""
    rate, clip = audio_target(cfg, frontend)
    entries = [entry(p) for p in find_wavs(resolve(cfg, cfg.root) if cfg.root else default_root())]
    x, keep, files = decode_clips(entries, rate, clip, cfg, problems, tag="fsdd-audio")
    kept = [entries[i] for i in keep]
    ids = {c: i for i, c in enumerate(LABELS)}
    return Samples(x=x, y=np.array([ids[e.label] for e in kept], dtype=np.int64), labels=LABELS,
                   ids=np.array([e.rel for e in kept], dtype=str), modality="audio",
                   info={"sample_rate": rate, "clip_samples": clip}, groups=np.array([e.group for e in kept], dtype=str),
                   given=np.array([e.split for e in kept], dtype=str), files=tuple(files),
                   problems=tuple(problems.items), name="fsdd")


def float_features(raw_tr: np.ndarray, raw_te: np.ndarray, s: Samples, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """[N, 1, 49, 10] float MFCCs normalised per coefficient with train-set mean/std."""
    fe = mfcc_config(int(s.info["sample_rate"]), int(s.info["clip_samples"]))
    x_train, x_test, mean, std = standardize(audio_mfcc(raw_tr, fe), audio_mfcc(raw_te, fe), axis=(0, 1, 2))
    frontend = {"type": "mfcc", **fe.asdict(), "layout": "[1, n_frames, n_mfcc]",
                "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
                "normalize": "per coefficient: (mfcc - mean[c]) / std[c]"}
    return x_train, x_test, frontend

"""Write the real datasets that install offline as user files (WAV folders, CSV/Parquet recordings, PNGs, npz)
for the tests of toolkit/data's formats. Each writer returns what it wrote."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.data.basicmotions import CHANNELS, _read, sktime_data_dir


def fsdd_files(fsdd: Path, speakers: tuple[str, ...] = (), digits: tuple[str, ...] = ()) -> list[Path]:
    """The FSDD recordings, optionally only some speakers/digits."""
    from toolkit.data.fsdd import find_wavs

    out = []
    for p in find_wavs(fsdd):
        digit, speaker, _ = p.stem.split("_")
        if (not speakers or speaker in speakers) and (not digits or digit in digits):
            out.append(p)
    return out


def write_fsdd_wavs(fsdd: Path, out: Path, rate: int = 16000, subtype: str = "PCM_24", stereo_every: int = 7,
                    split_folders: bool = True, speakers: tuple[str, ...] = (), digits: tuple[str, ...] = ()) -> list[Path]:
    """FSDD as class folders of WAVs at `rate` (polyphase-resampled) in `subtype`, every n-th file stereo;
    under train/ and test/ by the recording index (0-4: test) when split_folders."""
    import soundfile as sf

    from toolkit.data.audio import resample

    written = []
    for i, p in enumerate(fsdd_files(fsdd, speakers, digits)):
        digit, _, index = p.stem.split("_")
        pcm, sr = sf.read(str(p), dtype="float64")
        sig = resample(pcm, sr, rate)
        if stereo_every and i % stereo_every == 0:
            sig = np.stack([sig, sig], axis=1)
        folder = out / ("test" if int(index) < 5 else "train") / digit if split_folders else out / digit
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / p.name), np.clip(sig, -1.0, 1.0 - 2.0**-23), rate, subtype=subtype)
        written.append(folder / p.name)
    return written


def basicmotions() -> dict[str, tuple[np.ndarray, list[str]]]:
    """BasicMotions from the sktime wheel: {split: (x [N, 6, 100], labels)}."""
    root = sktime_data_dir("BasicMotions")
    return {s: _read(root, s.upper())[:2] for s in ("train", "test")}


def write_recording(path: Path, rec: np.ndarray, step_ms: float = 100.0, t: np.ndarray | None = None,
                    columns: list[str] = CHANNELS) -> Path:
    """One recording [6, T] as CSV (t_ms + the six channels) or Parquet, by the path's suffix."""
    t = np.arange(rec.shape[1]) * step_ms if t is None else t
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"t_ms": t, **{c: rec[j].astype(np.float64) for j, c in enumerate(columns)}}), str(path))
        return path
    rows = [f"{t[k]:g}," + ",".join(repr(float(rec[j, k])) for j in range(len(rec))) for k in range(rec.shape[1])]
    path.write_text("t_ms," + ",".join(columns) + "\n" + "\n".join(rows) + "\n")
    return path


def write_basicmotions_csv(out: Path, parquet: int = 1) -> list[Path]:
    """BasicMotions as out/{train,test}/<class>/rec<i>.csv (10 Hz timestamps in ms); the first `parquet` ones as Parquet."""
    written = []
    for split, (x, labels) in basicmotions().items():
        for i, (rec, label) in enumerate(zip(x, labels)):
            suffix = ".parquet" if len(written) < parquet else ".csv"
            written.append(write_recording(out / split / label / f"rec{i:02d}{suffix}", rec))
    return written


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images 0-16 [N, 8, 8], targets, train indices, test indices) as the digits preset splits them."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    tr, te = train_test_split(np.arange(len(d.target)), test_size=test_fraction, random_state=seed, stratify=d.target)
    return d.images, d.target, tr, te


def write_digits_png(out: Path) -> int:
    """scikit-learn digits as out/{train,test}/<digit>/img<i>.png (8-bit grey = 15 x level: exact), the preset's split."""
    from PIL import Image

    images, target, tr, te = digits_split()
    for split, idx in (("train", tr), ("test", te)):
        for i in idx:
            folder = out / split / str(target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((images[i] * 15).astype(np.uint8)).save(folder / f"img{i:04d}.png")
    return len(target)


def write_basicmotions_npz(path: Path) -> Path:
    """BasicMotions as an .npz: x [N, 6, 1, 100] float32, y class names, split train/test."""
    parts = basicmotions()
    x = np.concatenate([parts[s][0] for s in parts])[:, :, None, :].astype(np.float32)
    y = np.array([v for s in parts for v in parts[s][1]])
    split = np.array([s for s in parts for _ in parts[s][1]])
    np.savez(path, x=x, y=y, split=split)
    return path

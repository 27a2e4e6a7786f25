"""audio-folder: WAV files (one folder per class), decoded with soundfile, resampled with scipy's polyphase resampler.

Any rate and sample format libsndfile reads (8/16/24/32-bit integer, 32/64-bit float), mono or
stereo (mixed to mono, or one channel with data.channel); resampled to the target rate with
scipy.signal.resample_poly (up/down reduced by their gcd), padded/cropped to clip_samples
(data.pad = end | center, data.crop = start | center) and rounded to int16. An optional noise folder
becomes a class (data.noise_mode = "class") or is mixed into training clips at a seeded SNR.
Decoded clips are cached (toolkit/data/cache.py) by the parameters and the files' names, sizes and mtimes.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.cache import cached_arrays
from toolkit.data.source import FileEntry, Problems, Samples, data_root, list_files, resolve, samples_from
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
FIX_SF = "pip install soundfile (it bundles libsndfile)"


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as e:
        raise EdgetkError(f"reading audio needs the soundfile package ({e})", fix=FIX_SF) from None
    return soundfile


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16, rounded to nearest and saturated."""
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """x at `rate` Hz resampled to `target` Hz with scipy.signal.resample_poly (up/down reduced by their gcd)."""
    if rate == target:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(x, target // g, rate // g)


def fit(x: np.ndarray, n: int, pad: str = "end", crop: str = "start") -> np.ndarray:
    """Exactly n samples: short clips zero-padded (at the end or both sides), long ones cropped (start or centre)."""
    if len(x) >= n:
        start = (len(x) - n) // 2 if crop == "center" else 0
        return x[start:start + n]
    out = np.zeros(n, dtype=x.dtype)
    start = (n - len(x)) // 2 if pad == "center" else 0
    out[start:start + len(x)] = x
    return out


class AudioError(ValueError):
    """A file that cannot be used as audio (the message says why)."""


def read_audio(path: Path, rate: int, channel: int = -1) -> tuple[np.ndarray, dict[str, Any]]:
    """(float64 mono signal at `rate` Hz, facts of the file); AudioError when unreadable."""
    sf = _soundfile()
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
        subtype = sf.info(str(path)).subtype
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:  # LibsndfileError: bad header, truncated, not audio
        raise AudioError(f"not a readable audio file ({e})") from None
    if len(data) == 0:
        raise AudioError("holds no samples")
    if channel >= data.shape[1]:
        raise AudioError(f"has {data.shape[1]} channel(s), data.channel = {channel} (-1 mixes them)")
    mono = data.mean(axis=1) if channel < 0 else data[:, channel]
    facts = {"rate_hz": int(sr), "channels": int(data.shape[1]), "seconds": round(len(data) / sr, 4), "subtype": subtype}
    return resample(mono, int(sr), rate), facts


def decode_clips(entries: list[FileEntry], rate: int, clip: int, cfg: DataConfig, problems: Problems,
                 tag: str = "audio") -> tuple[np.ndarray, list[int], list[dict[str, Any]]]:
    """int16 clips [N, clip] of the readable entries (cached), their indices and per-file facts; problems re-reported."""
    params = {"version": 1, "rate": rate, "clip": clip, "pad": cfg.pad, "crop": cfg.crop, "channel": cfg.channel,
              "files": [(str(e.path), e.path.stat().st_size, e.path.stat().st_mtime_ns) for e in entries]}

    def compute() -> dict[str, np.ndarray]:
        log.info("decoding %d audio files at %d Hz", len(entries), rate)
        found = Problems("collect")
        clips, ok, facts = [], [], []
        for i, e in enumerate(entries):
            try:
                sig, f = read_audio(e.path, rate, cfg.channel)
            except AudioError as err:
                found.add(e.path, str(err))
                facts.append({})
                continue
            clips.append(to_int16(fit(sig, clip, cfg.pad, cfg.crop)))
            ok.append(i)
            facts.append(f)
        return {"x": np.stack(clips) if clips else np.zeros((0, clip), np.int16), "ok": np.array(ok, dtype=np.int64),
                "meta": _json_array({"facts": facts, "problems": found.items})}

    arr = cached_arrays(tag, params, compute)
    meta = json.loads(arr["meta"].tobytes())
    problems.extend(meta["problems"])
    files = [{"file": e.rel, "label": e.label, "group": e.group, "split": e.split, **f}
             for e, f in zip(entries, meta["facts"]) if f]
    return arr["x"], arr["ok"].tolist(), files


def _json_array(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """The audio-folder dataset as int16 clips [N, clip] at the target rate (noise class appended when asked)."""
    from toolkit.data.features import audio_target

    rate, clip = audio_target(cfg, frontend)
    root = data_root(cfg, "audio files")
    entries = list_files(cfg, root, SUFFIXES, problems, "audio files")
    x, keep, files = decode_clips(entries, rate, clip, cfg, problems)
    ids = [entries[i].rel for i in keep]
    info = {"sample_rate": rate, "clip_samples": clip, "pad": cfg.pad, "crop": cfg.crop,
            "channel": "mono mix" if cfg.channel < 0 else cfg.channel, "resampler": "scipy.signal.resample_poly"}
    aux: dict[str, Any] = {}
    extra: tuple[str, ...] = ()
    if cfg.noise:
        noise = _noise(cfg, problems, rate, clip)
        info["noise"] = {"folder": str(resolve(cfg, cfg.noise)), "mode": cfg.noise_mode, "files": len(noise[1])}
        if cfg.noise_mode == "class":
            n_entries, n_x, n_ids = _noise_clips(noise, cfg.noise_label, clip, bool(any(e.split for e in entries)))
            entries, keep = [*(entries[i] for i in keep), *n_entries], list(range(len(keep) + len(n_entries)))
            x, ids, extra = np.concatenate([x, n_x]), ids + n_ids, (cfg.noise_label,)
        else:
            aux["noise"] = noise[0]
            info["noise"] |= {"snr_db": list(cfg.noise_snr_db), "prob": cfg.noise_prob, "seed": cfg.split_seed}
    import dataclasses

    s = samples_from(entries, keep, x, "audio", info, problems, files, "audio-folder", ids=ids, extra_labels=extra)
    return dataclasses.replace(s, aux=aux)


def _noise(cfg: DataConfig, problems: Problems, rate: int, clip: int) -> tuple[list[np.ndarray], list[FileEntry]]:
    """The noise recordings as int16 signals at `rate` (whole files, not cut)."""
    folder = resolve(cfg, cfg.noise)
    if not folder.is_dir():
        raise EdgetkError(f"data.noise folder not found: {folder}", fix="set data.noise to a folder of noise recordings, or remove it")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not paths:
        raise EdgetkError(f"no audio files in the noise folder {folder}", fix="add noise recordings (WAV) or remove data.noise")
    sigs, entries = [], []
    for p in paths:
        try:
            sig, _ = read_audio(p, rate, cfg.channel)
        except AudioError as e:
            problems.add(p, str(e))
            continue
        rel = p.relative_to(folder).as_posix()
        split = rel.split("/", 1)[0] if rel.split("/", 1)[0] in ("train", "test") and "/" in rel else ""
        sigs.append(to_int16(sig))
        entries.append(FileEntry(p, f"noise/{rel}", cfg.noise_label, f"noise/{p.stem}", split))
    return sigs, entries


def _noise_clips(noise: tuple[list[np.ndarray], list[FileEntry]], label: str, clip: int,
                 given: bool) -> tuple[list[FileEntry], np.ndarray, list[str]]:
    """Noise recordings cut into clips of `clip` samples (a short file: one zero-padded clip) for the noise class."""
    entries, xs, ids = [], [], []
    for sig, e in zip(*noise):
        if given and not e.split:
            raise EdgetkError(f"{e.path}: the data has train/ and test/ folders but this noise file is in neither",
                              fix="put the noise recordings under noise/train/ and noise/test/")
        count = max(1, len(sig) // clip)
        for k in range(count):
            xs.append(fit(sig[k * clip:(k + 1) * clip], clip))
            entries.append(FileEntry(e.path, e.rel, label, e.group, e.split))
            ids.append(f"{e.rel}#c{k}")
    return entries, np.stack(xs).astype(np.int16), ids


def augment(clips: np.ndarray, noise: list[np.ndarray], cfg: DataConfig) -> tuple[np.ndarray, int]:
    """Training clips with noise mixed in (share noise_prob, SNR uniform in noise_snr_db, seeded); (clips, count mixed)."""
    rng = np.random.default_rng([cfg.split_seed, 0x6E6F])
    out = clips.copy()
    n = clips.shape[1]
    mixed = 0
    for i in range(len(clips)):
        pick, j, start, snr = rng.random(), rng.integers(len(noise)), rng.random(), rng.uniform(*cfg.noise_snr_db)
        if pick >= cfg.noise_prob:
            continue
        src = noise[j].astype(np.float64)
        seg = np.resize(src, n) if len(src) <= n else src[int(start * (len(src) - n)):][:n]
        p_sig, p_noise = float(np.mean(clips[i].astype(np.float64) ** 2)), float(np.mean(seg ** 2))
        if p_sig == 0.0 or p_noise == 0.0:
            continue
        gain = math.sqrt(p_sig / (p_noise * 10.0 ** (snr / 10.0)))
        out[i] = np.clip(np.rint(clips[i] + gain * seg), -32768, 32767).astype(np.int16)
        mixed += 1
    return out, mixed

"""Dataset loaders: real files, shapes, splits, no network, feature cache, clear errors for missing data."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import load_dataset
from toolkit.data.basicmotions import parse_ts
from toolkit.data.mfcc import MfccConfig, dct_matrix, mfcc
from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

SHAPES = {  # task: (input shape, n train, n test, n labels, kind)
    "kws-digits": ((1, 49, 10), 2700, 300, 10, "classification"),
    "imu-motions": ((6, 1, 100), 40, 40, 4, "classification"),
    "ecg-anomaly": ((256,), 531, 343, 2, "anomaly"),
    "image-digits": ((1, 8, 8), 1437, 360, 10, "classification"),
}


def recipe(task: str, *overrides: str):
    return load_recipe(repo_dir("models") / f"{task}.toml", list(overrides))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    attempts: list = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise OSError(f"network access attempted to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


FLOAT = "frontend.type='none'"   # the presets' float features (bit for bit those of before the data stages)
VARIANTS = {**{t: (t, ()) for t in SHAPES}, "kws-digits/float": ("kws-digits", (FLOAT,)),
            "imu-motions/float": ("imu-motions", (FLOAT,)), "kws-digits/mfcc": ("kws-digits", ("frontend.type='mfcc'",)),
            "imu-motions/imu": ("imu-motions", ("frontend.type='imu'",))}
MFCC = "frontend.type='mfcc'"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loader_offline_shapes_and_split(variant: str, shared, no_network, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path / "cache"))  # compute from the raw files, offline
    task, overrides = VARIANTS[variant]
    d = load_dataset(recipe(task, *overrides))
    shape, n_train, n_test, n_labels, kind = SHAPES[task]
    assert no_network == []
    assert d.input_shape == shape and (len(d.x_train), len(d.x_test)) == (n_train, n_test)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    assert len(d.labels) == n_labels and d.kind == kind
    assert np.isfinite(d.x_train).all() and np.isfinite(d.x_test).all()
    assert len(d.ids_train) == n_train and len(d.raw_test) == n_test and d.split["method"] in ("folders", "fraction")
    if "input_quant" in d.frontend:   # [frontend]: x = q * scale exactly (int8 q, zero point 0), about standardised
        scale = d.frontend["input_quant"]["scale"]
        q = d.x_train / scale
        assert (q == np.round(q)).all() and q.min() >= -128 and q.max() <= 127 and d.raw_test.dtype == np.int16
        assert abs(float(d.x_train.mean())) < 0.05 and abs(float(d.x_train.std()) - 1) < 0.1
    else:
        # train-set statistics: mean 0, std 1 up to float32 rounding (measured |mean| <= 1.6e-4, |std - 1| <= 4e-5)
        assert abs(float(d.x_train.mean())) < 1e-3 and abs(float(d.x_train.std()) - 1) < 1e-3
        assert "normalize" in d.frontend
    if kind == "classification":
        assert set(np.unique(d.y_train)) == set(range(n_labels))
    else:
        assert d.y_train.sum() == 0 and 0 < d.y_test.sum() < len(d.y_test)


def test_fsdd_split_is_index_0_to_4(shared) -> None:
    d = load_dataset(recipe("kws-digits", MFCC))
    assert np.bincount(d.y_test).tolist() == [30] * 10  # 6 speakers x 5 recordings per digit
    assert all(int(i.split("_")[2].split(".")[0]) < 5 for i in d.ids_test)
    p = d.frontend["params"]
    assert (p["type"], p["sample_rate"], p["clip_samples"], p["frame_len"], p["hop"]) == ("mfcc", 8000, 8000, 320, 160)
    assert d.frontend["features"]["shape"] == [49, 10] and len(d.frontend["normalization"]["mean"]) == 10
    assert len(set(d.groups_train.tolist())) == 6 and len(d.groups_test) == len(d.y_test)  # speakers
    fe = load_dataset(recipe("kws-digits", FLOAT)).frontend
    assert (fe["n_frames"], fe["n_mfcc"], fe["sample_rate"], fe["frame_len"], fe["hop"]) == (49, 10, 8000, 320, 160)
    assert len(fe["mean"]) == len(fe["std"]) == 10


def test_feature_cache_reused(shared, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path))
    a = load_dataset(recipe("kws-digits", MFCC))
    files = sorted(tmp_path.glob("*.npz"))   # the decoded clips, then the C frontend's features of both splits
    assert [f.name.split("-")[0] for f in files] == ["frontend", "fsdd"]
    stamps = [f.stat().st_mtime_ns for f in files]
    b = load_dataset(recipe("kws-digits", MFCC))
    assert [f.stat().st_mtime_ns for f in sorted(tmp_path.glob("*.npz"))] == stamps
    np.testing.assert_array_equal(a.x_train, b.x_train)
    load_dataset(recipe("kws-digits", FLOAT))   # the float path caches its MFCCs per split beside them
    assert sorted(f.name.split("-")[0] for f in tmp_path.glob("*.npz")) == ["frontend", "fsdd", "mfcc", "mfcc"]


def test_missing_data_folder_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(EdgetkError) as e:
        load_dataset(recipe("kws-digits", f"data.root='{tmp_path / 'nope'}'"))
    assert str(tmp_path / "nope") in str(e.value)
    assert "Jakobovski/free-spoken-digit-dataset" in e.value.fix and "data.root" in e.value.fix
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgetkError, match="no FSDD recordings"):
        load_dataset(recipe("kws-digits", f"data.root='{empty}'"))
    for task in ("imu-motions", "ecg-anomaly"):
        with pytest.raises(EdgetkError, match="not found"):
            load_dataset(recipe(task, f"data.root='{empty}'"))


def test_unknown_dataset_name() -> None:
    with pytest.raises(EdgetkError, match="did you mean 'fsdd'"):
        load_dataset(recipe("kws-digits", "data.name=fsd"))


def test_parse_ts_multivariate() -> None:
    text = "# c\n@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n7,8,9:1,1,1:b\n"
    x, labels, classes = parse_ts(text)
    assert x.shape == (2, 2, 3) and labels == ["a", "b"] and classes == ["a", "b"]
    assert x[1, 0].tolist() == [7, 8, 9]


def test_mfcc_of_a_tone_matches_hand_dft() -> None:
    """Frame 0 of a 1 kHz tone against a direct DFT -> mel -> log -> DCT computed independently."""
    cfg = MfccConfig()
    t = np.arange(cfg.clip_samples) / cfg.sample_rate
    sig = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    got = mfcc(sig[None], cfg)[0]
    assert got.shape == (49, 10)
    frame = sig[: cfg.frame_len] * np.hanning(cfg.frame_len + 1)[:-1]
    k = np.arange(cfg.n_fft // 2 + 1)[:, None]
    spec = np.abs((frame[None, :] * np.exp(-2j * np.pi * k * np.arange(cfg.frame_len) / cfg.n_fft)).sum(1)) ** 2
    from toolkit.data.mfcc import mel_filterbank

    ref = dct_matrix(cfg.n_mels, cfg.n_mfcc) @ np.log(mel_filterbank(cfg) @ spec + cfg.log_floor)
    np.testing.assert_allclose(got[0], ref, rtol=1e-4, atol=1e-3)
    assert np.allclose(dct_matrix(8, 8) @ dct_matrix(8, 8).T, np.eye(8), atol=1e-9)  # orthonormal

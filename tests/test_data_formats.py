"""Your own data named in a recipe: real datasets written as user files (WAV folders at another rate and sample
format, CSV/Parquet recordings with timestamps, PNGs, an .npz, a loader hook), each trained with the built-in
recipe and seed to the built-in loader's metric within 1 point."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_OVERRIDES
from data_writers import (basicmotions, fsdd_files, write_basicmotions_csv, write_basicmotions_npz,
                          write_digits_png, write_fsdd_wavs)
from toolkit.data import load_dataset
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

GROUP = "data.group_pattern='^[0-9]_(?P<group>[a-z]+)_'"


def own(task: str, *data: str):
    """The built-in task recipe with its test schedule, its data replaced by the given [data] overrides."""
    return load_recipe(repo_dir("models") / f"{task}.toml", [*TEST_OVERRIDES[task], "data.name=''", *data])


def metric(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["value"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGETK_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))


@pytest.mark.slow
def test_fsdd_as_16khz_24bit_wav_folders_trains_like_the_preset(shared, trained_run, tmp_path, one_torch_thread) -> None:
    from toolkit.train import train

    written = write_fsdd_wavs(shared / "data" / "fsdd", tmp_path / "wav", rate=16000, subtype="PCM_24", stereo_every=7)
    r = own("kws-digits", "data.format='audio-folder'", f"data.root='{tmp_path / 'wav'}'", GROUP)
    d = load_dataset(r)
    builtin = load_dataset(load_recipe(repo_dir("models") / "kws-digits.toml"))
    assert (len(d.x_train), len(d.x_test)) == (2700, 300) and d.input_shape == builtin.input_shape
    assert d.split["method"] == "folders" and d.labels == builtin.labels
    assert set(d.groups_test.tolist()) == set(builtin.groups_test.tolist())     # speakers from the file names
    # decoded clips: 16 kHz 24-bit (some stereo) resampled back to 8 kHz int16 stay close to the 8 kHz originals
    order = np.argsort(d.ids_test)
    ref = builtin.raw_test[np.argsort(builtin.ids_test)].astype(np.float64)
    err = d.raw_test[order].astype(np.float64) - ref
    snr = 10 * np.log10((ref ** 2).sum() / (err ** 2).sum())
    assert snr > 30, f"round trip through 16 kHz 24-bit: SNR {snr:.1f} dB"
    facts = {f["file"]: f for f in load_samples_files(r)}
    assert {f["rate_hz"] for f in facts.values()} == {16000} and {f["subtype"] for f in facts.values()} == {"PCM_24"}
    assert sum(f["channels"] == 2 for f in facts.values()) == len(range(0, len(written), 7))
    got, want = metric(train(r, tmp_path / "run")), metric(trained_run("kws-digits"))
    print(f"kws-digits test top-1: WAV folders {got:.4f}, built-in {want:.4f}, decode SNR {snr:.1f} dB")
    assert abs(got - want) <= 0.01


def load_samples_files(recipe) -> tuple[dict, ...]:
    from toolkit.data import load_samples
    from toolkit.data.source import Problems

    return load_samples(recipe.data, None, Problems("raise"))[0].files


def test_basicmotions_as_csv_and_parquet_trains_like_the_preset(trained_run, tmp_path, one_torch_thread) -> None:
    from toolkit.train import train

    files = write_basicmotions_csv(tmp_path / "bm", parquet=3)
    assert sum(p.suffix == ".parquet" for p in files) == 3
    r = own("imu-motions", "data.format='csv'", f"data.root='{tmp_path / 'bm'}'", "data.timestamp_column='t_ms'")
    d = load_dataset(r)
    builtin = load_dataset(load_recipe(repo_dir("models") / "imu-motions.toml"))
    assert d.input_shape == builtin.input_shape == (6, 1, 100) and (len(d.x_train), len(d.x_test)) == (40, 40)
    assert d.frontend["source"]["sample_rate_hz"] == 10.0
    assert d.frontend["source"]["channels"] == builtin.frontend["source"]["channels"]
    # the very same recordings, bit for bit (the CSV holds float32 values exactly), in another order
    key = lambda a: np.sort(a.reshape(len(a), -1), axis=0)  # noqa: E731
    np.testing.assert_array_equal(key(d.raw_train), key(builtin.raw_train))
    np.testing.assert_array_equal(key(d.raw_test), key(builtin.raw_test))
    got, want = metric(train(r, tmp_path / "run")), metric(trained_run("imu-motions"))
    print(f"imu-motions test top-1: CSV/Parquet {got:.4f}, built-in {want:.4f}")
    assert abs(got - want) <= 0.01


def test_windows_of_long_recordings_stay_in_one_group(tmp_path) -> None:
    from data_writers import write_recording

    x, labels = basicmotions()["train"]
    for label in sorted(set(labels)):
        recs = [rec for rec, lab in zip(x, labels) if lab == label]
        for k in range(4):      # 4 recordings of 20 s per class, each two 10 s ones joined
            write_recording(tmp_path / "long" / label / f"{label}{k}.csv", np.concatenate(recs[2 * k:2 * k + 2], axis=1))
    r = own("imu-motions", "data.format='csv'", f"data.root='{tmp_path / 'long'}'", "data.rate_hz=10.0",
            "data.timestamp_column='t_ms'", "data.window=50", "data.stride=25", "data.test_fraction=0.25")
    d = load_dataset(r)
    assert d.input_shape == (6, 1, 50) and len(d.x_train) + len(d.x_test) == 16 * 7
    files = lambda ids: {i.split("#")[0] for i in ids}  # noqa: E731
    assert len(files(d.ids_test)) == 4 and not files(d.ids_train) & files(d.ids_test)   # no recording on both sides
    assert d.split["method"] == "group" and d.split["groups_on_both_sides"] == []
    assert sorted(set(d.y_test.tolist())) == [0, 1, 2, 3]                            # stratified: every class tested


def test_digits_as_png_folders_trains_like_the_preset(trained_run, tmp_path, one_torch_thread) -> None:
    from toolkit.train import train

    write_digits_png(tmp_path / "png")
    r = own("image-digits", "data.format='image-folder'", f"data.root='{tmp_path / 'png'}'")
    d = load_dataset(r)
    assert d.input_shape == (1, 8, 8) and (len(d.x_train), len(d.x_test)) == (1437, 360)
    assert abs(float(d.x_train.mean())) < 1e-3 and abs(float(d.x_train.std()) - 1) < 1e-3
    got, want = metric(train(r, tmp_path / "run")), metric(trained_run("image-digits"))
    print(f"image-digits test top-1: PNG folders {got:.4f}, built-in {want:.4f}")
    assert abs(got - want) <= 0.01


def test_image_resize_and_rgb(tmp_path) -> None:
    write_digits_png(tmp_path / "png")
    d = load_dataset(own("image-digits", "data.format='image-folder'", f"data.root='{tmp_path / 'png'}'",
                         "data.image_size=[16, 12]", "data.color='rgb'"))
    assert d.input_shape == (3, 16, 12)
    np.testing.assert_array_equal(d.raw_train[:, 0], d.raw_train[:, 2])   # grey PNG -> three equal channels


def test_npz_gives_the_preset_bit_for_bit(trained_run, tmp_path, one_torch_thread) -> None:
    from toolkit.train import train

    path = write_basicmotions_npz(tmp_path / "bm.npz")
    # an .npz holds model inputs, not raw sensor windows: no [frontend], float standardisation on both sides
    r = own("imu-motions", "data.format='npz'", f"data.root='{path}'", "frontend.type='none'")
    d = load_dataset(r)
    builtin = load_dataset(load_recipe(repo_dir("models") / "imu-motions.toml", ["frontend.type='none'"]))
    np.testing.assert_array_equal(d.x_train, builtin.x_train)
    np.testing.assert_array_equal(d.x_test, builtin.x_test)
    assert d.labels == sorted(builtin.labels) and d.split["method"] == "folders"
    got = metric(train(r, tmp_path / "run"))
    want = metric(train(load_recipe(repo_dir("models") / "imu-motions.toml",
                                    [*TEST_OVERRIDES["imu-motions"], "frontend.type='none'"]), tmp_path / "builtin"))
    assert abs(got - want) <= 0.01


HOOK = '''
from toolkit.data import load_data
from toolkit.recipe import DataConfig


def basicmotions(cfg):
    """A loader hook: any Python that returns TaskData (here: the preset, through the same stages)."""
    return load_data(DataConfig(name="basicmotions", split_seed=cfg.split_seed))
'''


def test_loader_hook_beside_the_recipe_trains_and_reloads(trained_run, tmp_path, monkeypatch, one_torch_thread) -> None:
    import sys

    from toolkit.train import load_run, train

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "my_loader_h2.py").write_text(textwrap.dedent(HOOK))
    text = (repo_dir("models") / "imu-motions.toml").read_text()
    text = text.replace('name = "basicmotions"', 'loader = "my_loader_h2:basicmotions"')
    (folder / "recipe.toml").write_text(text)
    r = load_recipe(folder / "recipe.toml", TEST_OVERRIDES["imu-motions"])
    assert r.data.base_dir == str(folder.resolve())
    run_dir = train(r, tmp_path / "run")
    assert "my_loader_h2" not in sys.path and str(folder) not in sys.path       # the path was only borrowed
    monkeypatch.delitem(sys.modules, "my_loader_h2")
    monkeypatch.chdir(tmp_path)
    run = load_run(run_dir)            # the run's recipe names the hook and the folder it lives in
    assert run.recipe.data.loader == "my_loader_h2:basicmotions" and len(run.data.x_test) == 40
    assert metric(run_dir) == metric(trained_run("imu-motions"))                # same data, recipe and seed
    assert json.loads((run_dir / "split.json").read_text())["ids_test"][0] == "BasicMotions_TEST.ts#0"


def test_loader_entry_point(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    (site / "h2_ep_dataset").mkdir(parents=True)
    (site / "h2_ep_dataset" / "__init__.py").write_text(textwrap.dedent(HOOK))
    dist = site / "h2_ep_dataset-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: h2-ep-dataset\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[edgetk.datasets]\nbasicmotions-ep = h2_ep_dataset:basicmotions\n")
    monkeypatch.syspath_prepend(str(site))
    d = load_dataset(own("imu-motions", "data.loader='basicmotions-ep'"))
    assert len(d.x_train) == 40 and d.ids_test is not None and d.split["method"] == "folders"


def test_audio_sample_formats_channels_pad_and_crop(shared, tmp_path) -> None:
    import soundfile as sf

    from toolkit.data.audio import fit, resample

    clip = sf.read(str(fsdd_files(shared / "data" / "fsdd", ("george",), ("3",))[0]), dtype="float64")[0]
    other = sf.read(str(fsdd_files(shared / "data" / "fsdd", ("jackson",), ("7",))[0]), dtype="float64")[0]
    n = min(len(clip), len(other))
    stereo = np.stack([clip[:n], other[:n]], axis=1)
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"):
        (tmp_path / "a" / subtype).mkdir(parents=True)
        sf.write(str(tmp_path / "a" / subtype / "x.wav"), resample(stereo, 8000, 11025), 11025, subtype=subtype)
    for channel, src in ((0, clip[:n]), (1, other[:n]), (-1, (clip[:n] + other[:n]) / 2)):
        d = load_dataset(own("kws-digits", "data.format='audio-folder'", f"data.root='{tmp_path / 'a'}'",
                             "data.split='fraction'", "data.test_fraction=0.4", f"data.channel={channel}",
                             "frontend.clip_samples=4000", "data.pad='center'"))
        raw = np.concatenate([d.raw_train, d.raw_test])[np.argsort(np.concatenate([d.ids_train, d.ids_test]))]
        got = dict(zip(sorted(("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT")), raw.astype(np.float64)))
        assert snr_db(fit(src, 4000, "center", "start") * 32768, got["FLOAT"]) > 30   # 8 -> 11.025 -> 8 kHz round trip
        for name, floor in (("PCM_16", 60), ("PCM_24", 80), ("PCM_32", 80), ("PCM_U8", 15)):   # vs the float file (8-bit: 20.7 dB measured)
            assert snr_db(got["FLOAT"], got[name]) > floor, (channel, name, snr_db(got["FLOAT"], got[name]))
    assert list(fit(np.arange(6), 4, crop="center")) == [1, 2, 3, 4]
    assert list(fit(np.arange(1, 3), 6, pad="center")) == [0, 0, 1, 2, 0, 0]


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10((ref ** 2).sum() / max(((got - ref) ** 2).sum(), 1e-12)))


def test_noise_folder_as_augmentation_and_as_a_class(shared, tmp_path) -> None:
    import soundfile as sf

    write_fsdd_wavs(shared / "data" / "fsdd", tmp_path / "wav", rate=8000, subtype="PCM_16", stereo_every=0,
                    split_folders=False, speakers=("george", "jackson", "lucas"), digits=("1", "2"))
    rng = np.random.default_rng(0)
    (tmp_path / "noise").mkdir()
    for i, seconds in enumerate((2.5, 0.4)):   # one long recording (cut into 2 clips), one short (padded)
        sf.write(str(tmp_path / "noise" / f"hum{i}.wav"), 0.1 * rng.standard_normal(int(seconds * 8000)), 8000, subtype="PCM_16")
    base = ["data.format='audio-folder'", f"data.root='{tmp_path / 'wav'}'", GROUP, f"data.noise='{tmp_path / 'noise'}'"]
    plain = load_dataset(own("kws-digits", *base[:3]))
    aug = load_dataset(own("kws-digits", *base, "data.noise_snr_db=[10.0, 15.0]", "data.noise_prob=0.5"))
    np.testing.assert_array_equal(aug.raw_test, plain.raw_test)                 # only training clips get noise
    changed = (aug.raw_train != plain.raw_train).any(axis=1)
    assert aug.split["noise_mixed"] == int(changed.sum()) and 0.3 < changed.mean() < 0.7
    clean, noisy = plain.raw_train[changed].astype(np.float64), aug.raw_train[changed].astype(np.float64)
    snr = 10 * np.log10((clean ** 2).sum(axis=1) / ((noisy - clean) ** 2).sum(axis=1))
    assert snr.min() > 9.5 and snr.max() < 15.5, (snr.min(), snr.max())
    again = load_dataset(own("kws-digits", *base, "data.noise_snr_db=[10.0, 15.0]", "data.noise_prob=0.5"))
    np.testing.assert_array_equal(again.raw_train, aug.raw_train)               # seeded
    cls = load_dataset(own("kws-digits", *base, "data.noise_mode='class'", "data.split='fraction'"))
    assert cls.labels == ["1", "2", "_silence_"]
    ids = sorted(i for i in [*cls.ids_train, *cls.ids_test] if i.startswith("noise/"))
    assert ids == ["noise/hum0.wav#c0", "noise/hum0.wav#c1", "noise/hum1.wav#c0"]

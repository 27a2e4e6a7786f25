"""Fixed-point C frontends (toolkit/frontends, toolkit/native/frontends): the host C is what the API returns,
streaming equals whole windows, sanitizer-clean on hostile signals, close to the float reference, the
same bits on an emulated Cortex-M4 (DSP instructions) as on the host (portable C), and the exported
bundle's input quantization is the frontend's."""
from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool
from toolkit.errors import EdgetkError
from toolkit.frontends import Frontend, FrontendConfig, apply_frontend, frontend_from_info
from toolkit.frontends.frontend import KERNEL_DIR
from toolkit.frontends.norm import Stage2, quantize_like_c

# Measured on the 300 FSDD test clips (index 0-4 of every digit/speaker), this implementation:
# mfcc SNR 82.93 dB, max |err| 0.0050; logmel SNR 94.77 dB, max |err| 0.0048 (ln units) -- the output
# rounding (Q7 / Q10) dominates. Hostile signals (full-scale squares, DC, clipping): max |err| 0.026 / 0.012.
SNR_FLOOR_DB = {"mfcc": 80.0, "logmel": 90.0}
MAX_ERR = {"mfcc": 0.01, "logmel": 0.01}
MAX_ERR_HOSTILE = {"mfcc": 0.05, "logmel": 0.05}


def fsdd_clips(shared: Path, test: bool, n: int | None = None, samples: int = 8000) -> np.ndarray:
    """FSDD recordings as int16 [N, samples] (zero-padded/cropped at the end), test (index < 5) or train split."""
    folder = shared / "data" / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"FSDD not found under {folder}; fix: set EDGETK_SHARED")
    wavs = [p for p in sorted(folder.glob("*_*_*.wav")) if (int(p.stem.split("_")[2]) < 5) == test][:n]
    out = np.zeros((len(wavs), samples), np.int16)
    for i, p in enumerate(wavs):
        with wave.open(str(p), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        out[i, :min(samples, len(pcm))] = pcm[:samples]
    return out


def hostile(samples: int = 8000) -> np.ndarray:
    """Silence, full-scale square waves, a clipped sine, full-range noise, DC at -32768, an impulse, +/-1 LSB."""
    t = np.arange(samples)
    rng = np.random.default_rng(12)
    sigs = [np.zeros(samples), np.where((t // 20) % 2, 32767, -32768), np.where((t // 3) % 2, 32767, -32768),
            np.clip(3 * 32768 * np.sin(2 * np.pi * 440 * t / 8000), -32768, 32767),
            rng.integers(-32768, 32768, samples), np.full(samples, -32768), np.eye(1, samples, samples // 2)[0] * 32767,
            np.where(t % 2, 1, -1)]
    return np.stack(sigs).astype(np.int16)


@pytest.fixture(scope="module")
def kws(shared: Path):
    """apply_frontend(mfcc) on 200 FSDD training clips and 20 test clips."""
    return apply_frontend(FrontendConfig(type="mfcc"), fsdd_clips(shared, False, 200), fsdd_clips(shared, True, 20))


def test_api_returns_the_host_c_and_training_sees_exact_int8(kws) -> None:
    fe = frontend_from_info(json.loads(json.dumps(kws.info)))  # what a run or a bundle stores
    assert fe.cache_key() == kws.info["cache_key"]
    assert np.array_equal(fe.features(kws.raw_test_i16), kws.q_test)
    assert np.array_equal(fe.features(kws.raw_train_i16), kws.q_train)
    # stage 2 is the C integer rule (its numpy twin gives the same int8 from the C's stage-1 int16)
    assert np.array_equal(quantize_like_c(fe.stage1(kws.raw_test_i16), fe.stage2), kws.q_test)
    scale = kws.info["input_quant"]["scale"]
    assert scale == 2.0 ** -5 and kws.info["input_quant"]["zero_point"] == 0
    assert kws.x_train.shape == (200, 1, 49, 10) and kws.x_train.dtype == np.float32
    assert np.array_equal(np.round(kws.x_train[:, 0] / scale).astype(np.int8), kws.q_train)  # quantize(x) == q
    # normalised: per coefficient mean ~0, std ~1 on the train split (in int8 units: 32 per std)
    q = kws.q_train.astype(np.float64)
    assert np.all(np.abs(q.mean(axis=(0, 1))) < 2) and np.all(np.abs(q.std(axis=(0, 1)) / 32 - 1) < 0.1)
    assert kws.info["implementation"] == "edgetk C fixed-point v1" and kws.info["torch_layout"] == "[1, T, C]"


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_streaming_rows_equal_the_whole_window(shared: Path, kind: str) -> None:
    raw = np.concatenate([fsdd_clips(shared, True, 6), hostile()])
    res = apply_frontend(FrontendConfig(type=kind), fsdd_clips(shared, False, 40), raw)
    assert res.info["streaming"] == {"hop": 160, "frame_len": 320, "row": 10 if kind == "mfcc" else 40}
    assert np.array_equal(res.frontend.stream(raw), res.q_test)


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_fixed_point_is_close_to_the_float_reference_on_fsdd(shared: Path, kind: str) -> None:
    from toolkit.frontends.api import reference_distance

    test = fsdd_clips(shared, True)
    fe = Frontend(FrontendConfig(type=kind), (8000,))
    d = reference_distance(fe, test, test, fe.stage1(test))
    assert d["windows"] == 300
    assert d["snr_db"] >= SNR_FLOOR_DB[kind], d
    assert d["max_abs_err"] <= MAX_ERR[kind], d
    h = hostile()  # line spectra >100 dB deep: the 48-bit power keeps the weak bands
    assert reference_distance(fe, h, h, fe.stage1(h))["max_abs_err"] <= MAX_ERR_HOSTILE[kind]


def _sanitized_run(fe: Frontend, raw: np.ndarray, tmp: Path) -> np.ndarray:
    from toolkit.native.build import build_executable

    lib = tmp / "lib"
    fe.emit_c(lib)
    exe = build_executable([lib / "edgetk_frontend.c", *sorted((lib / "kernels").glob("*.c")), KERNEL_DIR / "etf_host.c",
                            KERNEL_DIR / "etf_check_main.c"], [lib, lib / "kernels"], name="frontend_check", sanitize=True)
    proc = subprocess.run([str(exe)], input=np.ascontiguousarray(raw).tobytes(), capture_output=True, timeout=300)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode(errors="replace")[-3000:]
    return np.frombuffer(proc.stdout, np.uint8)


def test_sanitizers_report_nothing_on_fsdd_and_hostile_signals(shared: Path, tmp_path: Path) -> None:
    require_tool("gcc")
    raw = np.concatenate([fsdd_clips(shared, True, 4), hostile()])
    fe = apply_frontend(FrontendConfig(type="mfcc"), fsdd_clips(shared, False, 40), raw).frontend
    out = _sanitized_run(fe, raw, tmp_path).reshape(len(raw), -1)
    f = 490
    assert out.shape[1] == 2 * f + f + f  # stage 1 (int16), features, stream
    assert np.array_equal(out[:, :2 * f].copy().view("<i2").reshape(-1, 49, 10), fe.stage1(raw))
    assert np.array_equal(out[:, 2 * f:3 * f].view(np.int8).reshape(-1, 49, 10), fe.features(raw))
    assert np.array_equal(out[:, 3 * f:].view(np.int8).reshape(-1, 49, 10), fe.features(raw))


def test_sanitizers_report_nothing_for_imu(tmp_path: Path) -> None:
    require_tool("gcc")
    rng = np.random.default_rng(3)
    raw = rng.integers(-32768, 32768, (6, 100, 6)).astype(np.int16)
    raw[0] = 32767
    raw[1] = -32768
    fe = Frontend(FrontendConfig(type="imu"), (100, 6), Stage2((-32768, 32767, 0, 5, -5, 0), (16383, 16383, 1, 8192, 3, 0),
                                                               (1, 1, 30, 13, 2, 1)))
    out = _sanitized_run(fe, raw, tmp_path).reshape(len(raw), -1)
    assert np.array_equal(out[:, 1200:].view(np.int8).reshape(-1, 100, 6), fe.features(raw))
    assert np.array_equal(fe.features(raw), quantize_like_c(raw, fe.stage2))  # saturating extremes included


@pytest.mark.parametrize("kind,opt,cpu", [("mfcc", "-O2", "cortex-m4"), ("mfcc", "-O0", "cortex-m4f"),
                                          ("mfcc", "-O3", "cortex-m4"), ("mfcc", "-Os", "cortex-m4f"),
                                          ("logmel", "-O2", "cortex-m7"), ("imu", "-O2", "cortex-m4")])
def test_cross_compiles_for_cortex_m_without_libc(tmp_path: Path, kind: str, opt: str, cpu: str) -> None:
    from toolkit.native.build import cross_link_check

    require_tool("arm-none-eabi-gcc")
    shape = (100, 6) if kind == "imu" else (8000,)
    c = {"mfcc": 10, "logmel": 40, "imu": 6}[kind]
    fe = Frontend(FrontendConfig(type=kind), shape, Stage2((0,) * c, (8192,) * c, (13,) * c))
    fe.emit_c(tmp_path / "lib")
    lib = tmp_path / "lib"
    keep = ("edgetk_features_stage1", "edgetk_stream_push", "edgetk_stream_init") if kind != "imu" else (
        "edgetk_features_stage1",)
    elf = cross_link_check(sorted(lib.rglob("*.c")), [lib, lib / "kernels"], tmp_path / "elf", entry="edgetk_features",
                           cpu=cpu, opt=opt, keep=keep)
    nm = subprocess.run([require_tool("arm-none-eabi-nm"), "-u", str(elf)], capture_output=True, text=True, check=True)
    assert nm.stdout.strip() == ""  # nothing from libc or libgcc


def test_device_features_equal_host_features_on_qemu_cortex_m4(shared: Path, kws, tmp_path: Path) -> None:
    """QEMU runs the DSP-instruction path (SMMUL, SIMD, Thumb-2 loops), the host the portable C: same bits."""
    from toolkit.frontends.device import run_on_m4

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    raw = np.concatenate([kws.raw_test_i16[:3], hostile()[[0, 1, 3, 4, 5]]])
    m = run_on_m4(kws.frontend, raw, tmp_path)
    assert np.array_equal(m.stage1, kws.frontend.stage1(raw))
    assert np.array_equal(m.q, kws.frontend.features(raw))
    assert np.array_equal(m.stream, m.q)
    assert all(500_000 < n < 1_500_000 for n in m.insn_window), m.insn_window  # goal: <= 1.5 M per 49x10 window
    assert all(len(h) == 50 and h[0] < h[1] for h in m.insn_hops)  # the first hop only buffers


def test_logmel_and_imu_on_qemu_cortex_m4(shared: Path, tmp_path: Path) -> None:
    from toolkit.frontends.device import run_on_m4

    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    raw = np.concatenate([fsdd_clips(shared, True, 1), hostile()[[2, 6, 7]]])
    res = apply_frontend(FrontendConfig(type="logmel"), fsdd_clips(shared, False, 30), raw)
    m = run_on_m4(res.frontend, raw, tmp_path / "logmel")
    assert np.array_equal(m.stage1, res.frontend.stage1(raw)) and np.array_equal(m.q, res.q_test)
    rng = np.random.default_rng(5)
    imu_raw = rng.normal(0, 3, (10, 100, 6)).astype(np.float32)
    r = apply_frontend(FrontendConfig(type="imu"), imu_raw[:8], imu_raw[8:])
    m = run_on_m4(r.frontend, r.raw_test_i16, tmp_path / "imu")
    assert np.array_equal(m.q, r.q_test) and m.stream is None


def test_imu_round_trip_on_basicmotions() -> None:
    from toolkit.data.basicmotions import parse_ts, sktime_data_dir

    root = sktime_data_dir("BasicMotions")
    x_tr = parse_ts((root / "BasicMotions_TRAIN.ts").read_text(encoding="utf-8"))[0].transpose(0, 2, 1)  # [N, T, C]
    x_te = parse_ts((root / "BasicMotions_TEST.ts").read_text(encoding="utf-8"))[0].transpose(0, 2, 1)
    res = apply_frontend(FrontendConfig(type="imu"), x_tr, x_te)
    cpu = np.array(res.info["counts_per_unit"])
    assert cpu.shape == (6,) and np.allclose(np.abs(x_tr).max(axis=(0, 1)) * cpu, 16384)  # half of int16 on train
    assert res.raw_test_i16.dtype == np.int16 and res.raw_test_i16.shape == (40, 100, 6)
    assert np.abs(res.raw_test_i16 / cpu - x_te).max() <= 0.5 / cpu.min() + 1e-6  # counts = round(value * cpu)
    assert res.x_train.shape == (40, 6, 1, 100)  # torch [C, 1, T]; its NHWC [1, T, C] is q's memory order
    assert np.array_equal(res.x_test[:, :, 0, :].transpose(0, 2, 1) / 2.0 ** -5, res.q_test.astype(np.float32))
    fe = frontend_from_info(res.info)
    assert np.array_equal(fe.features(res.raw_test_i16), res.q_test)
    assert res.info["float_reference_distance"]["snr_db"] > 60  # counts quantization only
    # given counts_per_unit are used as given; int16 input is taken as counts
    given = apply_frontend(FrontendConfig(type="imu", counts_per_unit=tuple(cpu / 2)), x_tr, x_te)
    assert np.array_equal(given.raw_test_i16, np.clip(np.round(x_te * (cpu / 2)), -32768, 32767).astype(np.int16))
    as_counts = apply_frontend(FrontendConfig(type="imu"), res.raw_train_i16, res.raw_test_i16)
    assert np.array_equal(as_counts.q_test, res.q_test)


def test_log2_kernel_against_numpy() -> None:
    import ctypes

    fe = Frontend(FrontendConfig(type="mfcc"), (8000,), Stage2((0,) * 10, (1,) * 10, (1,) * 10))
    fn = fe._host().lib.etf_log2_q16
    fn.argtypes, fn.restype = [ctypes.c_uint64], ctypes.c_int32
    ys = [1, 2, 3, 1000, 65535, 65536, 2 ** 31 - 1, 2 ** 32 + 12345, 2 ** 47 + 3, 2 ** 62 + 2 ** 40, 2 ** 64 - 1]
    got = np.array([fn(y) for y in ys]) / 65536.0
    assert np.max(np.abs(got - np.log2(np.array(ys, dtype=np.float64)))) < 3e-5


def test_emitted_header_is_the_firmware_contract(tmp_path: Path, kws) -> None:
    files = kws.frontend.emit_c(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert names == ["edgetk_frontend.c", "edgetk_frontend.h", "kernels/etf_fixed.h", "kernels/etf_mfcc.c",
                     "kernels/etf_mfcc.h", "kernels/etf_quant.c", "kernels/etf_quant.h"]
    h = (tmp_path / "edgetk_frontend.h").read_text()
    for line in ("#define EDGETK_RAW_SIZE 8000", "#define EDGETK_RAW_SHAPE {8000}", "#define EDGETK_FEATURES_SIZE 490",
                 "#define EDGETK_FEATURES_SHAPE {49, 10}", "#define EDGETK_FEATURES_SCALE 0.03125f",
                 "int edgetk_features(const int16_t *raw, int8_t *features);", "#define EDGETK_HOP 160"):
        assert line in h
    c = (tmp_path / "edgetk_frontend.c").read_text()
    assert "#include <" not in c.replace("#include <stdint.h>", "") and "malloc" not in c
    assert kws.frontend.emit_c(tmp_path / "again") and (tmp_path / "again" / "edgetk_frontend.c").read_text() == c
    other = Frontend(FrontendConfig(type="mfcc", n_mels=32), (8000,), kws.frontend.stage2)
    assert other.cache_key() != kws.frontend.cache_key()


@pytest.mark.parametrize("field,value,word", [("type", "mfc", "type"), ("n_fft", 500, "n_fft"), ("frame_len", 321, "frame_len"),
                                              ("frame_len", 64, "frame_len"), ("n_mfcc", 50, "n_mfcc"),
                                              ("fmax", 9000.0, "fmin/fmax"), ("input_scale_log2", 3, "input_scale_log2")])
def test_bad_parameters_are_one_clear_error(field: str, value: object, word: str) -> None:
    cfg = FrontendConfig(**{"type": "mfcc", field: value})
    with pytest.raises(EdgetkError, match=f"frontend.{word}") as e:
        apply_frontend(cfg, np.zeros((2, 8000), np.int16), np.zeros((1, 8000), np.int16))
    assert e.value.fix


def test_bad_raw_input_is_one_clear_error() -> None:
    with pytest.raises(EdgetkError, match=r"\[N, 8000\]"):
        apply_frontend(FrontendConfig(type="mfcc"), np.zeros((2, 7999), np.int16), np.zeros((1, 8000), np.int16))
    bad = np.zeros((3, 10, 6), np.float32)
    bad[2, 4, 1] = np.nan
    with pytest.raises(EdgetkError, match="train window 2 holds a non-finite value"):
        apply_frontend(FrontendConfig(type="imu"), bad, np.zeros((1, 10, 6), np.float32))
    with pytest.raises(EdgetkError, match="counts_per_unit has 2 values for 6 channels"):
        apply_frontend(FrontendConfig(type="imu", counts_per_unit=(1.0, 2.0)), np.zeros((2, 10, 6), np.float32),
                       np.zeros((1, 10, 6), np.float32))


def test_missing_compiler_names_the_apt_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.native.build import build_shared

    src = tmp_path / "x.c"
    src.write_text("int x(void);\nint x(void) { return 1; }\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc on PATH
    with pytest.raises(EdgetkError, match="gcc not found") as e:
        build_shared([src])
    assert e.value.fix == "apt-get install gcc"


def test_recipe_frontend_section() -> None:
    from toolkit.recipe import recipe_from_dict

    r = recipe_from_dict({"task": "t", "data": {"name": "fsdd"}, "model": {"arch": "dscnn"},
                          "frontend": {"type": "logmel", "n_mels": 32}})
    assert r.frontend == FrontendConfig(type="logmel", n_mels=32)
    with pytest.raises(EdgetkError, match="did you mean 'logmel'"):
        recipe_from_dict({"task": "t", "data": {"name": "fsdd"}, "model": {"arch": "dscnn"}, "frontend": {"type": "logmell"}})


@pytest.mark.slow
def test_export_pins_the_model_input_to_the_frontend(tmp_path: Path, one_torch_thread) -> None:
    """imu-motions trained through the C frontend: the bundle's input scale/zp are the frontend's, and its
    test_x_int8 are the frontend's int8 features of the raw test windows."""
    from toolkit.export import export_run
    from toolkit.paths import repo_dir
    from toolkit.recipe import load_recipe
    from toolkit.train import load_run, train

    recipe = load_recipe(repo_dir("models") / "imu-motions.toml", ["train.epochs=15", 'frontend.type="imu"'])
    run = train(recipe, tmp_path / "run")
    bundle = export_run(run, tmp_path / "bundle")
    man = json.loads((bundle / "manifest.json").read_text())
    data = load_run(run).data
    iq = data.frontend["input_quant"]
    assert (man["input"]["scale"], man["input"]["zero_point"]) == (iq["scale"], iq["zero_point"]) == (2.0 ** -5, 0)
    q = frontend_from_info(data.frontend).features(data.raw_test)
    assert np.array_equal(np.load(bundle / "test_x_int8.npy", allow_pickle=False).reshape(q.shape), q)
    assert json.loads((run / "metrics.json").read_text())["test_top1"] >= 0.95

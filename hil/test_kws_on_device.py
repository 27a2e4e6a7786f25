"""Example HIL suite: the MLPerf Tiny KWS model on the device agrees with TFLite-Micro, within budgets.

`make test` runs it on qemu-m4 and host-sim (the plugin's default --hil-targets); on a bench with a
board: pytest hil --hil-target nucleo-l4r5zi [--hil-port /dev/ttyACM0] [--hil-bundle BUNDLE].
The fixtures live in this module (not a hil/conftest.py, whose module name would shadow tests/conftest.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from toolkit.pytest_plugin import skip_without_data
from toolkit.runtimes import run_tflm

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
KWS_INPUT = "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy"


@pytest.fixture(scope="session")
def external() -> Path:
    """shared/external (this suite also runs outside tests/, so it has its own fixture)."""
    from toolkit.paths import shared_dir

    d = shared_dir() / "external"
    if not (d / KWS).is_file():
        skip_without_data(f"MLPerf Tiny models not found under {d}; fix: set EDGETK_SHARED")
    return d


@pytest.fixture(scope="session")
def hil_bundle(request: pytest.FixtureRequest, external: Path, tmp_path_factory: pytest.TempPathFactory):
    """--hil-bundle when given, else a bundle of the MLPerf Tiny KWS model with its reference input."""
    from toolkit.hil.bundle import load_bundle

    if request.config.getoption("--hil-bundle"):
        return load_bundle(request.config.getoption("--hil-bundle"))
    d = tmp_path_factory.mktemp("kws-bundle")
    shutil.copyfile(external / KWS, d / "model_int8.tflite")
    ref = np.load(external / KWS_INPUT).astype(np.int8).reshape(1, 49, 10, 1)
    noise = np.random.default_rng(0).integers(-128, 128, size=(3, 49, 10, 1), dtype=np.int8)
    np.save(d / "test_x_int8.npy", np.concatenate([ref, noise]))
    return load_bundle(d)


def test_device_runs_the_bundle_model(dut, hil_bundle):
    assert dut.info.sha256 == hil_bundle.sha256
    assert dut.info.input_size == hil_bundle.x[0].size


def test_outputs_match_tflite_micro_bit_exact(dut, hil_bundle):
    ref = run_tflm(hil_bundle.tflite, hil_bundle.x).reshape(len(hil_bundle.x), -1)
    got = np.stack([dut.infer(x) for x in hil_bundle.x])
    np.testing.assert_array_equal(got, ref)


def test_reference_input_is_classified_as_upstream(dut, hil_bundle):
    # kws_input.npy of the MLPerf Tiny reference firmware; TFLite-Micro decides the expected class
    want = int(run_tflm(hil_bundle.tflite, hil_bundle.x[:1]).reshape(-1).argmax())
    assert int(dut.infer(hil_bundle.x[0]).argmax()) == want


# QEMU figures are virtual time (deterministic); host-sim latency is this machine's wall clock: no budget
@pytest.mark.hil(max_latency_ms={"qemu-m4": 60, "qemu-m7": 60, "nucleo-l4r5zi": 250}, max_ram_kb=64)
def test_kws_fits_its_budget(dut, hil_bundle):
    dut.infer(hil_bundle.x[0])

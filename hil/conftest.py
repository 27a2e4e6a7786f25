"""The example HIL suite's model: the MLPerf Tiny KWS reference model and its reference input.

`make test` runs this suite on qemu-m4 and host-sim (the plugin's default --hil-targets); on a
bench with a board: pytest hil --hil-target nucleo-l4r5zi [--hil-port /dev/ttyACM0].
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

KWS = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"
KWS_INPUT = "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy"


@pytest.fixture(scope="session")
def external() -> Path:
    """shared/external (this suite also runs outside tests/, so it has its own fixture)."""
    from toolkit.paths import shared_dir

    d = shared_dir() / "external"
    if not (d / KWS).is_file():
        pytest.skip(f"MLPerf Tiny models not found under {d}; fix: set EDGETK_SHARED")
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

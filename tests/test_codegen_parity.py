"""Generated C on the host is byte-identical with TFLite-Micro (reference kernels) on >= 100 inputs."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import KERNEL_SETS
from toolkit.codegen import parity as par
from toolkit.paths import external_model
from toolkit.tflite import read_model

N_INPUTS = 100
ZOO_TASKS = ("kws-digits", "imu-motions", "ecg-anomaly", "image-digits")


@pytest.fixture(scope="module")
def cases(external, tmp_path_factory):
    """Per model: path, inputs (shared reference inputs + random int8), TFLM outputs, work folder."""
    cache = {}

    def get(name: str) -> dict:
        if name not in cache:
            path = external_model(par.EXTERNAL_MODELS[name])
            x = par.inputs_for(name, read_model(path), N_INPUTS)
            cache[name] = dict(path=path, x=x, ref=par.run_tflm_flat(path, x),
                               work=tmp_path_factory.mktemp(f"parity-{name}"))
        return cache[name]
    return get


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
@pytest.mark.parametrize("name", sorted(par.EXTERNAL_MODELS))
def test_codegen_parity_external_models(cases, name, kernels):
    require_tool("gcc")
    c = cases(name)
    res = par.check(c["path"], c["x"], c["work"], kernels=kernels, ref=c["ref"])
    assert len(c["x"]) >= 100
    assert res.identical == len(c["x"]), f"{name}: {len(c['x']) - res.identical} outputs differ, max {res.max_diff} LSB"
    np.testing.assert_array_equal(res.ours, res.ref)


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
@pytest.mark.parametrize("name", sorted(par.EXTERNAL_MODELS))
def test_codegen_sanitizers_clean(cases, name, kernels):
    require_tool("gcc")
    c = cases(name)
    res = par.check(c["path"], c["x"], c["work"], kernels=kernels, sanitize=True, ref=c["ref"])  # no report
    np.testing.assert_array_equal(res.ours, res.ref)


def test_codegen_shared_reference_inputs_are_used(external):
    kws = par.inputs_for("kws", read_model(external_model(par.EXTERNAL_MODELS["kws"])), 100)
    ad = par.inputs_for("ad", read_model(external_model(par.EXTERNAL_MODELS["ad"])), 100)
    assert kws.shape == (100, 49, 10, 1) and ad.shape == (100, 640)
    np.testing.assert_array_equal(kws[0], par.shared_inputs("kws", read_model(external_model(par.EXTERNAL_MODELS["kws"])))[0])
    assert len(par.shared_inputs("ad", read_model(external_model(par.EXTERNAL_MODELS["ad"])))) == 40


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
@pytest.mark.parametrize("task", ZOO_TASKS)
def test_codegen_parity_model_zoo(exported_bundle, task, kernels, tmp_path):
    require_tool("gcc")
    bundle = exported_bundle(task)
    tfl = bundle / "model_int8.tflite"
    graph = read_model(tfl)
    x = par.inputs_for(task, graph, N_INPUTS)
    # the task's real test set, quantized by the exporter, and its golden outputs (ARCHITECTURE: BUNDLE)
    test_x = np.load(bundle / "test_x_int8.npy", allow_pickle=False)
    real = test_x.reshape((-1,) + x.shape[1:])[:N_INPUTS // 2]
    assert real.dtype == np.int8 and len(real) == min(N_INPUTS // 2, len(test_x))
    x = np.concatenate([real, x[len(real):]])
    res = par.check(tfl, x, tmp_path, kernels=kernels)
    assert res.identical == len(x), f"{task} ({kernels}): max {res.max_diff} LSB"
    golden = np.load(bundle / "test_out_int8.npy", allow_pickle=False).reshape(len(test_x), -1)
    np.testing.assert_array_equal(res.ours[:len(real)], golden[:len(real)])  # the bundle's own golden answers
    san = par.check(tfl, x, tmp_path, kernels=kernels, sanitize=True, ref=res.ref)
    np.testing.assert_array_equal(san.ours, res.ref)

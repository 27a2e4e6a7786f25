"""Example HIL suite: the KWS model on the device agrees with TFLite-Micro, within budgets."""
from __future__ import annotations

import numpy as np
import pytest

from toolkit.runtimes import run_tflm


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


@pytest.mark.hil(max_latency_ms=60, max_ram_kb=64)
def test_kws_fits_its_budget(dut, hil_bundle):
    dut.infer(hil_bundle.x[0])

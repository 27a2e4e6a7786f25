"""The QDQ → TFLite writer on ops the model zoo does not use (explicit PAD, stride-2 PAD, AVERAGE_POOL,
CONCATENATION, RELU6, SOFTMAX, flatten with H*W > 1 before a Linear), on a small CNN trained on
scikit-learn's real 8×8 digits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolkit.errors import EdgetkError


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 8.0 - 1.0).astype(np.float32)  # [N, 1, 8, 8], real signed inputs
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


def _ops_net():
    import torch
    from torch import nn

    class OpsNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)     # [N, 8, 4, 4]; torch pads ≠ TFLite SAME
            self.c2 = nn.Conv2d(8, 8, 3)                          # after an explicit pad: [N, 8, 4, 4]
            self.avg = nn.AvgPool2d(2)                            # [N, 8, 2, 2]
            self.max = nn.MaxPool2d(2)                            # [N, 8, 2, 2]
            self.fc = nn.Linear(16 * 2 * 2, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.relu6(self.c1(x))
            y = torch.relu(self.c2(nn.functional.pad(y, (2, 0, 1, 1))))  # asymmetric: never SAME
            y = torch.cat([self.avg(y), self.max(y)], 1)          # [N, 16, 2, 2]
            return torch.softmax(self.fc(torch.flatten(y, 1)), 1)  # flatten C,H,W with H*W = 4

    return OpsNet()


@pytest.fixture(scope="module")
def trained_ops_net(tmp_path_factory: pytest.TempPathFactory):
    import torch

    from toolkit.export.onnx_fp32 import export_fp32

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: extra threads only spin on a shared 2-core machine
    xtr, ytr, xte, yte = _digits()
    model = _ops_net()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(8):
        for i in range(0, len(xtr), 100):
            p = model(torch.from_numpy(xtr[i:i + 100]))
            loss = torch.nn.functional.nll_loss(torch.log(p + 1e-9), torch.from_numpy(ytr[i:i + 100]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    torch.set_num_threads(threads)
    path = export_fp32(model, xte[0], tmp_path_factory.mktemp("opsnet") / "fp32.onnx")
    return model, path, (xtr, ytr, xte, yte)


@pytest.mark.parametrize("quantizer", ["nncf", "ort"])
def test_ops_lower_and_agree(trained_ops_net, tmp_path: Path, quantizer: str) -> None:
    import onnx

    from toolkit.export.fidelity import QParams, to_nhwc
    from toolkit.export.lower import lower_qdq
    from toolkit.export.onnx_fp32 import torch_outputs
    from toolkit.export.per_op import per_op_diff
    from toolkit.quant import quantize_onnx
    from toolkit.runtimes import run_litert, run_onnx, run_tflm

    model, fp32, (xtr, _, xte, yte) = trained_ops_net
    q = quantize_onnx(fp32, xtr[:200], quantizer)
    onnx.save(q, tmp_path / "int8.onnx")
    low = lower_qdq(q)
    (tmp_path / "m.tflite").write_bytes(low.tflite)
    assert {"PAD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION", "SOFTMAX", "CONV_2D"} <= set(low.ops)
    assert low.ops["PAD"] == 2 and "TRANSPOSE" not in low.ops
    assert (low.output.scale, low.output.zero_point) == (1 / 256, -128)  # TFLite's int8 softmax output

    inq, outq = QParams(low.input.scale, low.input.zero_point), QParams(low.output.scale, low.output.zero_point)
    xq = to_nhwc(inq.quantize(xte))
    lite = run_litert(tmp_path / "m.tflite", xq)
    np.testing.assert_array_equal(lite, run_tflm(tmp_path / "m.tflite", xq))

    per_op = per_op_diff(q, tmp_path / "m.tflite", low.tensors, xq[:40], inq.dequantize(inq.quantize(xte[:40])))
    assert per_op["ops_compared"] >= 5 and per_op["max_lsb_diff"] <= 1, per_op
    onnx_q = outq.quantize(run_onnx(tmp_path / "int8.onnx", inq.dequantize(inq.quantize(xte))))
    assert (onnx_q.argmax(1) == lite.argmax(1)).mean() >= 0.99  # softmax magnifies 1-LSB logit drift

    fp32_top1 = (torch_outputs(model, xte).argmax(1) == yte).mean()
    tfl_top1 = (lite.argmax(1) == yte).mean()
    assert fp32_top1 > 0.85, "the small net did not train"
    assert tfl_top1 >= fp32_top1 - 0.03, (fp32_top1, tfl_top1)  # a wrong FC permutation collapses this


def test_writer_round_trips_through_litert(tmp_path: Path) -> None:
    from toolkit.export.tflite_writer import TFLiteBuilder
    from toolkit.runtimes import run_litert, run_tflm

    b = TFLiteBuilder()
    x = b.tensor("x", (1, 2, 2, 3), np.int8, scale=0.5, zero_point=-3)
    y = b.tensor("y", (1, 4, 2, 3), np.int8, scale=0.5, zero_point=-3)
    pads = b.tensor("pads", (4, 2), np.int32, data=np.array([[0, 0], [1, 1], [0, 0], [0, 0]], np.int32))
    b.op("PAD", [x, pads], [y], b.options("PadOptions"), "PadOptions")
    (tmp_path / "pad.tflite").write_bytes(b.finish([x], [y]))
    xi = np.arange(12, dtype=np.int8).reshape(1, 2, 2, 3)  # a batch of one [2, 2, 3] sample
    out = run_litert(tmp_path / "pad.tflite", xi)
    assert out.shape == (1, 4, 2, 3)
    assert (out[0, 0] == -3).all() and (out[0, 3] == -3).all()  # padding is the zero point (real 0)
    np.testing.assert_array_equal(out[0, 1:3], xi[0])
    np.testing.assert_array_equal(out, run_tflm(tmp_path / "pad.tflite", xi))


def test_grouped_conv_is_refused_with_one_error(tmp_path: Path) -> None:
    import torch

    from toolkit.export.lower import lower_qdq
    from toolkit.export.onnx_fp32 import export_fp32
    from toolkit.quant import quantize_onnx

    xtr, _, _, _ = _digits()
    x = np.repeat(xtr[:64], 4, axis=1)  # [N, 4, 8, 8]
    torch.manual_seed(0)
    export_fp32(torch.nn.Conv2d(4, 8, 3, groups=2).eval(), x[0], tmp_path / "g.onnx")
    with pytest.raises(EdgetkError, match=r"op type Conv.*grouped convolution \(group=2\)"):
        lower_qdq(quantize_onnx(tmp_path / "g.onnx", x, "nncf"))

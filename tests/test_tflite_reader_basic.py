"""The TFLite reader: every shared model parses; truncated or bit-flipped files give one EdgetkError."""
from __future__ import annotations

import numpy as np
import pytest

from toolkit.codegen import build_model as plan_model
from toolkit.errors import EdgetkError
from toolkit.tflite import read_bytes, read_model


def _models(external):
    models = sorted(external.rglob("*.tflite"))
    assert len(models) >= 9
    return models


def test_tflite_reader_reads_every_shared_model(external):
    for p in _models(external):
        g = read_model(p)
        assert g.operators and len(g.sha256) == 64
        for op in g.operators:
            for t in op.inputs + op.outputs:
                assert -1 <= t < len(g.tensors)


def test_tflite_reader_kws_details(external):
    g = read_model(next(p for p in _models(external) if p.name == "kws_ref_model.tflite"))
    x, y = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
    assert (x.shape, x.dtype, y.shape) == ((1, 49, 10, 1), "int8", (1, 12))
    assert x.quant.zero_point == (83,) and abs(x.quant.scale[0] - 0.5847029) < 1e-6
    conv = g.operators[0]
    assert conv.op == "CONV_2D" and conv.options["padding"] == "SAME" and conv.options["stride_h"] == 2
    w = g.tensor(conv.inputs[1])
    assert w.data.shape == (64, 10, 4, 1) and w.quant.per_channel and len(w.quant.scale) == 64
    # DS-CNN int8 weights: conv 64x10x4, 4 x (depthwise 3x3x64 + pointwise 64x64), FC 12x64
    assert sum(t.data.size for t in g.tensors if t.is_const and t.dtype == "int8") == 2560 + 4 * (576 + 4096) + 768


def test_tflite_reader_truncated_files_raise_one_error(external):
    rng = np.random.default_rng(0)
    for p in _models(external):
        data = p.read_bytes()
        for cut in [0, 7, 100, len(data) // 2, len(data) - 1, *rng.integers(8, len(data), 6)]:
            with pytest.raises(EdgetkError, match="not a TFLite|truncated|corrupted"):
                read_bytes(data[:int(cut)], name=p.name)


def test_tflite_reader_bit_flips_never_crash(external, tmp_path):
    """A flipped bit either still parses (it hit weights) or gives EdgetkError; never a traceback."""
    rng = np.random.default_rng(1)
    errors = 0
    for p in _models(external):
        data = p.read_bytes()
        for k in range(24):
            b = bytearray(data)
            pos = int(rng.integers(0, min(len(b), 2048) if k % 2 else len(b)))
            b[pos] ^= 1 << int(rng.integers(0, 8))
            try:
                read_bytes(bytes(b))
            except EdgetkError:
                errors += 1
                continue
            try:  # a model that still parses must lower, or be refused with an EdgetkError
                _plan_bytes(bytes(b), tmp_path / "m.tflite")
            except EdgetkError:
                pass
    assert errors > 0


def _plan_bytes(data: bytes, path):
    path.write_bytes(data)
    return plan_model(path)


def test_tflite_reader_flipped_identifier(external):
    data = bytearray(next(iter(_models(external))).read_bytes())
    data[5] ^= 0x40
    with pytest.raises(EdgetkError, match="no 'TFL3' identifier"):
        read_bytes(bytes(data))


def test_tflite_reader_missing_file(tmp_path):
    with pytest.raises(EdgetkError, match="cannot read"):
        read_model(tmp_path / "nope.tflite")

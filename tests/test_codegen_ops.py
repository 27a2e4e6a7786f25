"""Every kernel against TFLite-Micro on crafted single-op models; planner; refusals at codegen time."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import build_model as plan_model
from toolkit.codegen import KERNEL_SETS, generate, parity
from toolkit.codegen.planner import ARENA
from toolkit.errors import EdgetkError
from toolkit.paths import external_model
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

RNG = np.random.default_rng(7)


def _w(shape):
    return RNG.integers(-127, 128, size=shape, dtype=np.int8)


def _b(n):
    return RNG.integers(-2000, 2000, size=n).astype(np.int32)


def _axes(*a):
    return T((len(a),), "int32", None, data=np.array(a, np.int32))


Q = dict(scale=(0.05,), zero_point=(3,))
CASES = {
    "conv-same-stride-dilation-relu6-per-tensor": (
        [T((1, 9, 9, 4), **Q), T((7, 3, 3, 4), data=_w((7, 3, 3, 4)), scale=(0.01,), zero_point=(0,)),
         T((7,), "int32", None, data=_b(7)), T((1, 5, 9, 7), scale=(0.2,), zero_point=(-2,))],
        [O("CONV_2D", (0, 1, 2), (3,), dict(padding="SAME", stride_w=1, stride_h=2, dilation_w_factor=2,
                                            dilation_h_factor=1, fused_activation_function="RELU6"))]),
    "conv-valid-per-channel-no-bias": (
        [T((1, 8, 6, 3), **Q), T((5, 2, 3, 3), data=_w((5, 2, 3, 3)), scale=tuple(np.linspace(.005, .02, 5)),
                                  zero_point=(0,) * 5), T((1, 7, 4, 5), scale=(0.1,), zero_point=(10,))],
        [O("CONV_2D", (0, 1, -1), (2,), dict(padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
                                             dilation_h_factor=1))]),
    "depthwise-multiplier2-stride2": (
        [T((1, 9, 9, 4), **Q), T((1, 3, 3, 8), data=_w((1, 3, 3, 8)), scale=tuple(np.linspace(.01, .02, 8)),
                                  zero_point=(0,) * 8, axis=3), T((8,), "int32", None, data=_b(8)),
         T((1, 4, 4, 8), scale=(0.2,), zero_point=(-2,))],
        [O("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), dict(padding="VALID", stride_w=2, stride_h=2, depth_multiplier=2,
                                                      dilation_w_factor=1, dilation_h_factor=1))]),
    "fc-per-channel-relu": (
        [T((1, 12), **Q), T((5, 12), data=_w((5, 12)), scale=tuple(np.linspace(.01, .02, 5)), zero_point=(0,) * 5),
         T((5,), "int32", None, data=_b(5)), T((1, 5), scale=(0.2,), zero_point=(-2,))],
        [O("FULLY_CONNECTED", (0, 1, 2), (3,), dict(fused_activation_function="RELU"))]),
    "max-pool-same-relu6": (
        [T((1, 6, 6, 8), **Q), T((1, 3, 3, 8), **Q)],
        [O("MAX_POOL_2D", (0,), (1,), dict(padding="SAME", stride_w=2, stride_h=2, filter_width=3,
                                           filter_height=3, fused_activation_function="RELU6"))]),
    "avg-pool-same-edges": (
        [T((1, 7, 5, 3), **Q), T((1, 4, 3, 3), **Q)],
        [O("AVERAGE_POOL_2D", (0,), (1,), dict(padding="SAME", stride_w=2, stride_h=2, filter_width=3,
                                               filter_height=2))]),
    "mean-keepdims-requantize": (
        [T((1, 6, 6, 8), **Q), _axes(1, 2), T((1, 1, 1, 8), scale=(0.03,), zero_point=(-5,))],
        [O("MEAN", (0, 1), (2,), dict(keep_dims=True))]),
    "mean-squeeze": (
        [T((1, 6, 6, 8), **Q), _axes(1, 2), T((1, 8), **Q)], [O("MEAN", (0, 1), (2,), dict(keep_dims=False))]),
    "pad": (
        [T((1, 5, 7, 3), **Q), T((4, 2), "int32", None, data=np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32)),
         T((1, 8, 10, 3), **Q)], [O("PAD", (0, 1), (2,))]),
    "softmax-scale-0.1": (
        [T((1, 4, 10), scale=(0.1,), zero_point=(-3,)), T((1, 4, 10), scale=(1 / 256,), zero_point=(-128,))],
        [O("SOFTMAX", (0,), (1,), dict(beta=1.0))]),
    "softmax-scale-0.02": (
        [T((1, 4, 10), scale=(0.02,), zero_point=(5,)), T((1, 4, 10), scale=(1 / 256,), zero_point=(-128,))],
        [O("SOFTMAX", (0,), (1,), dict(beta=1.0))]),
    "softmax-scale-0.5-beta-0.5": (
        [T((1, 3, 12), scale=(0.5,), zero_point=(0,)), T((1, 3, 12), scale=(1 / 256,), zero_point=(-128,))],
        [O("SOFTMAX", (0,), (1,), dict(beta=0.5))]),
    "add-broadcast-relu": (
        [T((1, 4, 5, 6), **Q), _axes(1), T((1, 1, 5, 6), scale=(0.11,), zero_point=(-7,)),
         T((1, 4, 5, 6), scale=(0.09,), zero_point=(-20,))],
        [O("MEAN", (0, 1), (2,), dict(keep_dims=True)),
         O("ADD", (2, 0), (3,), dict(fused_activation_function="RELU"))]),
    "concat-reshape": (
        [T((1, 3, 4), **Q), T((1, 3, 4), **Q), T((1, 3, 8), **Q), T((2,), "int32", None, data=np.array([1, 24], np.int32)),
         T((1, 24), **Q)],
        [O("ADD", (0, 0), (1,)), O("CONCATENATION", (0, 1), (2,), dict(axis=-1)), O("RESHAPE", (2, 3), (4,))]),
}


def _conv_opts(padding, stride=1, dil=1, **kw):
    return dict(padding=padding, stride_w=stride, stride_h=stride, dilation_w_factor=dil, dilation_h_factor=dil, **kw)


_PW = T((6, 1, 1, 3), data=_w((6, 1, 1, 3)), scale=(0.02,), zero_point=(0,))  # 3 -> 6 channels, into the arena
# Second op runs in place on the first op's output (checked by test_codegen_inplace_cases_run_in_place);
# a max pool after it keeps its output inside the arena.
INPLACE_CASES = {
    "inplace-px-conv-even-kernel-same": (
        [T((1, 7, 6, 3), **Q), _PW, T((1, 7, 6, 6), scale=(0.1,), zero_point=(1,)),
         T((5, 4, 4, 6), data=_w((5, 4, 4, 6)), scale=tuple(np.linspace(.004, .01, 5)), zero_point=(0,) * 5),
         T((5,), "int32", None, data=_b(5)), T((1, 7, 6, 5), scale=(0.3,), zero_point=(-4,))],
        [O("CONV_2D", (0, 1, -1), (2,), _conv_opts("VALID")),
         O("CONV_2D", (2, 3, 4), (5,), _conv_opts("SAME", fused_activation_function="RELU"))]),
    "inplace-row-conv-stride2": (
        [T((1, 8, 8, 3), **Q), _PW, T((1, 8, 8, 6), scale=(0.1,), zero_point=(1,)),
         T((12, 3, 3, 6), data=_w((12, 3, 3, 6)), scale=(0.01,), zero_point=(0,)),
         T((1, 4, 4, 12), scale=(0.3,), zero_point=(-4,))],
        [O("CONV_2D", (0, 1, -1), (2,), _conv_opts("VALID")),
         O("CONV_2D", (2, 3, -1), (4,), _conv_opts("SAME", stride=2))]),
    "inplace-px-depthwise-dilated": (
        [T((1, 9, 7, 3), **Q), _PW, T((1, 9, 7, 6), scale=(0.1,), zero_point=(1,)),
         T((1, 3, 3, 6), data=_w((1, 3, 3, 6)), scale=tuple(np.linspace(.01, .03, 6)), zero_point=(0,) * 6, axis=3),
         T((6,), "int32", None, data=_b(6)), T((1, 9, 7, 6), scale=(0.2,), zero_point=(3,))],
        [O("CONV_2D", (0, 1, -1), (2,), _conv_opts("VALID")),
         O("DEPTHWISE_CONV_2D", (2, 3, 4), (5,), _conv_opts("SAME", dil=2, depth_multiplier=1))]),
}
for _tensors, _ops in INPLACE_CASES.values():
    _y = _tensors[-1]
    _tensors.append(T((1, _y.shape[1] // 2, _y.shape[2] // 2, _y.shape[3]), scale=_y.scale, zero_point=_y.zero_point))
    _ops.append(O("MAX_POOL_2D", (len(_tensors) - 2,), (len(_tensors) - 1,),
                  dict(padding="VALID", stride_w=2, stride_h=2, filter_width=2, filter_height=2)))
CASES.update(INPLACE_CASES)


def test_codegen_inplace_cases_run_in_place(tmp_path):
    for name, (tensors, ops) in INPLACE_CASES.items():
        _, steps, plan = plan_model(_save(tmp_path, tensors, ops))
        assert plan.inplace == {1} and steps[1].inplace_func, name
        assert plan.arena_size < 2 * int(np.prod(tensors[2].shape)), name


def _save(tmp_path, tensors, ops):
    p = tmp_path / "m.tflite"
    p.write_bytes(build_model(tensors, ops, [0], [len(tensors) - 1]))
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_codegen_kernel_matches_tflm(case, tmp_path):
    require_tool("gcc")
    tensors, ops = CASES[case]
    path = _save(tmp_path, tensors, ops)
    x = RNG.integers(-128, 128, size=(100,) + tensors[0].shape[1:], dtype=np.int8)
    ref = parity.run_tflm_flat(path, x)
    assert len(np.unique(ref)) > 8, "degenerate case: outputs barely vary"
    for kernels in sorted(KERNEL_SETS):  # every registered kernel set, ASan/UBSan on
        res = parity.check(path, x, tmp_path, kernels=kernels, sanitize=True, ref=ref)
        assert res.identical == 100, f"{kernels}: max diff {res.max_diff} LSB"


def test_codegen_plan_aliases_reshape_and_places_io_in_the_arena(external):
    graph, steps, plan = plan_model(external_model(parity.EXTERNAL_MODELS["kws"]))
    reshape = next(s for s in steps if s.op == "RESHAPE")
    assert plan.location[reshape.inputs[0]] == plan.location[reshape.outputs[0]]
    assert plan.location[graph.inputs[0]] == (ARENA, plan.input_offset)
    assert plan.location[graph.outputs[0]] == (ARENA, plan.output_offset)
    for b1 in plan.buffers:
        assert b1.offset % 16 == 0 and b1.offset + b1.size <= plan.arena_size
        for b2 in plan.buffers:
            if b1 is not b2 and b1.first <= b2.last and b2.first <= b1.last:
                assert b1.offset + b1.size <= b2.offset or b2.offset + b2.size <= b1.offset, (b1, b2)


def test_codegen_plan_runs_add_in_place(external):
    graph, steps, plan = plan_model(external_model(parity.EXTERNAL_MODELS["ic"]))
    adds = [s for s in steps if s.op == "ADD"]
    assert any(plan.location[s.outputs[0]] in (plan.location[s.inputs[0]], plan.location[s.inputs[1]])
               for s in adds)
    assert all(plan.location[s.outputs[0]][0] == ARENA for s in steps)


def _error(path) -> str:
    with pytest.raises(EdgetkError) as e:
        generate(path, path.parent / "out")
    assert not (path.parent / "out").exists()
    return str(e.value)


def test_codegen_refuses_float_model(external):
    msg = _error_ext(external, "tflite_micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_float.tflite")
    assert "operator 0 (FULLY_CONNECTED)" in msg and "float32" in msg and "int8" in msg


def _error_ext(external, rel):
    with pytest.raises(EdgetkError) as e:
        plan_model(external / rel)
    return str(e.value)


def test_codegen_refuses_float_op_inside_int8_graph(tmp_path):
    t = [T((1, 8), **Q), T((1, 8), "float32", None), T((1, 8), **Q)]
    msg = _error(_save(tmp_path, t, [O("DEQUANTIZE", (0,), (1,)), O("QUANTIZE", (1,), (2,))]))
    assert "operator 0 (DEQUANTIZE)" in msg


def test_codegen_refuses_int16_activations(tmp_path):
    t = [T((1, 8), **Q), T((1, 8), "int16", (0.001,), (0,)), T((1, 8), **Q)]
    ops = [O("QUANTIZE", (0,), (1,)), O("SOFTMAX", (1,), (2,), dict(beta=1.0))]
    msg = _error(_save(tmp_path, t, ops))
    assert "operator 0 (QUANTIZE)" in msg


def test_codegen_refuses_int16_activation_in_supported_op(tmp_path):
    t = [T((1, 2, 2, 8), **Q), _axes(1, 2), T((1, 1, 1, 8), "int16", (0.001,), (0,)), T((1, 1, 1, 8), **Q)]
    ops = [O("MEAN", (0, 1), (2,), dict(keep_dims=True)), O("MEAN", (2, 1), (3,), dict(keep_dims=True))]
    msg = _error(_save(tmp_path, t, ops))
    assert "operator 0 (MEAN)" in msg and "int16 activations" in msg


def test_codegen_refuses_lstm_without_state(tmp_path):
    t = [T((1, 4, 8), **Q), T((1, 4, 8), **Q)]
    msg = _error(_save(tmp_path, t, [O("UNIDIRECTIONAL_SEQUENCE_LSTM", (0,), (1,))]))
    assert "operator 0 (UNIDIRECTIONAL_SEQUENCE_LSTM)" in msg and "missing" in msg


def test_codegen_refuses_per_channel_activation(tmp_path):
    t = [T((1, 2, 2, 3), **Q), T((1, 2, 2, 3), scale=(0.1, 0.2, 0.3), zero_point=(0, 0, 0), axis=3),
         T((1, 2, 2, 3), **Q)]
    ops = [O("ADD", (0, 0), (1,)), O("ADD", (1, 1), (2,))]
    msg = _error(_save(tmp_path, t, ops))
    assert "operator 0 (ADD)" in msg and "per channel" in msg


def test_codegen_refuses_mismatched_per_channel_weights(tmp_path):
    t = [T((1, 4, 4, 3), **Q), T((5, 1, 1, 3), data=_w((5, 1, 1, 3)), scale=(0.01, 0.02), zero_point=(0, 0)),
         T((1, 4, 4, 5), **Q)]
    ops = [O("CONV_2D", (0, 1, -1), (2,), dict(padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
                                               dilation_h_factor=1))]
    msg = _error(_save(tmp_path, t, ops))
    assert "operator 0 (CONV_2D)" in msg and "2 scales" in msg


def test_codegen_refuses_asymmetric_conv_weights(tmp_path):
    t = [T((1, 4, 4, 3), **Q), T((5, 1, 1, 3), data=_w((5, 1, 1, 3)), scale=(0.01,), zero_point=(4,)),
         T((1, 4, 4, 5), **Q)]
    ops = [O("CONV_2D", (0, 1, -1), (2,), dict(padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
                                               dilation_h_factor=1))]
    assert "non-zero zero point" in _error(_save(tmp_path, t, ops))


def test_codegen_refuses_unsupported_fused_activation(tmp_path):
    t = [T((1, 4), **Q), T((1, 4), **Q), T((1, 4), **Q)]
    ops = [O("ADD", (0, 0), (1,)), O("ADD", (1, 0), (2,), dict(fused_activation_function="TANH"))]
    msg = _error(_save(tmp_path, t, ops))
    assert "operator 1 (ADD)" in msg and "TANH" in msg

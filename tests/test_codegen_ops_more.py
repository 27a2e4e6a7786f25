"""The operators real models use, each against TFLite-Micro on crafted single-op models (byte for byte).

Inputs: uniform random int8 over the full range plus edge rows (all -128, all 127, the zero point,
alternating extremes); quantization parameters include ones that saturate. Every case runs through
the host build with ASan/UBSan.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import KERNEL_SETS, generate, kernel_sets, parity
from toolkit.codegen import build_model as plan_model
from toolkit.codegen.cross import CPUS, cross_build
from toolkit.codegen.host import run_host
from toolkit.errors import EdgetkError
from toolkit.tflite import read_model
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

RNG = np.random.default_rng(11)
N_RANDOM = 100


def _i32(*v):
    return T((len(v),), "int32", None, data=np.array(v, np.int32))


def _w(shape, lo=-127, hi=128):
    return RNG.integers(lo, hi, size=shape, dtype=np.int8)


def _q(scale, zp, shape):
    return T(shape, scale=(scale,), zero_point=(zp,))


S4 = (1, 4, 5, 6)
QA, QB = dict(scale=(0.05,), zero_point=(3,)), dict(scale=(0.11,), zero_point=(-7,))


def _unary(op, in_q, out_q, shape=S4, **opts):
    return [T(shape, scale=(in_q[0],), zero_point=(in_q[1],)), T(shape, scale=(out_q[0],), zero_point=(out_q[1],))], \
        [O(op, (0,), (1,), opts)]


def _mean_broadcast(op, out_q, **opts):
    """x and its mean over H (broadcast along H) into a binary op."""
    return [T(S4, **QA), _i32(1), T((1, 1, 5, 6), **QB), T(S4, scale=(out_q[0],), zero_point=(out_q[1],))], \
        [O("MEAN", (0, 1), (2,), dict(keep_dims=True)), O(op, (0, 2), (3,), opts)]


def _const_operand(op, shape, const_shape, out_q, **opts):
    c = T(const_shape, scale=(0.07,), zero_point=(-4,), data=_w(const_shape, -128, 128))
    return [T(shape, **QA), c, T(shape, scale=(out_q[0],), zero_point=(out_q[1],))], [O(op, (0, 1), (2,), opts)]


def _self_binary(op, shape, out_q, **opts):
    """x op relu(x): two activations of the same shape with different quantization."""
    return [T(shape, **QA), T(shape, **QB), T(shape, scale=(out_q[0],), zero_point=(out_q[1],))], \
        [O("RELU", (0,), (1,)), O(op, (0, 1), (2,), opts)]


def _lstm(batches=1, steps=6, n_in=5, n_cell=8, *, time_major=False, cell_scale=2.0 ** -11, clip=10.0,
          hidden=(0.0078, 0), w_scale=0.004, x_q=(0.02, -10)):
    """A standard int8 LSTM as TFLite's converter writes it (int16 cell state, variable state tensors)."""
    bt = (steps, batches) if time_major else (batches, steps)
    t = [T(bt + (n_in,), scale=(x_q[0],), zero_point=(x_q[1],))]
    t += [T((n_cell, n_in), scale=(w_scale * (1 + k / 4),), data=_w((n_cell, n_in))) for k in range(4)]
    t += [T((n_cell, n_cell), scale=(w_scale * (1.5 - k / 8),), data=_w((n_cell, n_cell))) for k in range(4)]
    t += [T((n_cell,), "int32", scale=(x_q[0] * w_scale,), data=RNG.integers(-3000, 3000, n_cell).astype(np.int32))
          for _ in range(4)]
    t += [T((batches, n_cell), scale=(hidden[0],), zero_point=(hidden[1],), variable=True),
          T((batches, n_cell), "int16", scale=(cell_scale,), zero_point=(0,), variable=True),
          T(bt + (n_cell,), scale=(hidden[0],), zero_point=(hidden[1],))]
    ins = (0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 9, 10, 11, 12, -1, -1, 13, 14, -1, -1, -1, -1)
    return t, [O("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, (15,),
                 dict(fused_activation_function="TANH", cell_clip=clip, proj_clip=0.0, time_major=time_major))]


CASES = {
    "mul-relu-saturating": _self_binary("MUL", S4, (0.004, 10), fused_activation_function="RELU"),
    "mul-broadcast-activation": _mean_broadcast("MUL", (0.3, -2)),
    "mul-const-channel-relu6": _const_operand("MUL", S4, (6,), (0.05, -30), fused_activation_function="RELU6"),
    "mul-5d-const": _const_operand("MUL", (1, 2, 3, 4, 5), (1, 2, 1, 1, 5), (0.2, 1)),
    "sub-same-shape": _self_binary("SUB", S4, (0.08, 0)),
    "sub-broadcast-activation-relu": _mean_broadcast("SUB", (0.02, -100), fused_activation_function="RELU"),
    "sub-const-first-operand-broadcast": (
        [T(S4, **QA), T((1, 1, 5, 1), scale=(0.5,), zero_point=(9,), data=_w((1, 1, 5, 1))),
         T(S4, scale=(0.3,), zero_point=(5,))], [O("SUB", (1, 0), (2,))]),
    "add-5d-const-broadcast": _const_operand("ADD", (1, 2, 3, 4, 5), (1, 2, 1, 4, 1), (0.1, -3),
                                             fused_activation_function="RELU"),
    "add-const-channel": _const_operand("ADD", S4, (6,), (0.09, 2)),
    "minimum-broadcast": _mean_broadcast("MINIMUM", (0.05, 3)),
    "maximum-const": _const_operand("MAXIMUM", S4, (1, 1, 1, 6), (0.05, 3)),
    "logistic-0.1": _unary("LOGISTIC", (0.1, 4), (1 / 256, -128)),
    "logistic-0.02": _unary("LOGISTIC", (0.02, -30), (1 / 256, -128)),
    "logistic-0.5-saturating": _unary("LOGISTIC", (0.5, 0), (1 / 256, -128)),
    "tanh-0.05": _unary("TANH", (0.05, 7), (1 / 128, 0)),
    "tanh-0.3-saturating": _unary("TANH", (0.3, -3), (1 / 128, 0)),
    "hard-swish-0.05": _unary("HARD_SWISH", (0.05, 3), (0.03, -10)),
    "hard-swish-1.5-wide": _unary("HARD_SWISH", (1.5, -20), (0.9, -100)),
    "hard-swish-0.01-narrow": _unary("HARD_SWISH", (0.01, 60), (0.02, -128)),
    "hard-swish-0.004-right-shift": _unary("HARD_SWISH", (0.004, 0), (0.002, -60)),
    "leaky-relu-0.2": _unary("LEAKY_RELU", (0.05, 3), (0.04, -20), alpha=0.2),
    "leaky-relu-0.01-saturating": _unary("LEAKY_RELU", (0.2, -5), (0.05, 30), alpha=0.01),
    "relu-requantize": _unary("RELU", (0.05, 3), (0.03, -128)),
    "relu-saturating": _unary("RELU", (0.3, 40), (0.05, -20)),
    "relu6": _unary("RELU6", (0.05, -20), (0.05, -20)),
    "relu6-wide-scale": _unary("RELU6", (0.02, -100), (0.02, -100)),
    "quantize-requantize-down": _unary("QUANTIZE", (0.05, 3), (0.2, -10)),
    "quantize-requantize-up-saturating": _unary("QUANTIZE", (0.2, 0), (0.03, 17)),
    "transpose-4d": ([T((1, 3, 4, 5), **QA), _i32(0, 2, 3, 1), T((1, 4, 5, 3), **QA)],
                     [O("TRANSPOSE", (0, 1), (2,))]),
    "transpose-3d": ([T((3, 4, 6), **QA), _i32(2, 0, 1), T((6, 3, 4), **QA)], [O("TRANSPOSE", (0, 1), (2,))]),
    "transpose-5d": ([T((2, 3, 1, 4, 5), **QA), _i32(4, 1, 0, 3, 2), T((5, 3, 2, 4, 1), **QA)],
                     [O("TRANSPOSE", (0, 1), (2,))]),
    "strided-slice-last-step": ([T((1, 7, 6), **QA), _i32(0, -1, 0), _i32(0, 0, 0), _i32(1, 1, 1), T((1, 6), **QA)],
                                [O("STRIDED_SLICE", (0, 1, 2, 3), (4,),
                                   dict(begin_mask=5, end_mask=5, shrink_axis_mask=2))]),
    "strided-slice-steps-negative": ([T((1, 9, 8, 3), **QA), _i32(0, 1, -1, 0), _i32(1, 8, 0, 3), _i32(1, 3, -2, 2),
                                      T((1, 3, 4, 2), **QA)], [O("STRIDED_SLICE", (0, 1, 2, 3), (4,))]),
    "strided-slice-clamped-end": ([T((2, 6, 5), **QA), _i32(1, -4, 1), _i32(2, 100, 4), _i32(1, 1, 1),
                                   T((1, 4, 3), **QA)], [O("STRIDED_SLICE", (0, 1, 2, 3), (4,))]),
    "resize-nearest-up": ([T((1, 3, 4, 5), **QA), _i32(7, 9), T((1, 7, 9, 5), **QA)],
                          [O("RESIZE_NEAREST_NEIGHBOR", (0, 1), (2,))]),
    "resize-nearest-align-corners": ([T((1, 5, 4, 3), **QA), _i32(8, 3), T((1, 8, 3, 3), **QA)],
                                     [O("RESIZE_NEAREST_NEIGHBOR", (0, 1), (2,), dict(align_corners=True))]),
    "resize-nearest-half-pixel-down": ([T((2, 9, 7, 2), **QA), _i32(4, 5), T((2, 4, 5, 2), **QA)],
                                       [O("RESIZE_NEAREST_NEIGHBOR", (0, 1), (2,), dict(half_pixel_centers=True))]),
    "lstm-batch-major": _lstm(),
    "lstm-2-batches-hidden-zp-no-clip": _lstm(batches=2, steps=4, hidden=(0.01, -5), clip=0.0),
    "lstm-time-major-2-batches": _lstm(batches=2, steps=5, time_major=True),
    "lstm-cell-2^-14-wide-weights": _lstm(cell_scale=2.0 ** -14, w_scale=0.05, clip=1.5, n_cell=12, n_in=3),
    "lstm-cell-2^-8": _lstm(cell_scale=2.0 ** -8, steps=3, x_q=(0.1, 20)),
}


def _save(tmp_path, tensors, ops, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(build_model(tensors, ops, [0], [len(tensors) - 1]))
    return p


def _inputs(x: T) -> np.ndarray:
    shape = x.shape[1:]
    zp = x.zero_point[0] if x.zero_point else 0
    n = int(np.prod(shape))
    edges = np.stack([np.full(n, -128), np.full(n, 127), np.full(n, zp),
                      np.where(np.arange(n) % 2, 127, -128)]).astype(np.int8).reshape((4,) + shape)
    rand = RNG.integers(-128, 128, size=(N_RANDOM,) + shape, dtype=np.int8)
    return np.concatenate([rand, edges])


@pytest.mark.parametrize("case", sorted(CASES))
def test_codegen_more_ops_match_tflm(case, tmp_path):
    require_tool("gcc")
    tensors, ops = CASES[case]
    path = _save(tmp_path, tensors, ops)
    spec = tensors[0]
    if spec.shape[0] == 1:
        x = _inputs(spec)
    else:  # leading dimension > 1: each input is a whole tensor
        x = RNG.integers(-128, 128, size=(N_RANDOM // 4,) + spec.shape, dtype=np.int8)
    ref = parity.run_tflm_flat(path, x)
    assert len(np.unique(ref)) > 8, "degenerate case: outputs barely vary"
    res = parity.check(path, x, tmp_path, kernels="reference", sanitize=True, ref=ref)
    assert res.identical == len(x), f"max diff {res.max_diff} LSB"


# ---- whole models: the Keras LSTM made by scripts/make_lstm_model.py (int8 I/O and float32 I/O) ----

DATA = Path(__file__).parent / "data"
LSTM_MODELS = ("lstm_fsdd_int8", "lstm_fsdd_float_io")


def _lstm_inputs(path: Path, n: int = 100) -> np.ndarray:
    """The 20 real FSDD inputs (held-out speaker) first, then random ones, in the model's input dtype."""
    g = read_model(path)
    xt = g.tensor(g.inputs[0])
    real = np.load(DATA / "lstm_fsdd_calib.npy", allow_pickle=False)
    rng = np.random.default_rng(5)
    if xt.dtype == "float32":
        rand = rng.normal(0.0, 3.0, size=(n - len(real),) + real.shape[1:]).astype(np.float32)
        rand[0] = np.float32(1e4) * np.sign(rand[0])        # far outside the input range: saturates
        rand[1, :, :20] = 0.0
        rand[1, :, 20:] = -0.0
        return np.concatenate([real, rand])
    s, z = xt.quant.scale[0], xt.quant.zero_point[0]
    q = np.clip(np.round(real / s) + z, -128, 127).astype(np.int8)
    return np.concatenate([q, rng.integers(-128, 128, size=(n - len(q),) + q.shape[1:], dtype=np.int8)])


@pytest.mark.parametrize("kernels", sorted(KERNEL_SETS))
@pytest.mark.parametrize("name", LSTM_MODELS)
def test_codegen_lstm_model_matches_tflm(name, kernels, tmp_path):
    require_tool("gcc")
    path = DATA / f"{name}.tflite"
    x = _lstm_inputs(path)
    ref = parity.run_tflm_flat(path, x)
    res = parity.check(path, x, tmp_path, kernels=kernels, sanitize=True, ref=ref)
    assert res.identical == len(x) == 100, f"{name} ({kernels}): max diff {res.max_diff}"
    top = res.ours.reshape(len(x), -1).argmax(axis=1)
    assert len(np.unique(top[:20])) > 2  # the real inputs are told apart, not one constant answer
    if x.dtype == np.float32:  # +-inf saturate like +-1e4 (TFLite-Micro's float->int cast: saturating on
        inf = x[20:21] * np.float32(np.inf)  # Arm, undefined on x86, so not compared with the host TFLM)
        exe = parity.build_runner(path, tmp_path, kernels=kernels, sanitize=True)
        np.testing.assert_array_equal(run_host(exe, inf, 10, dtype=np.float32), res.ours[20:21])


def test_codegen_lstm_state_starts_from_zero_each_call(tmp_path):
    """edgetk_invoke is stateless (TFLite-Micro after Reset); TFLite-Micro without reset carries the state on."""
    require_tool("gcc")
    path = DATA / "lstm_fsdd_int8.tflite"
    x = np.repeat(_lstm_inputs(path, 21)[20:21], 3, axis=0)
    exe = parity.build_runner(path, tmp_path)
    ours = run_host(exe, x, 10)
    assert (ours == ours[0]).all()
    from toolkit.runtimes import run_tflm
    carried = run_tflm(path, x, reset=False).reshape(3, -1)   # no reset between invokes
    assert (carried[0] == ours[0]).all() and not (carried[1] == ours[1]).all()


def test_codegen_lstm_model_cross_compiles_for_cortex_m(tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("arm-none-eabi-size")
    for name in LSTM_MODELS:
        res = generate(DATA / f"{name}.tflite", tmp_path / name, kernels="fast")
        assert {"et_lstm.c", "et_layout.c", "et_fc.c", "et_softmax.c"} <= {Path(f).name for f in res.files}
        for cpu in sorted(CPUS):
            size = cross_build(tmp_path / name, tmp_path / f"{name}-{cpu}", cpu)
            print(f"{name} {cpu}: flash {size.flash} B, RAM {size.ram} B (arena {res.arena_size} B)")
            assert size.bss >= res.arena_size and size.rodata >= 4 * 32 * (40 + 32)  # weights stay in flash


def test_codegen_fast_set_takes_new_families_from_reference():
    families = {"et_lstm", "et_binary", "et_unary", "et_quant", "et_layout", "et_conv"}
    files = {p.parent.name + "/" + p.name for p in kernel_sets.kernel_sources("fast", families)}
    assert "fast/et_conv.c" in files and {f"reference/{f}.c" for f in families - {"et_conv"}} <= files


# ---- refusals: one error lists every unsupported operator ----

def _error(path) -> EdgetkError:
    with pytest.raises(EdgetkError) as e:
        plan_model(path)
    return e.value


def test_codegen_lists_every_unsupported_operator(tmp_path):
    t = [T((1, 8), **QA), T((1, 8), **QA), T((1, 8), **QA), T((1, 8), "float32", None), T((1, 8), "int16", (0.001,))]
    ops = [O("EXP", (0,), (1,)), O("RELU", (1,), (2,)), O("SQUARED_DIFFERENCE", (2, 2), (3,)),
           O("QUANTIZE", (3,), (4,))]
    err = _error(_save(tmp_path, t, ops))
    msg = str(err)
    assert msg.startswith("4 problems stop code generation"), msg
    for line in ("operator 0 (EXP) is not supported: the generator has no kernel",
                 "operator 2 (SQUARED_DIFFERENCE) is not supported: the generator has no kernel",
                 "operator 3 (QUANTIZE) is not supported", "model I/O tensor 't4' is int16"):
        assert line in msg, msg
    assert "operator 1" not in msg            # RELU itself is fine
    assert "edgetk export" in err.fix         # edgetk's own model: re-export


def test_codegen_external_model_gets_the_import_fix(tmp_path):
    t = [T((1, 4, 8), **QA), T((1, 4, 8), **QA)]
    path = tmp_path / "ext.tflite"
    path.write_bytes(build_model(t, [O("CUMSUM", (0,), (1,))], [0], [1], description="MLIR Converted."))
    err = _error(path)
    assert "operator 0 (CUMSUM)" in str(err) and "edgetk import" in err.fix and "LiteRT" in err.fix


def test_codegen_refuses_lstm_variants_with_reasons(tmp_path):
    tensors, ops = _lstm()
    peep = T((8,), "int16", scale=(0.01,), data=np.ones(8, np.int16))
    ins = list(ops[0].inputs)
    ins[9] = len(tensors)
    err = _error(_save(tmp_path, tensors[:-1] + [peep, tensors[-1]],
                       [O(ops[0].op, tuple(ins), (len(tensors),), ops[0].options)]))
    assert "operator 0 (UNIDIRECTIONAL_SEQUENCE_LSTM)" in str(err) and "peephole" in str(err)


def test_codegen_refuses_float_tensor_inside_the_graph(tmp_path):
    t = [T((1, 8), **QA), T((1, 8), "float32", None), T((1, 8), **QB)]
    msg = str(_error(_save(tmp_path, t, [O("DEQUANTIZE", (0,), (1,)), O("QUANTIZE", (1,), (2,))])))
    assert "operator 0 (DEQUANTIZE)" in msg and "operator 1 (QUANTIZE)" in msg and "inside the graph" in msg


@pytest.mark.parametrize("scale,zp", [(0.05, 3), (0.0173, -128), (1.7, 100)])
def test_codegen_float_edges_match_tflm(scale, zp, tmp_path):
    """QUANTIZE float32 -> int8 on halfway points, +-0, subnormals and saturating values; DEQUANTIZE back."""
    require_tool("gcc")
    q = T((1, 64), scale=(scale,), zero_point=(zp,))
    k = np.arange(-160, 160, 5, dtype=np.float32)[:64]
    rows = [(k + np.float32(0.5)) * np.float32(scale), (k - np.float32(0.5)) * np.float32(scale),
            np.nextafter((k + np.float32(0.5)) * np.float32(scale), np.float32(np.inf)),
            np.where(np.arange(64) % 2, np.float32(-0.0), np.float32(1e-40)),
            np.float32(scale) * np.float32(3e8) * np.sign(k + 0.25)]
    x = np.concatenate([np.stack(rows), RNG.normal(0, 200 * scale, size=(60, 64))]).astype(np.float32)[:, None]
    pq = _save(tmp_path, [T((1, 64), "float32", None), q], [O("QUANTIZE", (0,), (1,))], "q.tflite")
    res = parity.check(pq, x, tmp_path / "q", sanitize=True)
    assert res.identical == len(x), f"QUANTIZE: max diff {res.max_diff}"
    pd = _save(tmp_path, [q, T((1, 64), "float32", None)], [O("DEQUANTIZE", (0,), (1,))], "d.tflite")
    xd = _inputs(q)
    res = parity.check(pd, xd, tmp_path / "d", sanitize=True)
    assert res.identical == len(xd) and res.ours.dtype == np.float32, f"DEQUANTIZE: max diff {res.max_diff}"


@pytest.mark.parametrize("name", LSTM_MODELS)
def test_codegen_lstm_model_on_qemu_m4_is_bit_exact(name, tmp_path):
    """The real firmware on QEMU Cortex-M4: uploaded bytes in (int8, or float32 little-endian), bytes out."""
    from test_firmware_devices import Running

    path = DATA / f"{name}.tflite"
    lib = generate(path, tmp_path / "lib").out_dir
    x = _lstm_inputs(path, 23)[18:]  # 2 real inputs, 3 random
    ref = parity.run_tflm_flat(path, x)
    dev = Running("qemu-m4", lib, tmp_path / "build")
    try:
        info = dev.dut.info()
        assert info.input_size == x[0].nbytes and info.output_size == ref[0].nbytes
        for xi, ri in zip(x, ref):
            dev.dut.upload(xi.tobytes())
            r = dev.dut.run(1, 0, output_size=info.output_size)
            assert r.output == ri.tobytes()
    finally:
        dev.close()

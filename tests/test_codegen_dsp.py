"""The dsp kernel set: exact requantization, what specialisation picks, crafted operators in both optimize modes
on the host (ASan/UBSan), the MLPerf models with optimize=speed, and the same bytes as TFLite-Micro on QEMU
Cortex-M4 and M7 (DSP instructions) and M3 (the portable C)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import build_model as plan_model
from toolkit.codegen import generate, parity
from toolkit.codegen.host import compile_host, run_host
from toolkit.codegen.kernel_sets import KERNEL_ROOT
from toolkit.codegen.mcu_run import cmsis_figures
from toolkit.codegen.specialize import FLASH_RESERVE, rescale_row
from toolkit.errors import EdgetkError
from toolkit.paths import external_model
from toolkit.tflite import read_model
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

RNG = np.random.default_rng(15)
MODES = ("size", "speed")


def tflite_requantize(x: int, m: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier in Python integers (C's truncating division, gemmlowp's rounding)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = x * (1 << left)
    if a == m == -(1 << 31):
        high = (1 << 31) - 1
    else:
        v = a * m + ((1 << 30) if a * m >= 0 else 1 - (1 << 30))
        high = abs(v) // (1 << 31) * (1 if v >= 0 else -1)
    mask = (1 << right) - 1
    return (high >> right) + ((high & mask) > (mask >> 1) + (high < 0))


def kernel_requantize(x: int, row: tuple[int, ...]) -> int:
    """What et_dsp_rq computes from the doubled accumulator (et_dsp.h), in Python integers."""
    m, c, e = row
    x2 = 2 * x
    t = c + ((x2 * m + (1 << 31)) >> 32) + (x2 >> 31)
    assert -(1 << 31) <= t < 1 << 31 and -(1 << 31) <= x2 < 1 << 31
    return t >> e


def test_requantization_rows_equal_tflite_on_ties_and_extremes():
    mults = [1 << 30, (1 << 31) - 1, 1075542397, 2147314432, 1552512760, 1638001719]
    xs = np.concatenate([np.arange(-4100, 4100), RNG.integers(-(1 << 24), 1 << 24, 4000),
                         [-(1 << 27) + 1, (1 << 27) - 1]])
    checked = 0
    for m in mults:
        for shift in (-1, -2, -5, -8, -13):
            for offset in (-128, -3, 0, 27, 127):
                row = rescale_row(m, shift, offset, 2 * (1 << 27))
                assert row is not None and row[2] == -shift and (row[1] & -row[1]) == 1 << (-shift - 1)
                for x in xs.tolist():
                    assert kernel_requantize(x, row) == tflite_requantize(x, m, shift) + offset, (x, m, shift, offset)
                    checked += 1
    assert checked > 1_000_000


def test_requantization_rows_refuse_what_they_cannot_compute_exactly():
    assert rescale_row(1 << 30, 1, 0, 1000) is None          # a left shift
    assert rescale_row(1 << 30, 0, 5, 1000) is None          # no right shift
    assert rescale_row(1 << 30, 0, 0, 1000, allow_e0=True) == (1 << 30, 0, 0)
    assert rescale_row(1 << 30, -3, 0, 1 << 31) is None      # 2x beyond int32
    assert rescale_row((1 << 31) - 1, -24, 127, 1 << 24) is None  # high product + offset beyond int32
    assert rescale_row((1 << 31) - 1, -24, 100, 1 << 24) is not None


def _w(shape):
    return RNG.integers(-127, 128, size=shape, dtype=np.int8)


def _b(n):
    return RNG.integers(-3000, 3000, size=n).astype(np.int32)


def _opts(padding, sh=1, sw=1, dil=1, **kw):
    return dict(padding=padding, stride_h=sh, stride_w=sw, dilation_h_factor=dil, dilation_w_factor=dil, **kw)


Q = dict(scale=(0.05,), zero_point=(3,))
_PW8 = T((8, 1, 1, 4), data=_w((8, 1, 1, 4)), scale=(0.02,), zero_point=(0,))  # 4 -> 8 channels, into the arena


def _conv(x, w_shape, y, opts, *, per_channel=True, bias=True, op="CONV_2D", axis=0):
    n = w_shape[axis]
    scales = tuple(np.linspace(0.004, 0.012, n)) if per_channel else (0.008,)
    w = T(w_shape, data=_w(w_shape), scale=scales, zero_point=(0,) * len(scales), axis=axis)
    tensors = [x, w] + ([T((n,), "int32", None, data=_b(n))] if bias else []) + [y]
    return tensors, [O(op, (0, 1, 2 if bias else -1), (len(tensors) - 1,), opts)]


def _after_pointwise(tensors, ops):
    """The case between a 1x1 conv and a 1x1 max pool: its input and output in the arena, so the planner may run
    it in place."""
    x0 = T(tensors[0].shape[:3] + (4,), **Q)
    shift = {i: i + 2 for i in range(len(tensors))}
    moved = [O(o.op, tuple(shift[i] if i >= 0 else i for i in o.inputs), tuple(shift[i] for i in o.outputs), o.options)
             for o in ops]
    y = tensors[-1]
    pool = O("MAX_POOL_2D", (len(tensors) + 1,), (len(tensors) + 2,),
             dict(padding="VALID", stride_w=1, stride_h=1, filter_width=1, filter_height=1))
    return ([x0, _PW8] + tensors + [T(y.shape, scale=y.scale, zero_point=y.zero_point)],
            [O("CONV_2D", (0, 1, -1), (2,), _opts("VALID"))] + moved + [pool])


# case -> (tensors, ops, function of the specialised step that matters (None: keeps its portable kernel), step)
CASES = {
    "conv-3x3-same-odd-k-odd-channels-relu6": (*_conv(T((1, 7, 6, 5), **Q), (7, 3, 3, 5), T((1, 7, 6, 7), scale=(0.1,),
                                                                                                 zero_point=(-4,)),
                                                      _opts("SAME", fused_activation_function="RELU6")), "et_dsp_conv", 0),
    "conv-dilated-strided-per-tensor": (*_conv(T((1, 11, 9, 4), **Q), (8, 3, 2, 4), T((1, 4, 7, 8), scale=(0.2,),
                                                                                          zero_point=(5,)),
                                               _opts("VALID", sh=2, dil=2), per_channel=False, bias=False),
                                        "et_dsp_conv", 0),
    "conv-first-layer-cin1-10x4-stride2": (*_conv(T((1, 13, 10, 1), **Q), (6, 10, 4, 1), T((1, 7, 5, 6), scale=(0.1,),
                                                                                              zero_point=(-128,)),
                                                  _opts("SAME", sh=2, sw=2, fused_activation_function="RELU")),
                                           "et_dsp_conv", 0),
    "conv-1x1-in-place": (*_after_pointwise(*_conv(T((1, 5, 7, 8), scale=(0.1,), zero_point=(1,)), (6, 1, 1, 8),
                                                   T((1, 5, 7, 6), scale=(0.2,), zero_point=(-9,)), _opts("VALID"))),
                          "et_dsp_conv1x1", 1),
    "conv-3x3-in-place-pixels": (*_after_pointwise(*_conv(T((1, 6, 8, 8), scale=(0.1,), zero_point=(1,)),
                                                          (8, 3, 3, 8), T((1, 6, 8, 8), scale=(0.2,), zero_point=(-9,)),
                                                          _opts("SAME"))), "et_dsp_conv", 1),
    "conv-4x4-same-odd-width-in-place-pixels": (*_after_pointwise(*_conv(T((1, 7, 5, 8), scale=(0.1,), zero_point=(1,)),
                                                                         (6, 4, 4, 8), T((1, 7, 5, 6), scale=(0.2,),
                                                                                         zero_point=(-9,)),
                                                                         _opts("SAME"))), "et_dsp_conv", 1),
    "conv-3x3-stride2-in-place-rows": (*_after_pointwise(*_conv(T((1, 8, 8, 8), scale=(0.1,), zero_point=(1,)),
                                                                (16, 3, 3, 8), T((1, 4, 4, 16), scale=(0.2,),
                                                                                 zero_point=(-9,)),
                                                                _opts("SAME", sh=2, sw=2))), "et_dsp_conv", 1),
    "conv-1x1-stride2-in-place-rows": (*_after_pointwise(*_conv(T((1, 8, 6, 8), scale=(0.1,), zero_point=(1,)),
                                                                (12, 1, 1, 8), T((1, 4, 3, 12), scale=(0.2,),
                                                                                 zero_point=(-9,)),
                                                                _opts("VALID", sh=2, sw=2))), "et_dsp_conv1x1", 1),
    "depthwise-3x3-tall-transposed-relu6": (*_conv(T((1, 9, 5, 8), **Q), (1, 3, 3, 8), T((1, 9, 5, 8), scale=(0.2,),
                                                                                          zero_point=(-6,)),
                                                   _opts("SAME", depth_multiplier=1, fused_activation_function="RELU6"),
                                                   op="DEPTHWISE_CONV_2D", axis=3), "et_dsp_dw3x3", 0),
    "depthwise-3x3-wide-tails-in-place": (*_after_pointwise(*_conv(T((1, 5, 11, 8), scale=(0.1,), zero_point=(1,)),
                                                                   (1, 3, 3, 8), T((1, 5, 11, 8), scale=(0.2,),
                                                                                   zero_point=(7,)),
                                                                   _opts("SAME", depth_multiplier=1),
                                                                   op="DEPTHWISE_CONV_2D", axis=3)), "et_dsp_dw3x3", 1),
    "depthwise-5x5-stride2-dilated": (*_conv(T((1, 13, 12, 8), **Q), (1, 5, 5, 8), T((1, 3, 2, 8), scale=(0.3,),
                                                                                      zero_point=(0,)),
                                             _opts("VALID", sh=2, sw=2, dil=2, depth_multiplier=1),
                                             op="DEPTHWISE_CONV_2D", axis=3), "et_dsp_dw", 0),
    "depthwise-column-kernel": (*_conv(T((1, 12, 1, 8), **Q), (1, 5, 1, 8), T((1, 8, 1, 8), scale=(0.2,),
                                                                                zero_point=(-2,)),
                                       _opts("VALID", depth_multiplier=1), op="DEPTHWISE_CONV_2D", axis=3),
                                "et_dsp_dw", 0),
    "depthwise-multiplier2-3x3": (*_conv(T((1, 6, 7, 4), **Q), (1, 3, 3, 8), T((1, 6, 7, 8), scale=(0.2,),
                                                                               zero_point=(0,)),
                                         _opts("SAME", depth_multiplier=2), op="DEPTHWISE_CONV_2D", axis=3),
                                  "et_dsp_dw3x3", 0),
    "depthwise-multiplier3-strided": (*_conv(T((1, 9, 8, 4), **Q), (1, 3, 2, 12), T((1, 4, 4, 12), scale=(0.2,),
                                                                                    zero_point=(-1,)),
                                             _opts("VALID", sh=2, sw=2, depth_multiplier=3, fused_activation_function="RELU"),
                                             op="DEPTHWISE_CONV_2D", axis=3), "et_dsp_dw", 0),
    "depthwise-3-channels-keeps-portable": (*_conv(T((1, 6, 6, 3), **Q), (1, 3, 3, 3), T((1, 6, 6, 3), scale=(0.2,),
                                                                                         zero_point=(0,)),
                                                   _opts("SAME", depth_multiplier=1), op="DEPTHWISE_CONV_2D",
                                                   axis=3), None, 0),
    "conv-multiplier-above-half-keeps-portable": (
        [T((1, 4, 4, 4), scale=(1.0,), zero_point=(0,)),
         T((4, 1, 1, 4), data=RNG.integers(-1, 2, (4, 1, 1, 4)).astype(np.int8), scale=(0.75,), zero_point=(0,)),
         T((1, 4, 4, 4), scale=(1.0,), zero_point=(0,))],
        [O("CONV_2D", (0, 1, -1), (2,), _opts("VALID"))], None, 0),
    "fc-per-tensor-batch2-relu": (
        [T((2, 16), **Q), T((6, 16), data=_w((6, 16)), scale=(0.01,), zero_point=(0,)), T((6,), "int32", None, data=_b(6)),
         T((2, 6), scale=(0.2,), zero_point=(-2,))],
        [O("FULLY_CONNECTED", (0, 1, 2), (3,), dict(fused_activation_function="RELU"))], "et_dsp_fc", 0),
    "fc-depth-10-keeps-portable": (
        [T((1, 10), **Q), T((5, 10), data=_w((5, 10)), scale=(0.01,), zero_point=(0,)), T((1, 5), scale=(0.2,),
                                                                                         zero_point=(1,))],
        [O("FULLY_CONNECTED", (0, 1, -1), (2,))], None, 0),
    "add-first-input-larger-scale-relu": (
        [T((1, 4, 6, 8), **Q), T((8, 1, 1, 8), data=_w((8, 1, 1, 8)), scale=(0.002,), zero_point=(0,)),
         T((8, 1, 1, 8), data=_w((8, 1, 1, 8)), scale=(0.001,), zero_point=(0,)),
         T((1, 4, 6, 8), scale=(0.08,), zero_point=(-3,)), T((1, 4, 6, 8), scale=(0.03,), zero_point=(9,)),
         T((1, 4, 6, 8), scale=(0.09,), zero_point=(-20,))],
        [O("CONV_2D", (0, 1, -1), (3,), _opts("VALID")), O("CONV_2D", (0, 2, -1), (4,), _opts("VALID")),
         O("ADD", (3, 4), (5,), dict(fused_activation_function="RELU"))], "et_dsp_add", 2),
    "global-average-pool": (
        [T((1, 6, 5, 8), **Q), T((1, 1, 1, 8), **Q)],
        [O("AVERAGE_POOL_2D", (0,), (1,), dict(padding="VALID", stride_w=1, stride_h=1, filter_width=5,
                                               filter_height=6))], "et_dsp_avg_pool", 0),
    "avg-pool-same-edges-relu6": (
        [T((1, 7, 5, 8), **Q), T((1, 4, 3, 8), scale=(0.05,), zero_point=(3,))],
        [O("AVERAGE_POOL_2D", (0,), (1,), dict(padding="SAME", stride_w=2, stride_h=2, filter_width=3, filter_height=2,
                                               fused_activation_function="RELU6"))], "et_dsp_avg_pool", 0),
    "max-pool-same-relu": (
        [T((1, 6, 7, 12), **Q), T((1, 3, 4, 12), **Q)],
        [O("MAX_POOL_2D", (0,), (1,), dict(padding="SAME", stride_w=2, stride_h=2, filter_width=3, filter_height=3,
                                           fused_activation_function="RELU"))], "et_dsp_max_pool", 0),
}


def _save(tmp_path, tensors, ops, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(build_model(tensors, ops, [0], [len(tensors) - 1]))
    return p


def _host(path, x, tmp_path, mode, sanitize=True):
    lib = tmp_path / f"lib-{mode}"
    generate(path, lib, kernels="dsp", optimize=mode)
    exe = compile_host(lib, tmp_path / f"run-{mode}", sanitize=sanitize)
    g = read_model(path)
    return run_host(exe, x, g.tensor(g.outputs[0]).size, timeout=600)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dsp_crafted_ops_match_tflm(case, tmp_path):
    require_tool("gcc")
    tensors, ops, func, step = CASES[case]
    path = _save(tmp_path, tensors, ops)
    x = RNG.integers(-128, 128, size=(100, read_model(path).tensor(0).size), dtype=np.int8)
    ref = parity.run_tflm_flat(path, x)
    assert len(np.unique(ref)) > 8, "degenerate case: outputs barely vary"
    for mode in MODES:
        _, steps, plan = plan_model(path, kernels="dsp", optimize=mode)
        got = steps[step].func
        if func == "et_dsp_add" and not got:  # fused into the conv before it (toolkit/codegen/fuse.py): et_dsp_add inside
            got = "et_dsp_add" if steps[step - 1].func.endswith("_add") else got
        assert (got.startswith(func + "_w") or got == func) if func else not got.startswith("et_dsp"), (mode, got)
        if "in-place" in case:
            assert step in plan.inplace, (mode, "expected the dsp kernel to run in place")
            ring = "_inplace_px" if "pixels" in case else "_inplace" if "rows" in case else ""
            assert steps[step].inplace_func == (got + ring if ring else ""), steps[step].inplace_func
        np.testing.assert_array_equal(_host(path, x, tmp_path, mode), ref, err_msg=mode)


def test_dsp_crafted_ops_on_qemu_m4_match_tflm(tmp_path):
    """The assembly paths (fused GEMM/FC with odd channels, partial quads, clamps, in place) on the DSP core."""
    from toolkit.codegen.mcu_run import run_on_qemu

    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    for case, (tensors, ops, _, _) in sorted(CASES.items()):
        path = _save(tmp_path, tensors, ops, f"{case}.tflite")
        x = RNG.integers(-128, 128, size=(4, read_model(path).tensor(0).size), dtype=np.int8)
        ref = parity.run_tflm_flat(path, x)
        for mode in MODES:
            lib = tmp_path / f"{case}-{mode}"
            generate(path, lib, kernels="dsp", optimize=mode)
            run = run_on_qemu(lib, x, tmp_path / f"qemu-{case}-{mode}")
            np.testing.assert_array_equal(run.outputs, ref, err_msg=f"{case} {mode}")


def test_dsp_specialisation_on_fuzzed_models(external, tmp_path):
    """Mutated models (toolkit.fuzz, seed 15) that codegen accepts specialise in both modes without another
    exception; a few run under ASan/UBSan with the same bytes as the reference kernel set."""
    from toolkit import fuzz

    require_tool("gcc")
    seeds = fuzz.tflite_seeds(external)
    accepted, deep = 0, 0
    for i in range(300):
        data = fuzz.mutate_tflite(np.random.default_rng([15, i]), seeds[i % len(seeds)])
        try:
            if fuzz.check_tflite(data) != "accepted":
                continue
        except fuzz.Finding:
            continue  # the reader/lowering campaign's business (tests/test_fuzz_models.py)
        accepted += 1
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(data)
        steps = [plan_model(path, kernels="dsp", optimize=mode)[1] for mode in MODES]
        g = read_model(path)
        x_t, y_t = g.tensor(g.inputs[0]), g.tensor(g.outputs[0])
        if deep >= 4 or x_t.dtype != "int8" or y_t.dtype != "int8" or not any(s.func.startswith("et_dsp") for s in steps[1]):
            continue
        deep += 1
        x = np.random.default_rng(i).integers(-128, 128, size=(4, x_t.size), dtype=np.int8)
        generate(path, tmp_path / f"ref{i}", kernels="reference")
        ref = run_host(compile_host(tmp_path / f"ref{i}", tmp_path / f"ref{i}.run"), x, y_t.size)
        for mode in MODES:
            np.testing.assert_array_equal(_host(path, x, tmp_path / f"d{i}", mode), ref, err_msg=f"input {i} {mode}")
    assert accepted > 30 and deep == 4


def test_dsp_speed_widens_weights_only_where_flash_allows(external):
    path = external_model(parity.EXTERNAL_MODELS["kws"])
    _, steps, _ = plan_model(path, kernels="dsp", optimize="speed")
    wide = {s.index for s in steps if s.func.endswith("_w16")}
    _, small, _ = plan_model(path, kernels="dsp", optimize="speed", flash_bytes=FLASH_RESERVE + 36_000)
    some = {s.index for s in small if s.func.endswith("_w16")}
    _, none, _ = plan_model(path, kernels="dsp", optimize="speed", flash_bytes=FLASH_RESERVE)
    assert wide == {0, 2, 4, 6, 8, 11} and 0 < len(some) < len(wide) and some <= wide
    assert not any(s.func.endswith("_w16") for s in none)
    assert sum(s.arrays["filter"].nbytes for s in small if "filter" in s.arrays) <= 36_000
    with pytest.raises(EdgetkError, match="optimize"):
        plan_model(path, kernels="dsp", optimize="fast")


@pytest.mark.parametrize("name", sorted(parity.EXTERNAL_MODELS))
def test_dsp_speed_matches_tflm_on_external_models(external, name, tmp_path):
    """optimize=speed (int16 weights) on the host, ASan/UBSan on (size runs in test_codegen_parity)."""
    require_tool("gcc")
    path = external_model(parity.EXTERNAL_MODELS[name])
    x = parity.inputs_for(name, read_model(path), 100)
    np.testing.assert_array_equal(_host(path, x, tmp_path, "speed"), parity.run_tflm_flat(path, x))
    plan = json.loads((tmp_path / "lib-speed" / "plan.json").read_text())
    assert plan["kernels"] == "dsp" and plan["optimize"] == "speed" and plan["specialized"]["dsp_steps"] > 0


@pytest.mark.parametrize("task", ("kws-digits", "imu-motions", "ecg-anomaly", "image-digits"))
def test_dsp_speed_matches_tflm_on_model_zoo(exported_bundle, task, tmp_path):
    """optimize=speed on edgetk's own exported models (dyadic requantization), real test inputs first, ASan/UBSan
    (size runs in test_codegen_parity)."""
    require_tool("gcc")
    bundle = exported_bundle(task)
    path = bundle / "model_int8.tflite"
    x = parity.inputs_for(task, read_model(path), 60)
    real = np.load(bundle / "test_x_int8.npy", allow_pickle=False).reshape((-1,) + x.shape[1:])[:30]
    x = np.concatenate([real, x[len(real):]])
    np.testing.assert_array_equal(_host(path, x, tmp_path, "speed"), parity.run_tflm_flat(path, x))
    _, steps, _ = plan_model(path, kernels="dsp", optimize="speed")
    assert any(s.func.startswith("et_dsp") for s in steps)


def test_manifest_cmsis_figures_parse(external):
    figures = cmsis_figures((external.parent / "MANIFEST.md").read_text())
    assert figures == {"kws": 7.70e6, "ic": 29.9e6, "ad": 0.583e6}


# (model, optimize, core): every dsp kernel on the DSP path (M4, M7) and the portable C on a Cortex-M3
QEMU_CASES = [("kws", "size", "cortex-m4"), ("ic", "speed", "cortex-m4"), ("ad", "speed", "cortex-m4"),
              ("sww", "size", "cortex-m4"), ("kws", "speed", "cortex-m7"), ("kws", "size", "cortex-m3"),
              ("ic", "speed", "cortex-m3")]


@pytest.mark.parametrize("name,mode,core", QEMU_CASES, ids=[f"{n}-{m}-{c}" for n, m, c in QEMU_CASES])
def test_dsp_on_qemu_matches_tflm(external, name, mode, core, tmp_path):
    """The same bytes as TFLite-Micro on the emulated core; on M4 fewer instructions than TFLM + CMSIS-NN."""
    from toolkit.codegen.mcu_run import run_on_qemu

    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    path = external_model(parity.EXTERNAL_MODELS[name])
    x = parity.inputs_for(name, read_model(path), 3)
    res = generate(path, tmp_path / "lib", kernels="dsp", optimize=mode)
    run = run_on_qemu(tmp_path / "lib", x, tmp_path / "qemu", core=core)
    np.testing.assert_array_equal(run.outputs, parity.run_tflm_flat(path, x))
    cmsis = cmsis_figures((external.parent / "MANIFEST.md").read_text()).get(name)
    if core == "cortex-m4" and cmsis:
        assert max(run.instructions) < cmsis, f"{max(run.instructions):,} instructions vs TFLM + CMSIS-NN {cmsis:,.0f}"
        assert max(run.instructions) / res.macs < (1.8 if mode == "size" else 1.4)


def test_dsp_library_built_by_clang_on_qemu_m4(external, tmp_path):
    """The naked-function assembly and intrinsics under clang too (objects linked by the gcc harness)."""
    from toolkit.codegen import mcu_run
    from toolkit.native import m4

    clang = require_tool("clang")
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    path = external_model(parity.EXTERNAL_MODELS["kws"])
    x = parity.inputs_for("kws", read_model(path), 2)
    lib = tmp_path / "lib"
    generate(path, lib, kernels="dsp", optimize="speed")
    objs = []
    for src in sorted(lib.rglob("*.c")):
        objs.append(tmp_path / f"{src.stem}.o")
        subprocess.run([clang, "--target=thumbv7em-none-eabi", "-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                        "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(lib), "-I", str(lib / "kernels"), "-c",
                        str(src), "-o", str(objs[-1])], check=True, capture_output=True)
    main = tmp_path / "main.c"
    main.write_text(mcu_run._main_c(x))
    run = m4.run_m4(m4.build_m4([main, *objs], [lib, lib / "kernels"], tmp_path, name="clang"))
    outs = np.stack([np.frombuffer(bytes.fromhex(h), np.int8) for h in run.lines("O")])
    np.testing.assert_array_equal(outs, parity.run_tflm_flat(path, x))
    assert max(run.counts) < 7.70e6


@pytest.mark.parametrize("name", ["kws", "ic", "ad", "sww"])
def test_dsp_library_code_and_tables_within_12_kb(external, name, tmp_path):
    from toolkit.codegen.cross import cross_build

    require_tool("arm-none-eabi-gcc")
    path = external_model(parity.EXTERNAL_MODELS[name])
    for mode in MODES:
        generate(path, tmp_path / mode, kernels="dsp", optimize=mode)
        size = cross_build(tmp_path / mode, tmp_path / f"elf-{mode}", "cortex-m4")
        weights = json.loads((tmp_path / mode / "plan.json").read_text())["specialized"]["weight_bytes"]
        assert 0 < size.flash - weights <= 12 * 1024, (mode, size, weights)


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m7", "cortex-m3", "cortex-m33"])
def test_dsp_kernels_compile_at_every_level_without_libc(cpu, tmp_path):
    gcc, nm = require_tool("arm-none-eabi-gcc"), require_tool("arm-none-eabi-nm")
    for opt in ("-O0", "-O1", "-O2", "-O3", "-Os"):
        for src in sorted((KERNEL_ROOT / "dsp").glob("*.c")):
            obj = tmp_path / f"{src.stem}{opt}.o"
            proc = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-mthumb", f"-mcpu={cpu}", opt,
                                   "-mfloat-abi=soft", f"-I{KERNEL_ROOT / 'reference'}", "-c", str(src), "-o", str(obj)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            undefined = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True).stdout.split()
            assert [u for u in undefined if u != "U" and not u.startswith("et_")] == [], (src.name, opt)


def test_codegen_cli_optimize_and_target(external, tmp_path, capsys):
    from toolkit.cli import main

    model = external_model(parity.EXTERNAL_MODELS["ad"])
    assert main(["codegen", str(model), "-o", str(tmp_path / "c"), "--target", "qemu-m4", "--optimize", "speed",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kernels"] == "dsp" and out["optimize"] == "speed" and out["specialized"]["int16_weight_steps"]
    assert main(["codegen", str(model), "-o", str(tmp_path / "d")]) == 0
    assert "kernels fast, optimize size" in capsys.readouterr().out

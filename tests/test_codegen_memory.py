"""The input and output in the arena (edgetk_input/edgetk_run/edgetk_output), what EDGETK_INPUT_PRESERVED promises,
peak RAM in plan.json, and the dsp conv + ADD fusion that keeps a residual block within two activations."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import require_tool
from toolkit.codegen import build_model as plan_model
from toolkit.codegen import generate, parity
from toolkit.codegen.host import CFLAGS, SANITIZE, c_sources, compile_host, run_host
from toolkit.paths import external_model
from toolkit.tflite import read_model
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

RNG = np.random.default_rng(10)

# Runs each input twice with the zero-copy API: "<output of run 1><output of run 2><input after the runs>" per input.
API_MAIN = r"""#include <stdio.h>
#include <string.h>
#include "edgetk_model.h"

int main(void)
{
    static int8_t x[EDGETK_INPUT_SIZE], y1[EDGETK_OUTPUT_SIZE];
    while (fread(x, 1, sizeof x, stdin) == sizeof x) {
        memcpy(edgetk_input(), x, sizeof x);
        if (edgetk_run() != 0) {
            return 3;
        }
        memcpy(y1, edgetk_output(), sizeof y1);
        if (edgetk_run() != 0) {
            return 3;
        }
        fwrite(y1, 1, sizeof y1, stdout);
        fwrite(edgetk_output(), 1, EDGETK_OUTPUT_SIZE, stdout);
        fwrite(edgetk_input(), 1, EDGETK_INPUT_SIZE, stdout);
    }
    return 0;
}
"""


def _api_run(lib, x, tmp_path, out_size):
    require_tool("gcc")
    main = tmp_path / "api_main.c"
    main.write_text(API_MAIN)
    exe = tmp_path / "api_run"
    subprocess.run(["gcc", *CFLAGS, *SANITIZE, "-I", str(lib), "-I", str(lib / "kernels"), str(main),
                    *map(str, c_sources(lib)), "-o", str(exe)], check=True, capture_output=True)
    raw = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, check=True, timeout=300).stdout
    rec = np.frombuffer(raw, np.int8).reshape(len(x), -1)
    return rec[:, :out_size], rec[:, out_size:2 * out_size], rec[:, 2 * out_size:]


@pytest.mark.parametrize("kernels,keep", [("fast", None), ("dsp", True)])
def test_arena_api_runs_kws_like_tflm_and_says_whether_the_input_survives(external, kernels, keep, tmp_path):
    """The zero-copy API equals TFLite-Micro; a plan that reuses the input's memory says so (EDGETK_INPUT_PRESERVED
    0) and a second run on the overwritten input then differs; keep_input=True keeps it and runs again the same."""
    path = external_model(parity.EXTERNAL_MODELS["kws"])
    x = parity.inputs_for("kws", read_model(path), 3).reshape(3, -1)
    ref = parity.run_tflm_flat(path, x)
    res = generate(path, tmp_path / "lib", kernels=kernels, keep_input=keep)
    header = (tmp_path / "lib" / "edgetk_model.h").read_text()
    assert f"#define EDGETK_INPUT_PRESERVED {int(res.input_preserved)}" in header
    first, second, after = _api_run(tmp_path / "lib", x, tmp_path, ref.shape[1])
    np.testing.assert_array_equal(first, ref)
    if res.input_preserved:
        np.testing.assert_array_equal(after, x)
        np.testing.assert_array_equal(second, ref)
    else:
        assert keep is None and not np.array_equal(after, x)  # the plan really reuses the input's bytes
    plan = json.loads((tmp_path / "lib" / "plan.json").read_text())
    assert plan["peak_ram_bytes"]["arena_api"] == res.arena_size
    assert plan["peak_ram_bytes"]["with_copy_buffers"] == res.arena_size + x.shape[1] + ref.shape[1]
    assert plan["input"]["preserved"] is res.input_preserved


def test_input_and_output_share_the_arena_with_dead_tensors(external):
    """KWS: the input (490 B) is dead after the first conv, the output (12 B) born at the last op: both fit in
    space the intermediates no longer use, within 48 B of the intermediates-only plan (8,448 B)."""
    graph, steps, plan = plan_model(external_model(parity.EXTERNAL_MODELS["kws"]))
    by_tensor = {t: b for b in plan.buffers for t in b.tensors}
    bin_, bout = by_tensor[graph.inputs[0]], by_tensor[graph.outputs[0]]
    assert bin_.first == -1 and bout.last == max(s.index for s in steps) + 1
    assert plan.arena_size <= 8_448 + 48 and not plan.input_preserved and plan.input_reuse_saves > 0
    keep = plan_model(external_model(parity.EXTERNAL_MODELS["kws"]), keep_input=True)[2]
    assert keep.input_preserved and keep.arena_size == plan.arena_size + plan.input_reuse_saves


@pytest.mark.parametrize("kernels", ["fast", "dsp"])
def test_mlperf_ic_arena_with_io_within_0_6_of_tflm(external, kernels):
    """Issue 15: arena + I/O <= 0.6x TFLite-Micro's arena; ResNet-8 is the tightest (two 16 KB activations)."""
    from toolkit.runtimes import tflm_arena_bytes

    path = external_model(parity.EXTERNAL_MODELS["ic"])
    _, _, plan = plan_model(path, kernels=kernels)
    tflm = tflm_arena_bytes(path)
    assert plan.arena_size <= 0.6 * tflm, f"{plan.arena_size} B vs TFLite-Micro {tflm} B"


# ---- conv + ADD fusion ------------------------------------------------------------------------------------------


def _w(shape):
    return RNG.integers(-127, 128, size=shape, dtype=np.int8)


def _opts(padding, **kw):
    return dict(padding=padding, stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1, **kw)


def _residual(k: int, c: int, h: int, w: int, conv_scale: float, skip_scale: float, act: str = "NONE",
              variant: str = ""):
    """x -> 1x1 conv -> skip -> 1x1 conv -> a -> kxk conv -> y; ADD(skip, y). variant "self": ADD(skip, kxk conv of
    skip) (the conv reads the other operand); "late": ADD(pool(skip), y) with the pool after the kxk conv."""
    q = dict(scale=(0.05,), zero_point=(3,))
    tensors = [T((1, h, w, 4), **q), T((c, 1, 1, 4), data=_w((c, 1, 1, 4)), scale=(0.01,), zero_point=(0,)),
               T((1, h, w, c), scale=(skip_scale,), zero_point=(-2,)),
               T((c, 1, 1, c), data=_w((c, 1, 1, c)), scale=(0.004,), zero_point=(0,)),
               T((1, h, w, c), scale=(0.06,), zero_point=(1,)),
               T((c, k, k, c), data=_w((c, k, k, c)), scale=tuple(np.linspace(.001, .003, c)), zero_point=(0,) * c),
               T((1, h, w, c), scale=(conv_scale,), zero_point=(5,))]
    ops = [O("CONV_2D", (0, 1, -1), (2,), _opts("VALID")), O("CONV_2D", (2, 3, -1), (4,), _opts("VALID")),
           O("CONV_2D", (2 if variant == "self" else 4, 5, -1), (6,), _opts("SAME"))]
    other = 2
    if variant == "late":
        tensors.append(T((1, h, w, c), scale=(skip_scale,), zero_point=(-2,)))
        ops.append(O("MAX_POOL_2D", (2,), (7,), dict(padding="VALID", stride_w=1, stride_h=1, filter_width=1,
                                                      filter_height=1)))
        other = 7
    tensors.append(T((1, h, w, c), scale=(0.1,), zero_point=(-7,)))
    ops.append(O("ADD", (other, 6), (len(tensors) - 1,), dict(fused_activation_function=act)))
    return tensors, ops


FUSE_CASES = {  # name -> (model, fused?)
    "3x3-conv-output-larger-scale-odd-pixels-odd-channels": (_residual(3, 7, 5, 7, 0.08, 0.03), True),
    "3x3-conv-output-smaller-scale-relu": (_residual(3, 8, 6, 6, 0.03, 0.08, "RELU"), True),
    "1x1-conv-relu6": (_residual(1, 8, 4, 5, 0.06, 0.02, "RELU6"), True),
    "conv-reads-the-other-operand-not-fused": (_residual(3, 8, 4, 4, 0.08, 0.03, variant="self"), False),
    "other-operand-made-after-the-conv-not-fused": (_residual(3, 8, 4, 4, 0.08, 0.03, variant="late"), False),
}


@pytest.mark.parametrize("case", sorted(FUSE_CASES))
def test_conv_add_fusion_matches_tflm_on_host_and_qemu(case, tmp_path):
    """Fused where the ADD is the conv output's only reader and nothing reads the other operand in between: one
    call, the ADD in place over its other operand, same bytes as TFLite-Micro (host ASan/UBSan, QEMU Cortex-M4)."""
    from toolkit.codegen.mcu_run import run_on_qemu

    require_tool("gcc")
    (tensors, ops), fused = FUSE_CASES[case]
    path = tmp_path / "m.tflite"
    path.write_bytes(build_model(tensors, ops, [0], [len(tensors) - 1]))
    x = RNG.integers(-128, 128, size=(60, read_model(path).tensor(0).size), dtype=np.int8)
    ref = parity.run_tflm_flat(path, x)
    assert len(np.unique(ref)) > 8, "degenerate case: outputs barely vary"
    qemu = require_qemu_or_none()
    for mode in ("size", "speed"):
        _, steps, plan = plan_model(path, kernels="dsp", optimize=mode)
        conv, add = steps[2], steps[-1]
        if fused:
            assert conv.func.endswith("_add") and add.func == "" and conv.index in plan.inplace, (mode, conv.func)
            assert plan.location[conv.outputs[0]] == plan.location[conv.inputs[1]]  # the sum over the skip
        else:
            assert not conv.func.endswith("_add") and add.func == "et_dsp_add", (mode, conv.func)
        lib = tmp_path / f"lib-{mode}"
        generate(path, lib, kernels="dsp", optimize=mode)
        exe = compile_host(lib, tmp_path / f"run-{mode}", sanitize=True)
        np.testing.assert_array_equal(run_host(exe, x, ref.shape[1], timeout=300), ref, err_msg=mode)
        if qemu:
            np.testing.assert_array_equal(run_on_qemu(lib, x[:4], tmp_path / f"q-{mode}").outputs, ref[:4])


def require_qemu_or_none() -> bool:
    """QEMU and the cross compiler when present (EDGETK_REQUIRE_QEMU=1: required)."""
    import os
    import shutil

    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        return True
    if os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
        require_tool("qemu-system-arm")
        require_tool("arm-none-eabi-gcc")
    return False


def test_codegen_cli_prints_peak_ram(external, tmp_path, capsys):
    from toolkit.cli import main

    model = external_model(parity.EXTERNAL_MODELS["ad"])
    assert main(["codegen", str(model), "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    plan = json.loads((tmp_path / "c" / "plan.json").read_text())
    ram = plan["peak_ram_bytes"]
    assert f"RAM     peak {ram['arena_api']:,} B with edgetk_input/edgetk_run" in out
    assert f"{ram['with_copy_buffers']:,} B with edgetk_invoke" in out and ram["with_copy_buffers"] == ram["arena_api"] + 1280

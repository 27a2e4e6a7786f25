"""`edgetk codegen MODEL.tflite -o OUT`: the int8 model as a C99 library with a static arena."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("codegen", help="generate a C99 library (kernels + static arena) from an int8 .tflite")
    p.add_argument("model", type=Path, help="int8 .tflite file, or a bundle folder holding model_int8.tflite")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output folder (default: BUNDLE/c for a bundle, else ./<model name>_c)")
    p.add_argument("--kernels", default=None,
                   help="kernel set: fast (default; with --target, the target's), reference, or dsp (Cortex-M "
                        "DSP extension, portable C elsewhere); all are bit-exact with TFLite-Micro")
    p.add_argument("--optimize", choices=("size", "speed"), default="size",
                   help="size (default): int8 weights; speed: the dsp set stores conv/FC weights as int16 (twice "
                        "the flash, fewer instructions), with --target only as many layers as its flash holds")
    p.add_argument("--target", default=None,
                   help="target name (targets/*.toml): its kernel set and flash size")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    return p


def _resolve(model: Path, out: Path | None) -> tuple[Path, Path]:
    tfl = model / "model_int8.tflite" if model.is_dir() else model
    if not tfl.is_file():
        raise EdgetkError(f"no such model: {tfl}",
                          fix="pass an int8 .tflite file or a bundle folder written by `edgetk export`")
    _refuse_onnx(tfl)
    if out is None:
        out = tfl.parent / "c" if model.is_dir() else Path.cwd() / f"{tfl.stem}_c"
    return tfl, out


def _specialized(spec: dict, kernels: str) -> str:
    if not spec["dsp_steps"]:
        return " (no step specialised)" if kernels == "dsp" else " (weights as in the model; --optimize acts on the dsp set)"
    wide = spec["int16_weight_steps"]
    return (f": {spec['dsp_steps']} ops on dsp kernels, {len(wide)} with int16 weights, "
            f"{spec['weight_bytes']:,} B of weights and biases")


def _refuse_onnx(path: Path) -> None:
    """An ONNX model is not a corrupt flatbuffer: say what it is and how to get a .tflite from it."""
    from toolkit.importer.sniff import is_onnx_file

    if is_onnx_file(path):
        raise EdgetkError(f"{path} is an ONNX model, not a TFLite flatbuffer: codegen reads int8 .tflite files",
                          fix=f"run `edgetk import {path} -o BUNDLE` then `edgetk codegen BUNDLE/model_int8.tflite` "
                              "(or `edgetk codegen BUNDLE`)")


def _options(args: argparse.Namespace) -> dict:
    """generate() keywords from --kernels / --optimize / --target (the target's kernel set and flash)."""
    opts: dict = {"optimize": args.optimize}
    kernels = args.kernels
    if args.target:
        from toolkit.targets import get_target

        spec = get_target(args.target)
        kernels = kernels or spec.kernels or None
        opts["flash_bytes"] = spec.flash_bytes
    if kernels:
        opts["kernels"] = kernels
    return opts


def run(args: argparse.Namespace) -> int:
    from toolkit.codegen import generate

    tfl, out = _resolve(args.model, args.out)
    res = generate(tfl, out, **_options(args))
    plan = json.loads((out / "plan.json").read_text())
    if args.json:
        emit({"out_dir": str(res.out_dir), "arena_size": res.arena_size,
             "flash_estimate": res.flash_estimate, "macs": res.macs, "ops": list(res.ops),
             "files": list(res.files), "sha256": res.sha256, "kernels": res.kernels,
             "optimize": res.optimize, "specialized": plan["specialized"],
             "input": plan["input"], "output": plan["output"],
             "peak_ram_bytes": plan["peak_ram_bytes"]})
        return 0
    print(f"model   {tfl} (sha256 {res.sha256[:16]}…)")
    print(f"ops     {len(res.ops)}: {' '.join(res.ops)}")
    print(f"MACs    {res.macs:,}")
    print(f"arena   {res.arena_size:,} B (EDGETK_ARENA_SIZE; the input and output live in it: edgetk_input(), "
          f"edgetk_output(); input {'kept intact' if res.input_preserved else 'reused once read'})")
    print(f"RAM     peak {res.peak_ram:,} B with edgetk_input/edgetk_run; {res.peak_ram_with_copies:,} B with "
          f"edgetk_invoke (+ the caller's {res.input_bytes:,} B input and {res.output_bytes:,} B output buffers)")
    print(f"flash   ~{res.flash_estimate:,} B of const weights and params (+ kernel code)")
    print(f"kernels {res.kernels}, optimize {res.optimize}{_specialized(plan['specialized'], res.kernels)}")
    print(f"wrote   {out}/ ({len(res.files)} files: {', '.join(res.files)})")
    return 0

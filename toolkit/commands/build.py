"""`edgetk build BUNDLE|MODEL.tflite --target T`: compile the firmware (runtime + port + the bundle's generated C)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolkit.commands.profile import add_model_args
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `edgetk build`."""
    p = sub.add_parser("build", help="build the firmware of a bundle or .tflite for a target")
    add_model_args(p)
    p.add_argument("--target", required=True, help="target name (edgetk targets)")
    p.add_argument("-o", "--out", type=Path, default=None, help="build folder (default CACHE/build/<target>/<hash>, CACHE = $EDGETK_CACHE, $XDG_CACHE_HOME/edgetk or ~/.cache/edgetk)")
    return p


def build_bundle(args: argparse.Namespace, out: Path | None, *, port: str | None = None) -> tuple[Any, Any, Any, Any]:
    """Build and return (target adapter, firmware, bundle, MLPerf model key)."""
    from toolkit.hil.adapters import make_target
    from toolkit.hil.mlperf import resolve_key
    from toolkit.hil.runner import as_bundle, build_dir_for, c_library, firmware_spec
    from toolkit.fsio import path_lock
    from toolkit.hil.source import ModelSource
    from toolkit.paths import cache_dir
    from toolkit.targets import get_target

    bundle = as_bundle(ModelSource(args.bundle, inputs=args.inputs))
    key = resolve_key(bundle, args.mlperf_key)
    spec = firmware_spec(get_target(args.target), key)
    out = out or build_dir_for(spec, bundle)
    adapter = make_target(spec, port=port)
    with path_lock(cache_dir("build") / f".{bundle.sha256[:16]}.lock"):   # the lock `edgetk profile` takes
        return adapter, adapter.build(c_library(bundle, out, spec, args.optimize), out), bundle, key


def run(args: argparse.Namespace) -> int:
    """Build and print the image, its sizes and the MLPerf model key compiled in."""
    _, fw, bundle, key = build_bundle(args, args.out)
    if args.json:
        emit({"target": args.target, "firmware": str(fw.elf), "model": str(bundle.tflite), "sha256": bundle.sha256,
              "mlperf_key": key.key, "mlperf_key_source": key.source, "flash_bytes": fw.flash_bytes,
              "static_ram_bytes": fw.static_ram_bytes, "stack_bytes": fw.stack_bytes})
        return 0
    print(f"firmware: {fw.elf}")
    print(f"model: {bundle.tflite} (sha256 {bundle.sha256[:16]}…); MLPerf model key {key.key} ({key.source})")
    if fw.flash_bytes:
        print(f"flash {fw.flash_bytes:,} B, static RAM {fw.static_ram_bytes:,} B, stack {fw.stack_bytes:,} B "
              "(arm-none-eabi-size)")
    return 0

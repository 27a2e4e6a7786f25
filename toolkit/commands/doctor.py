"""`edgetk doctor`: what this machine has, and which targets can therefore run for real, emulated or simulated."""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from toolkit.tools import install_hint
from toolkit.output import emit

PACKAGES = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "nncf", "ai-edge-litert",
            "tflite-runtime", "tflite-micro", "flatbuffers", "safetensors", "pyserial",
            "scikit-learn", "sktime", "matplotlib", "pytest")
TOOLS = {
    "gcc": ("gcc", "--version"),
    "arm-none-eabi-gcc": ("arm-none-eabi-gcc", "--version"),
    "qemu-system-arm": ("qemu-system-arm", "--version"),
}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("doctor", help="list packages, toolchains, serial ports and what each target can do here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def package_versions() -> dict[str, str | None]:
    """Installed version of each Python package edgetk uses (None when absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def tool_versions() -> dict[str, str | None]:
    """First line of `TOOL --version` for each external tool (None when absent)."""
    out: dict[str, str | None] = {}
    for name, argv in TOOLS.items():
        if shutil.which(argv[0]) is None:
            out[name] = None
            continue
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
        out[name] = (proc.stdout or proc.stderr).strip().splitlines()[0]
    return out


def serial_ports() -> list[dict[str, str]]:
    """Serial ports pyserial can see, with USB ids where known."""
    from serial.tools import list_ports

    return [{"device": p.device, "description": p.description,
             "vid_pid": f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else ""}
            for p in list_ports.comports()]


KIND_LABEL = {"board": "real board", "qemu": "emulated (QEMU)", "host": "host simulator",
              "linux": "runs here (ONNX Runtime / LiteRT)"}


def target_modes() -> dict[str, str]:
    """For each target, what would run it on this machine: itself, or the first stand-in that can."""
    from toolkit.hil.runner import unavailable_reason
    from toolkit.targets import fallback_chain, load_targets

    modes = {}
    for name in load_targets():
        chain = fallback_chain(name)
        runnable = next((t for t in chain if unavailable_reason(t) is None), None)
        if runnable is None:
            modes[name] = "analytic estimate only"
        elif runnable.name == name:
            modes[name] = KIND_LABEL.get(runnable.kind, runnable.kind)
        else:
            modes[name] = f"absent: {runnable.name} stands in ({KIND_LABEL.get(runnable.kind, runnable.kind)})"
    return modes


def install_info() -> dict[str, str]:
    """edgetk's version, where it is installed, where its data folders and its cache are."""
    import toolkit
    from toolkit.paths import cache_dir, repo_dir

    return {"version": toolkit.__version__, "package": str(Path(toolkit.__file__).parent),
            "data": str(repo_dir("targets").parent), "cache": str(cache_dir())}


def run(args: argparse.Namespace) -> int:
    pkgs, tools, ports = package_versions(), tool_versions(), serial_ports()
    modes = target_modes()
    if args.json:
        emit({"edgetk": install_info(), "python": sys.version.split()[0], "packages": pkgs, "tools": tools,
              "serial_ports": ports, "targets": modes})
        return 0
    info = install_info()
    print(f"edgetk {info['version']} from {info['package']} (data: {info['data']}; cache: {info['cache']})")
    print(f"python {sys.version.split()[0]}")
    print("\npackages:")
    for name, v in pkgs.items():
        print(f"  {name:16s} {v or '-- not installed'}")
    print("\ntools:")
    for name, v in tools.items():
        print(f"  {name:18s} {v or '-- missing (' + install_hint(name) + ')'}")
    print("\nserial ports:")
    for p in ports or [{"device": "(none)", "description": "", "vid_pid": ""}]:
        print(f"  {p['device']:20s} {p['vid_pid']:10s} {p['description']}")
    if modes:
        print("\ntargets:")
        for name, mode in modes.items():
            print(f"  {name:16s} {mode}")
    return 0

"""Targets: build, flash, start/reset/stop a device and say where its figures come from.

A board, QEMU and the host simulator implement the same interface; the runner never asks which
one it has. Registry by target kind, one line each.
"""
from __future__ import annotations

import abc
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from toolkit.errors import EdgetkError
from toolkit.proc import free_port
from toolkit.tools import require_tool
from toolkit.hil.build import Firmware, build_firmware, firmware_root
from toolkit.hil.cycles import mean_classes
from toolkit.hil.ports import find_board_port
from toolkit.targets import TargetSpec, check_port

log = logging.getLogger(__name__)


class Target(abc.ABC):
    """A device under test: build, flash, start (returns the link URL), reset, stop."""

    #: how figures from this target are labelled in reports
    source = ""

    def __init__(self, spec: TargetSpec, *, port: str | None = None) -> None:
        self.spec = spec
        self.port = port
        self.firmware: Firmware | None = None
        self.classes = False  # emulators: also count instruction classes (toolkit.hil.cycles board estimates)

    def unavailable(self) -> str | None:
        """Why this target cannot run here (missing tool, no board), or None when it can."""
        tools = [self.spec.build.cc] if self.spec.build else []
        missing = [t for t in tools if shutil.which(t) is None]
        return f"{', '.join(missing)} not installed" if missing else None

    def build(self, lib_dir: str | Path, out_dir: str | Path) -> Firmware:
        """Compile the firmware with the given generated C library."""
        self.firmware = build_firmware(self.spec, lib_dir, out_dir)
        return self.firmware

    def flash(self, firmware: Firmware) -> None:
        """Put the firmware on the device (a no-op for emulators and the host simulator)."""
        self.firmware = firmware

    @abc.abstractmethod
    def start(self) -> str:
        """Boot the device; return the pyserial URL of its link."""

    def reset(self) -> None:
        """Reset the device (reboot the firmware)."""

    def stop(self) -> None:
        """Stop the device (kill emulator / simulator processes)."""

    def timing(self, ticks: int, runs: int, tick_hz: int, cycles: int) -> dict[str, object]:
        """Per-inference timing figures from device ticks, each labelled with its source."""
        ms = ticks / runs / tick_hz * 1e3
        return {"latency_ms": ms, "latency_source": self.source}

    def stage_timing(self, stages: dict[str, tuple[int, int]], runs: int, tick_hz: int) -> dict[str, dict[str, object]]:
        """Per-inference timing of each stage of `runs` inferences ({stage: (ticks, cycles)}, in the order the
        device marks them once per inference each), each figure labelled with its source."""
        return {name: self.timing(ticks, runs, tick_hz, cycles) for name, (ticks, cycles) in stages.items()}

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the Python process dies (Linux), so no emulator leaks."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_kwargs() -> dict[str, object]:
    return {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}



class QemuTarget(Target):
    """The firmware on QEMU (mps2): UART over TCP, -icount shift=0, monitor for resets."""

    source = "QEMU virtual time, -icount shift=0"

    def __init__(self, spec: TargetSpec, *, port: str | None = None) -> None:
        super().__init__(spec, port=port)
        self.proc: subprocess.Popen | None = None
        self.serial_port = self.monitor_port = 0
        self.log_path: Path | None = None

    def unavailable(self) -> str | None:
        """Missing compiler or emulator."""
        emulator = self.spec.emulator.command[0] if self.spec.emulator else ""
        missing = super().unavailable() or (None if shutil.which(emulator) else f"{emulator} not installed")
        return missing

    def start(self) -> str:
        """Launch QEMU with the firmware and wait until its UART socket accepts."""
        if self.firmware is None:
            raise EdgetkError("no firmware to boot", fix="build it first (Target.build)")
        self.stop()
        self.serial_port, self.monitor_port = free_port(), free_port()
        fill = {"elf": str(self.firmware.elf), "port": str(self.serial_port), "monitor": str(self.monitor_port)}
        cmd = [a.format(**fill) for a in self.spec.emulator.command] + self._plugin_args()
        self.log_path = self.firmware.elf.parent / "qemu.log"
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         **_child_kwargs())
        self._wait_listening(self.serial_port)
        return self.spec.connection.url.format(port=self.serial_port)

    def _plugin_args(self) -> list[str]:
        """-plugin arguments of the instruction counter, or [] when it cannot be built here."""
        self.insn_file = self.classes_file = None
        if not self.spec.emulator.insn_plugin:
            return []
        try:
            so = build_insn_plugin(self.firmware.elf.parent)
            marks = marker_addresses(self.firmware.elf, self.spec.build.size_tool.replace("size", "nm"))
        except EdgetkError as e:
            log.warning("instruction-count plugin unavailable (%s); reporting icount virtual time", e)
            return []
        self.insn_file = self.firmware.elf.parent / "insn_counts.txt"
        self.insn_file.write_text("")
        extra = ""
        if self.classes:  # slower (a callback per block and load): only when a board's cycles are estimated
            self.classes_file = self.firmware.elf.parent / "insn_classes.txt"
            self.classes_file.write_text("")
            extra = f",classes={self.classes_file}"
        return ["-plugin", f"{so},start={marks[0]:#x},stop={marks[1]:#x},outfile={self.insn_file}{extra}"]

    def _wait_listening(self, port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgetkError(f"QEMU exited with {self.proc.returncode}: "
                                  f"{self.log_path.read_text(errors='replace')[-500:]}",
                                  fix="check the emulator command in " + str(self.spec.path))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise EdgetkError(f"QEMU did not open its UART port {port} within {timeout:.0f} s",
                          fix="see " + str(self.log_path))

    def reset(self) -> None:
        """system_reset through the QEMU monitor: the firmware reboots, the link stays."""
        with socket.create_connection(("127.0.0.1", self.monitor_port), timeout=2) as s:
            s.sendall(b"system_reset\n")
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate QEMU."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _icount(self, ticks: int, runs: int) -> dict[str, object]:
        emu = self.spec.emulator
        ns = ticks * emu.ns_per_tick / runs
        return {"latency_ms": ns / 1e6, "latency_source": emu.timing_label,
                "instructions": ns / emu.ns_per_instruction, "icount_instructions": ns / emu.ns_per_instruction,
                "instructions_source": f"instructions (QEMU icount: {emu.timing_label}; "
                                       f"±{emu.ns_per_tick / runs / emu.ns_per_instruction:.0f} per inference)"}

    def timing(self, ticks: int, runs: int, tick_hz: int, cycles: int) -> dict[str, object]:
        """Instructions per inference from icount virtual time (1 ns = 1 instruction at shift=0), replaced by the
        TCG plugin's exact counts of the last N marked windows (`run N W` marks each of its N inferences; the link
        polls between them stay outside the count)."""
        out = self._icount(ticks, runs)
        counted = _last_counts(getattr(self, "insn_file", None), runs)
        if counted is not None:
            out.update(instructions=sum(counted) / runs, instructions_source=PLUGIN_SOURCE)
        classes = _last_classes(getattr(self, "classes_file", None), runs)
        if classes is not None:
            out["instruction_classes"] = mean_classes(classes)
        return out

    def stage_timing(self, stages: dict[str, tuple[int, int]], runs: int, tick_hz: int) -> dict[str, dict[str, object]]:
        """Per stage: icount figures, and the plugin's exact counts of the last len(stages) x runs marked windows
        (`rrun N W` marks each stage of each inference: frontend, network, frontend, network, ...)."""
        k = len(stages)
        counted = _last_counts(getattr(self, "insn_file", None), k * runs)
        out = {}
        for j, (name, (ticks, _)) in enumerate(stages.items()):
            out[name] = self._icount(ticks, runs)
            if counted is not None:
                out[name].update(instructions=sum(counted[j::k]) / runs, instructions_source=PLUGIN_SOURCE)
            classes = _last_classes(getattr(self, "classes_file", None), k * runs)
            if classes is not None:
                out[name]["instruction_classes"] = mean_classes(list(classes[j::k]))
        return out


PLUGIN_SOURCE = "instructions (QEMU TCG plugin, exact count; not cycles)"


def _last_counts(path: Path | None, n: int) -> list[int] | None:
    """The last n counts the instruction plugin wrote (None when it did not write that many)."""
    if path is None or not path.is_file():
        return None
    lines = path.read_text().split()
    return [int(v) for v in lines[-n:]] if len(lines) >= n else None


def _last_classes(path: Path | None, n: int) -> tuple[dict[str, int], ...] | None:
    """The last n windows of instruction classes the plugin wrote (None when it did not write that many)."""
    from toolkit.native.m4 import parse_classes

    if path is None or not path.is_file():
        return None
    windows = parse_classes(path.read_text())
    return windows[-n:] if len(windows) >= n else None


def build_insn_plugin(out_dir: Path) -> Path:
    """Compile firmware_stubs/qemu-plugin/insn_count.c into a shared object (once per folder)."""
    src = firmware_root() / "qemu-plugin" / "insn_count.c"
    so = Path(out_dir) / "insn_count.so"
    if so.is_file() and so.stat().st_mtime >= src.stat().st_mtime:
        return so
    require_tool("gcc", "build the QEMU instruction counter")
    proc = subprocess.run(["gcc", "-std=c99", "-D_DEFAULT_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-shared",
                           "-fPIC", str(src), "-o", str(so)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise EdgetkError(f"building the QEMU plugin failed: {proc.stderr[-800:]}", fix="check gcc")
    return so


def marker_addresses(elf: Path, nm: str) -> tuple[int, int]:
    """Addresses of edgetk_mark_start / edgetk_mark_stop in the firmware (from nm)."""
    require_tool(nm, "find the firmware's timing markers")
    out = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=60).stdout
    syms = {parts[2]: int(parts[0], 16) for parts in (ln.split() for ln in out.splitlines()) if len(parts) == 3}
    try:
        return syms["edgetk_mark_start"], syms["edgetk_mark_stop"]
    except KeyError as e:
        raise EdgetkError(f"marker symbol {e} not in {elf}", fix="rebuild the firmware") from e


class HostSimTarget(Target):
    """The firmware runtime compiled for this machine, behind a pty."""

    source = "host simulator, wall clock of this machine (functional check, not a board figure)"

    def __init__(self, spec: TargetSpec, *, port: str | None = None) -> None:
        super().__init__(spec, port=port)
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        """Launch the simulator; it prints the pty path it serves."""
        if self.firmware is None:
            raise EdgetkError("no firmware to run", fix="build it first (Target.build)")
        self.stop()
        self.proc = subprocess.Popen([str(self.firmware.elf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, **_child_kwargs())
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("pty "):
            self.stop()
            raise EdgetkError(f"host simulator did not start: {line!r}", fix="see build.log beside the binary")
        return self.spec.connection.url.format(pty=line[4:])

    def reset(self) -> None:
        """Restart the process (a new pty: call start() instead when the URL matters)."""
        self.start()

    def stop(self) -> None:
        """Kill the simulator process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            for f in (self.proc.stdout, self.proc.stderr):
                f.close()
        self.proc = None


class BoardTarget(Target):
    """A real board on a serial port, flashed with the target's flash command."""

    source = "measured on board (SysTick)"

    def _url(self) -> str | None:
        return self.port or self.spec.connection.url or find_board_port(self.spec)

    def unavailable(self) -> str | None:
        """No compiler, or no board attached; a --port that does not exist is an error, not a fallback."""
        if self.port and "://" not in self.port and not os.path.exists(self.port):
            raise EdgetkError(f"no such serial port: {self.port}",
                              fix="list ports with `edgetk ports`; on Linux prefer /dev/serial/by-id/...")
        if self._url() is None:
            ids = ", ".join(self.spec.usb_ids) or "none listed"
            return f"no board attached (no serial port with USB id {ids}; pass --port)"
        return super().unavailable()

    def flash(self, firmware: Firmware) -> None:
        """Run the flash command template (no shell) with {elf}, {bin}, {port}."""
        super().flash(firmware)
        if not self.spec.flash_command:
            return
        fill = {"elf": str(firmware.elf), "bin": str(firmware.bin), "port": self._url() or ""}
        cmd = [a.format(**fill) for a in self.spec.flash_command]
        if shutil.which(cmd[0]) is None:
            raise EdgetkError(f"flash tool {cmd[0]} not found", fix=f"install it, or edit flash.command in {self.spec.path}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise EdgetkError(f"flashing failed: {proc.stderr[-1500:]}", fix="check the probe connection and udev rules")

    def start(self) -> str:
        """The board runs after flashing; its URL is the port."""
        url = self._url()
        if url is None:
            raise EdgetkError(f"no {self.spec.name} attached", fix="plug it in or pass --port (see `edgetk ports`)")
        return url

    def timing(self, ticks: int, runs: int, tick_hz: int, cycles: int) -> dict[str, object]:
        """Real time from SysTick and real cycles from the DWT counter."""
        out = super().timing(ticks, runs, tick_hz, cycles)
        if cycles:
            out.update(cycles=cycles / runs, cycles_source="measured on board (DWT CYCCNT)")
        return out


ADAPTERS: dict[str, type[Target]] = {"qemu": QemuTarget, "host": HostSimTarget, "board": BoardTarget}


def make_target(spec: TargetSpec, *, port: str | None = None) -> Target:
    """The adapter for a target spec (a --port only for a board: targets.check_port)."""
    check_port(spec, port)
    if spec.kind not in ADAPTERS:
        raise EdgetkError(f"target {spec.name} ({spec.kind}) runs no firmware", fix="use toolkit.hil.profile for it")
    return ADAPTERS[spec.kind](spec, port=port)


def env_flag(name: str) -> bool:
    """True when the environment variable is set to 1."""
    return os.environ.get(name) == "1"

"""A device kept open for many inferences: what the pytest plugin's `dut` fixture hands to tests."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.hil.adapters import make_target
from toolkit.hil.bundle import Bundle
from toolkit.hil.protocol import DeviceInfo
from toolkit.hil.runner import Session, c_library, check_model, require_or_fallback
from toolkit.targets import TargetSpec, fallback_chain

log = logging.getLogger(__name__)


class HilDevice:
    """A booted device running a bundle's model: infer, time, read memory."""

    def __init__(self, spec: TargetSpec, bundle: Bundle, out_dir: Path, *, port: str | None = None,
                 requested: str = "", fallbacks: tuple[dict[str, str], ...] = ()) -> None:
        self.spec, self.bundle, self.out_dir = spec, bundle, out_dir
        self.requested = requested or spec.name
        self.fallbacks = fallbacks
        self.target = make_target(spec, port=port)
        self.session: Session | None = None
        self.info: DeviceInfo | None = None
        self.loaded = False

    def open(self) -> HilDevice:
        """Build, flash, boot, sync and check the model hash."""
        bdir = self.out_dir / "build"
        self.firmware = self.target.build(c_library(self.bundle, bdir, self.spec), bdir)
        self.target.flash(self.firmware)
        self.session = Session(self.target, self.out_dir).__enter__()
        self.info = check_model(self.session.dut, self.bundle)
        return self

    @property
    def source(self) -> str:
        """Which target produced the figures (after fallbacks)."""
        return self.spec.name

    def infer(self, x: np.ndarray) -> np.ndarray:
        """One inference of an int8 input (model layout, no batch axis); the int8 output, flat."""
        dut = self.session.dut
        dut.upload(np.ascontiguousarray(x, dtype=np.int8).tobytes())
        self.loaded = True
        r = dut.run(1, 0, output_size=self.info.output_size, timeout=self.session.policy.timeout_s * 6)
        return np.frombuffer(r.output, np.int8).copy()

    def infer_raw(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One raw window (int16, the frontend's raw shape) through the device's frontend and network:
        (int8 features, int8 output), both flat. Needs firmware built from a bundle with a frontend."""
        dut = self.session.dut
        dut.upload_raw(np.ascontiguousarray(raw, dtype="<i2").tobytes())
        self.loaded = True  # rrun leaves the features as the loaded model input
        r = dut.run_raw(1, 0, features_size=self.info.input_size, output_size=self.info.output_size,
                        timeout=self.session.policy.timeout_s * 6)
        return np.frombuffer(r.features, np.int8).copy(), np.frombuffer(r.output, np.int8).copy()

    def timed(self, runs: int = 10, warmup: int = 1) -> dict[str, Any]:
        """Steady-state timing on the loaded input (the bundle's first input if none): latency per inference."""
        if not self.loaded:
            self.infer(self.bundle.x[0])
        r = self.session.dut.run(runs, warmup, output_size=self.info.output_size,
                                 timeout=self.session.policy.timeout_s * 6 * runs)
        return {**self.target.timing(r.ticks, runs, self.info.tick_hz, r.cycles), "stack_bytes": r.stack_high_water}

    def memory(self) -> dict[str, int]:
        """Flash, static RAM, arena, stack high-water and the RAM total used for budgets."""
        mem = self.session.dut.mem()
        static = self.firmware.static_ram_bytes or mem.arena_bytes
        return {"flash_bytes": self.firmware.flash_bytes, "static_ram_bytes": static,
                "arena_bytes": mem.arena_bytes, "stack_high_water_bytes": mem.stack_high_water,
                "ram_bytes": static + mem.stack_high_water}

    def reset(self) -> None:
        """Reset the device (the firmware reboots; uploaded inputs are lost)."""
        self.target.reset()
        self.loaded = False

    def close(self) -> None:
        """Stop the device and save the transcript."""
        if self.session is not None:
            self.session.__exit__(None, None, None)
            self.session = None


def open_device(target: str, bundle: Bundle, out_dir: Path, *, port: str | None = None) -> HilDevice:
    """The first available device along the target's fallback chain, opened."""
    fallbacks = []
    for i, spec in enumerate(fallback_chain(target)):
        if spec.kind == "linux":
            continue
        reason = make_target(spec, port=port if i == 0 else None).unavailable()
        if reason:
            require_or_fallback(spec, reason)
            fallbacks.append({"target": spec.name, "reason": reason})
            continue
        dev = HilDevice(spec, bundle, out_dir / spec.name, port=port if i == 0 else None,
                        requested=target, fallbacks=tuple(fallbacks))
        return dev.open()
    raise EdgetkError(f"no device can stand in for {target}: " + "; ".join(f["reason"] for f in fallbacks),
                      fix="install gcc (host simulator) or qemu-system-arm + gcc-arm-none-eabi")



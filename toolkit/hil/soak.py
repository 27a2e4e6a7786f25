"""A link soak (issue #14): many inferences through the real client, a fault-injecting transport and the real
firmware on the host simulator (stand-in model and frontend), with byte drops, flips, inserts, stalls and device
resets. Every result is compared with the one the same device gave over the clean link; every failure is sorted
into: a clear error after an injected reset, an exchange that spent its whole retry budget, or one aborted with
retries left (a defect: a fault a retry could fix). bench/link_soak.py runs it long, tests a short one.
"""
from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.hil import protocol as P
from toolkit.hil.adapters import make_target
from toolkit.hil.dut import Dut, LinkPolicy
from toolkit.hil.faults import FaultyTransport
from toolkit.hil.fuzz_firmware import standin_features, standin_library
from toolkit.hil.transport import LinkClosedError, LinkSettings, Transport
from toolkit.targets import get_target

log = logging.getLogger(__name__)
BUDGET = "no valid reply after"   # the retrying client's message once every attempt failed


@dataclass
class SoakReport:
    """What a soak did, figure by figure."""

    inferences: int = 0
    correct: int = 0
    wrong_accepted: int = 0
    resets: int = 0
    reset_errors: int = 0            # clear errors that followed an injected reset
    budget_spent: int = 0            # exchanges that failed after every attempt of the retry budget
    aborted_with_retries_left: int = 0
    errors: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)
    budget_examples: list[str] = field(default_factory=list)

    def summary(self, label: str = "soak") -> str:
        """The figures, one per line."""
        f, s, rate = self.faults, self.stats, self.inferences / max(self.seconds, 1e-9)
        lines = [f"{label}: {self.inferences} inferences in {self.seconds:.0f} s ({rate:.1f}/s)",
                 f"  exchanges (command attempts): {s['commands']}, retries: {s['retries']}, "
                 f"re-uploads: {s['reuploads']}",
                 f"  faults injected: {sum(f.values())} ({_counts(f)}), device resets: {self.resets}",
                 f"  correct results: {self.correct}",
                 f"  wrong results accepted: {self.wrong_accepted}",
                 f"  clear errors: {sum(self.errors.values())} ({_counts(self.errors)})",
                 f"    after an injected reset: {self.reset_errors}",
                 f"    retry budget spent ({BUDGET} N attempts): {self.budget_spent}",
                 f"  exchanges aborted with retries left: {self.aborted_with_retries_left}"]
        lines += [f"    e.g. {e}" for e in self.examples[:5]]
        return "\n".join(lines)


def _counts(c: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"


class SoakDevice:
    """The host simulator running the stand-in model and frontend, behind a fault-injecting transport."""

    def __init__(self, work: Path, *, seed: int, policy: LinkPolicy) -> None:
        self.spec = get_target("host-sim")
        self.target = make_target(self.spec)
        self.target.build(standin_library(work / "lib", frontend=True), work / "build")
        self.faulty: FaultyTransport | None = None
        self.policy, self.seed = policy, seed
        self.restart()

    def restart(self) -> None:
        """Boot the simulator (again) and connect through the same fault injector, synced over a clean link."""
        inner = Transport(self.target.start(), LinkSettings.from_spec(self.spec.connection)).open()
        if self.faulty is None:
            self.faulty = FaultyTransport(inner, seed=self.seed)
            self.dut = Dut(self.faulty, self.policy)
        else:
            self.faulty.inner.close()
            self.faulty.inner = inner
        rate, self.faulty.rate = self.faulty.rate, 0.0
        self.dut.sync()
        self.faulty.rate = rate

    def close(self) -> None:
        if self.faulty is not None:
            self.faulty.close()
        self.target.stop()


def golden(dut: Dut, n: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """n inputs (alternately int8 inputs and raw windows) and the output the device gives over a clean link."""
    rng, out = np.random.default_rng(seed), []
    for i in range(n):
        if i % 2 == 0:
            x = rng.integers(-128, 128, 16, dtype=np.int8).tobytes()
            dut.upload(x)
            out.append(("run", x, dut.run(1, 0, output_size=4).output))
        else:
            raw = rng.integers(-32768, 32768, 32, dtype=np.int16).astype("<i2").tobytes()
            dut.upload_raw(raw)
            r = dut.run_raw(1, 0, features_size=16, output_size=4)
            if r.features != standin_features(raw):
                raise EdgetkError("the stand-in frontend on the device disagrees with its Python model",
                                  fix="rebuild the simulator from firmware_stubs/runtime/fuzz")
            out.append(("rrun", raw, r.features + r.output))
    return out


def _infer(dut: Dut, path: str, data: bytes) -> bytes:
    if path == "run":
        dut.upload(data)
        return dut.run(1, 0, output_size=4).output
    dut.upload_raw(data)
    r = dut.run_raw(1, 0, features_size=16, output_size=4)
    return r.features + r.output


def soak(work: str | Path, *, n: int, rate: float, seed: int = 0, retries: int = 3, timeout_s: float = 0.25,
         delay_rate: float = 0.0, reset_every: int = 0, pool: int = 64, baseline: int = 0) -> tuple[SoakReport, SoakReport]:
    """(baseline over the clean link, soak over the faulty one): n inferences (half bload+run, half rload+rrun),
    a device reset on average every `reset_every` inferences (0: none), stalls of up to 2 timeouts at delay_rate."""
    policy = LinkPolicy(timeout_s=timeout_s, retries=retries, sync_timeout_s=0.2)
    dev = SoakDevice(Path(work), seed=seed, policy=policy)
    try:
        t0 = time.monotonic()
        gold = golden(dev.dut, pool, seed)
        base = SoakReport(inferences=pool, correct=pool, seconds=time.monotonic() - t0)
        base.stats.update(dev.dut.stats)
        for path, data, want in (gold * (baseline // pool + 1))[:baseline]:  # more clean inferences, compared too
            ok = _infer(dev.dut, path, data) == want
            base.inferences, base.correct, base.wrong_accepted = base.inferences + 1, base.correct + ok, \
                base.wrong_accepted + (not ok)
        base.seconds = time.monotonic() - t0
        base.stats = Counter(dev.dut.stats)
        dev.dut.stats = {k: 0 for k in dev.dut.stats}
        f = dev.faulty
        f.rate, f.delay_rate, f.max_delay_s = rate, delay_rate, 2 * timeout_s
        return base, _soak(dev, gold, n, random.Random(seed), reset_every)
    finally:
        dev.close()


def _soak(dev: SoakDevice, gold: list[tuple[str, bytes, bytes]], n: int, rng: random.Random,
          reset_every: int) -> SoakReport:
    rep, t0 = SoakReport(), time.monotonic()
    for i in range(n):
        path, data, want = gold[rng.randrange(len(gold))]
        reset = bool(reset_every) and rng.random() < 1 / reset_every
        rep.inferences += 1
        try:
            got = _reset_then_infer(dev, path, data, rng) if reset else _infer(dev.dut, path, data)
        except (P.LinkError, P.DeviceError, P.DeviceResetError, LinkClosedError, EdgetkError) as e:
            _sort(rep, e, reset, f"#{i} {path}")
            if isinstance(e, LinkClosedError):
                dev.restart()
            continue
        finally:
            rep.resets += reset
        if got == want:
            rep.correct += 1
        else:
            rep.wrong_accepted += 1
            rep.examples.append(f"#{i} {path}: accepted {got.hex()} for {want.hex()}")
    rep.seconds = time.monotonic() - t0
    rep.faults, rep.stats = Counter(dev.faulty.faults), Counter(dev.dut.stats)
    return rep


def _reset_then_infer(dev: SoakDevice, path: str, data: bytes, rng: random.Random) -> bytes:
    """Half the resets power the device off before the upload (the link closes), half reboot it between the
    upload and the run (it lost what was uploaded); either way a clear error must follow, never a result."""
    if rng.random() < 0.5:
        dev.target.stop()
        return _infer(dev.dut, path, data)
    (dev.dut.upload if path == "run" else dev.dut.upload_raw)(data)
    dev.restart()
    if path == "run":
        return dev.dut.run(1, 0, output_size=4).output
    r = dev.dut.run_raw(1, 0, features_size=16, output_size=4)
    return r.features + r.output


def _sort(rep: SoakReport, e: Exception, reset: bool, where: str) -> None:
    rep.errors[type(e).__name__] += 1
    if reset:
        rep.reset_errors += 1
    elif BUDGET in str(e):
        rep.budget_spent += 1
        rep.budget_examples.append(f"{where}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    else:
        rep.aborted_with_retries_left += 1
        rep.examples.append(f"{where}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")

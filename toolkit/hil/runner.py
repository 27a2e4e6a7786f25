"""The HIL runner: build → flash → boot → check the model hash → upload → infer → validate → report.

The fallback chain of the requested target (board → emulator → host simulator) is walked until a
device is available; when none is, the figures are an analytic estimate. Every figure carries the
name of what produced it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import statistics
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.fsio import path_lock
from toolkit.tools import APT_PACKAGES, install_hint
from toolkit.hil import protocol as P
from toolkit.hil.adapters import Target, make_target
from toolkit.hil.build import with_defines
from toolkit.hil.bundle import Bundle
from toolkit.hil.checks import Check, Limits, evaluate, failed, score
from toolkit.hil.dut import Dut, LinkPolicy, Transcript
from toolkit.hil.fidelity import agreement
from toolkit.hil.mlperf import ModelKey, resolve_key
from toolkit.hil.source import ModelSource, open_bundle
from toolkit.hil.transport import LinkClosedError, LinkSettings, Transport
from toolkit.paths import cache_dir
from toolkit.progress import bar, stage
from toolkit.targets import TargetSpec, check_port, fallback_chain

log = logging.getLogger(__name__)

TIMED_RUNS = 10  # inferences in the steady-state timing run (finer tick resolution)


class ModelMismatchError(EdgetkError):
    """The device runs a different model than the bundle: profiling it would measure the wrong thing."""


@dataclass(frozen=True)
class ProfileResult:
    """A profile: the report dict (figures with their sources) and the files written."""

    report: dict[str, Any]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    @property
    def failed(self) -> list[Check]:
        """The checks that failed under the limits the profile ran with."""
        return failed(self.checks)

    @property
    def html_path(self) -> Path | None:
        return self.files.get("html")

    @property
    def source(self) -> str:
        return str(self.report["ran_on"])

    def summary(self) -> str:
        """A few lines for the terminal."""
        from toolkit.hil.report import summary_lines

        return "\n".join(summary_lines(self.report))


class JsonlLog:
    """Results appended one line at a time, flushed, so an interrupted run keeps what it measured."""

    def __init__(self, path: Path, on_row: Callable[[], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.on_row = on_row  # after each row (progress display)
        path.write_text("")

    def append(self, row: dict[str, Any]) -> None:
        """Append one JSON line and fsync."""
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.on_row is not None:
            self.on_row()


def build_dir_for(spec: TargetSpec, bundle: Bundle) -> Path:
    """<cache>/build/<target>/<bundle-hash>/ (toolkit.paths.cache_dir; never the package or the checkout)."""
    return cache_dir("build", spec.name, bundle.sha256[:16])


def c_library(bundle: Bundle, build_dir: Path, spec: TargetSpec | None = None, optimize: str = "size") -> Path:
    """The bundle's generated C when it was made with the target's kernel set and `optimize` (and, for a bundle
    with a frontend, holds the frontend's C exactly as frontend.json regenerates it); else a fresh codegen of
    the .tflite for the target (its kernel set, its flash for `optimize = "speed"`) into build_dir."""
    from toolkit.codegen import generate
    from toolkit.codegen.kernel_sets import DEFAULT

    kernels = (spec.kernels if spec is not None else "") or DEFAULT
    if (bundle.c_dir is not None and _c_made_with(bundle.c_dir, kernels, optimize)
            and (not bundle.has_frontend or _frontend_c_matches(bundle))):
        return bundle.c_dir
    return generate(bundle.tflite, build_dir / f"c-{kernels}-{optimize}", kernels=kernels, optimize=optimize,
                    flash_bytes=spec.flash_bytes if spec is not None else None,
                    frontend=bundle.frontend if bundle.has_frontend else None).out_dir


def _c_made_with(c_dir: Path, kernels: str, optimize: str) -> bool:
    """Whether a generated library's plan.json names this kernel set and optimize mode."""
    try:
        plan = json.loads((c_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return False
    return plan.get("kernels") == kernels and plan.get("optimize", "size") == optimize


def codegen_facts(lib_dir: Path) -> dict[str, Any]:
    """What the report says about the generated C the firmware ran: kernel set, optimize mode, arena."""
    try:
        plan = json.loads((Path(lib_dir) / "plan.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"kernels": plan.get("kernels"), "optimize": plan.get("optimize", "size"),
            "arena_bytes": plan.get("arena_size"), "library": str(lib_dir)}


def _frontend_c_matches(bundle: Bundle) -> bool:
    from toolkit.frontends import frontend_from_info

    c = bundle.c_dir
    files = frontend_from_info(bundle.frontend).sources()
    return all((c / name).is_file() and (c / name).read_text() == text for name, text in files.items())


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _latency(samples: list[dict[str, Any]], steady: dict[str, Any]) -> dict[str, Any]:
    per = [float(s["latency_ms"]) for s in samples]
    return {"per_inference_ms": steady["latency_ms"], "median_ms": statistics.median(per) if per else 0.0,
            "p90_ms": _percentile(per, 90), "min_ms": min(per, default=0.0), "max_ms": max(per, default=0.0),
            "samples_ms": per, "source": steady["latency_source"]}


def _extra_timing(steady: dict[str, Any], macs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "instructions" in steady:
        out["instructions"] = {"per_inference": steady["instructions"],
                               "per_mac": steady["instructions"] / macs if macs else None,
                               "source": steady["instructions_source"]}
        if steady.get("instruction_classes"):
            out["instructions"]["classes"] = steady["instruction_classes"]
    if "cycles" in steady:
        out["cycles"] = {"per_inference": steady["cycles"],
                         "per_mac": steady["cycles"] / macs if macs else None, "source": steady["cycles_source"]}
    return out


class Session:
    """One device session: a started Target, an open Transport and the protocol client."""

    def __init__(self, target: Target, out_dir: Path, policy: LinkPolicy | None = None) -> None:
        self.target = target
        self.out_dir = out_dir
        conn = target.spec.connection
        self.policy = policy or LinkPolicy(timeout_s=conn.timeout_s, retries=conn.retries)
        self.transport: Transport | None = None
        self.dut: Dut | None = None

    def __enter__(self) -> Session:
        try:
            url = self.target.start()
            self.transport = Transport(url, LinkSettings.from_spec(self.target.spec.connection)).open()
            self.dut = Dut(self.transport, self.policy, Transcript())
            self.dut.sync()
        except BaseException:
            self.__exit__(None, None, None)  # never leave an emulator running behind a failed start
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dut is not None:
            self.dut.transcript.save(self.out_dir / "transcript.log")
        if self.transport is not None:
            self.transport.close()
        self.target.stop()


def check_model(dut: Dut, bundle: Bundle) -> Any:
    """The device's build info, after refusing a device that runs a different model."""
    info = dut.info()
    if info.sha256 != bundle.sha256:
        raise ModelMismatchError(
            f"the device runs model {info.sha256[:16]}…, the bundle is {bundle.sha256[:16]}…: refusing to profile",
            fix=f"flash this bundle first: edgetk flash {bundle.path} --target <target>")
    return info


MODEL_LINE = re.compile(r"^m-model-\[([^]]+)]$")  # the MLCommons runner's pattern for the model key


def mlperf_answer(dut: Dut) -> str | None:
    """The model key the firmware answers to `profile%` (what the MLCommons runner reads)."""
    reply = dut.command("profile%", checked=False)
    return next((m.group(1) for ln in reply.lines if (m := MODEL_LINE.match(ln))), None)


def _row(i: int, bundle: Bundle, out: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    row = {"sample": i, "output": out.reshape(-1).tolist(), "reference": ref.reshape(-1).tolist(),
           "max_lsb_diff": int(np.abs(out.astype(int) - ref).max())}
    if bundle.reference_out is not None:
        row["max_lsb_diff_golden"] = int(np.abs(out.astype(int) - bundle.reference_out[i].reshape(out.shape)).max())
    if bundle.y is not None:
        row["label"] = bundle.y[i].item()
        if bundle.kind != "anomaly":
            row["device_class"] = int(out.reshape(-1).argmax())
    return row


def measure(session: Session, bundle: Bundle, samples: int, log_rows: JsonlLog) -> dict[str, Any]:
    """Upload samples, run them, compare with TFLite-Micro, time the steady state, read memory.

    A device that fails part way (errors, no valid reply after the retries, a reset) ends the
    measurement: what was measured is kept and `error` says what happened.
    """
    from toolkit.runtimes import run_tflm

    dut, target = session.dut, session.target
    info = check_model(dut, bundle)
    if bundle.has_frontend and info.raw_size:
        from toolkit.hil.raw import measure_raw

        return measure_raw(session, bundle, samples, log_rows, info, _row)
    x = bundle.x[:samples]
    ref = run_tflm(bundle.tflite, x)
    m: dict[str, Any] = {"info": info, "rows": [], "outputs": [], "reference": ref, "steady": None, "mem": None,
                         "stack_run": 0, "error": None, "mlperf_answer": None,
                         "raw_skipped": "the firmware was built without the frontend" if bundle.has_frontend else None}
    try:
        m["mlperf_answer"] = mlperf_answer(dut)
        for i, xi in enumerate(x):
            dut.upload(np.ascontiguousarray(xi).tobytes())
            r = dut.run(1, 0, output_size=info.output_size, timeout=session.policy.timeout_s * 6)
            out = np.frombuffer(r.output, np.int8).reshape(ref[i].shape)
            row = {**_row(i, bundle, out, ref[i]), "ticks": r.ticks, **target.timing(r.ticks, 1, info.tick_hz, r.cycles),
                   "stack_bytes": r.stack_high_water}
            log_rows.append(row)
            m["rows"].append(row)
            m["outputs"].append(out)
        r = dut.run(TIMED_RUNS, 1, output_size=info.output_size, timeout=session.policy.timeout_s * 6 * TIMED_RUNS)
        m.update(steady=target.timing(r.ticks, TIMED_RUNS, info.tick_hz, r.cycles), mem=dut.mem(),
                 stack_run=r.stack_high_water)
    except (P.DeviceError, P.LinkError, P.DeviceResetError, LinkClosedError) as e:
        m["error"] = f"after {len(m['outputs'])} of {len(x)} samples: {str(e).splitlines()[0]}"
        log.error("the device failed %s", m["error"])
    return m


def _firmware_report(spec: TargetSpec, target: Target, bundle: Bundle, m: dict[str, Any], dut: Dut) -> dict[str, Any]:
    fw, info = target.firmware, m["info"]
    macs = info.macs or bundle.macs
    mem = m["mem"]
    stack = max([mem.stack_high_water if mem else 0, m["stack_run"]] + [r["stack_bytes"] for r in m["rows"]])
    steady = m["steady"] or (dict(m["rows"][-1]) if m["rows"] else {"latency_ms": None, "latency_source": target.source})
    outs = np.stack(m["outputs"]) if m["outputs"] else None
    zp = int(bundle.io("output").get("zero_point", 0))
    return {
        "ran_on": spec.name, "device": {"board": info.board, "timer": info.timer, "tick_hz": info.tick_hz},
        "device_error": m["error"],
        "model": {"sha256": bundle.sha256, "macs": macs, "tflite": str(bundle.tflite), "kind": bundle.kind},
        "latency": _latency(m["rows"], steady), **_extra_timing(steady, macs),
        "memory": {"flash_bytes": fw.flash_bytes or None, "static_ram_bytes": fw.static_ram_bytes or None,
                   "arena_bytes": info.arena_bytes, "stack_high_water_bytes": stack or None,
                   "stack_reserved_bytes": fw.stack_bytes or None,
                   "source": {"flash/static RAM": spec.build.size_tool or "n/a (host binary)",
                              "arena": "generated C (EDGETK_ARENA_SIZE)",
                              "stack": "stack painting on the device" if stack else "n/a on this target"}},
        "fidelity": {**agreement(outs, m["reference"][:len(outs)], zero_point=zp),
                     "reference": "TFLite-Micro reference kernels (tflite-micro)",
                     "transport": "outputs returned over the serial link, CRC-checked"} if outs is not None else {},
        "link": dict(dut.stats),
        "mlperf_answer": m["mlperf_answer"],
        "_outputs": outs, "_reference": m["reference"],
        **(_raw_report(spec, bundle, m, outs) if bundle.has_frontend else {}),
    }


def device_words(spec: TargetSpec) -> str:
    """What the device is, in a few words (the target description up to its first comma or colon)."""
    return re.split(r"[,:]", spec.description or spec.name)[0].strip() or spec.name


def _raw_report(spec: TargetSpec, bundle: Bundle, m: dict[str, Any], outs: np.ndarray | None) -> dict[str, Any]:
    from toolkit.hil.raw import frontend_report, pipeline_report, raw_accuracy

    out = {"frontend": frontend_report(bundle, m, device_words(spec))}
    if m.get("raw"):
        out.update(pipeline=pipeline_report(m), raw_accuracy=raw_accuracy(bundle, outs, m["reference"]))
    return out


def profile_firmware(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, port: str | None, samples: int,
                     build_dir: Path | None = None, optimize: str = "size", classes: bool = False) -> dict[str, Any]:
    """Profile on a firmware target (board, QEMU or host simulator): same code path for all three. `classes`:
    an emulator also counts instruction classes (for a board's cycle estimate)."""
    target = make_target(spec, port=port)
    target.classes = classes
    bdir = build_dir or build_dir_for(spec, bundle)
    with stage(f"C library for {spec.name} ({optimize})"):
        lib = c_library(bundle, bdir, spec, optimize)
    fw = target.build(lib, bdir)
    target.flash(fw)
    with bar(f"{spec.name}: upload + run", samples, "sample") as b:
        rows = JsonlLog(out_dir / "results.jsonl", on_row=lambda: b.advance(1))
        with Session(target, out_dir) as s:
            m = measure(s, bundle, samples, rows)
            report = _firmware_report(spec, target, bundle, m, s.dut)
    report["transcript"] = str(out_dir / "transcript.log")
    report["codegen"] = codegen_facts(lib)
    return report


def estimate(spec: TargetSpec, bundle: Bundle) -> dict[str, Any]:
    """The analytic estimate: MACs × cycles per MAC ÷ clock, memory from the manifest."""
    cycles = bundle.macs * spec.cycles_per_mac
    ms = cycles / spec.clock_hz * 1e3 if spec.clock_hz and cycles else None
    label = f"estimate: {bundle.macs} MACs × {spec.cycles_per_mac} cycles/MAC ÷ {spec.clock_hz / 1e6:.0f} MHz"
    return {"ran_on": "estimate", "model": {"sha256": bundle.sha256, "macs": bundle.macs, "kind": bundle.kind},
            "latency": {"per_inference_ms": ms, "median_ms": ms, "samples_ms": [], "source": label},
            "memory": {"arena_bytes": bundle.manifest.get("tflm_arena_bytes"),
                       "source": {"arena": "estimate: TFLite-Micro arena from the manifest"}},
            "fidelity": {}, "link": {}}


def require_or_fallback(spec: TargetSpec, reason: str) -> None:
    """Raise when EDGETK_REQUIRE_HW / EDGETK_REQUIRE_QEMU forbid falling back from this target."""
    if spec.kind == "board" and os.environ.get("EDGETK_REQUIRE_HW") == "1":
        raise EdgetkError(f"{spec.name}: {reason}", fix="EDGETK_REQUIRE_HW=1 demands the real board: attach it")
    if spec.kind == "qemu" and os.environ.get("EDGETK_REQUIRE_QEMU") == "1":
        raise EdgetkError(f"{spec.name}: {reason}", fix="EDGETK_REQUIRE_QEMU=1 demands the emulator: "
                          f"{install_hint('qemu-system-arm')} {APT_PACKAGES['arm-none-eabi-gcc']}")


def _linux_local(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, port: str | None, samples: int,
                 build_dir: Path | None = None, optimize: str = "size", classes: bool = False) -> dict[str, Any]:
    from toolkit.hil.linux_local import profile_linux_local

    return profile_linux_local(spec, bundle, out_dir, samples=samples)


def _linux_ssh(spec: TargetSpec, bundle: Bundle, out_dir: Path, *, port: str | None, samples: int,
               build_dir: Path | None = None, optimize: str = "size", classes: bool = False) -> dict[str, Any]:
    from toolkit.hil.ssh import profile_ssh

    return profile_ssh(spec, bundle, out_dir, samples=samples)


def _firmware(spec: TargetSpec, bundle: Bundle, out_dir: Path, **kw: Any) -> dict[str, Any]:
    return profile_firmware(spec, bundle, out_dir, **kw)


PROFILERS: dict[str, Callable[..., dict[str, Any]]] = {
    "board": _firmware, "qemu": _firmware, "host": _firmware, "linux": _linux_local,
    "linux-ssh": _linux_ssh}


def board_estimate(board: TargetSpec, report: Mapping[str, Any]) -> dict[str, Any] | None:
    """Latency on the requested board estimated from what its emulator ran (labelled as an estimate): the
    instruction classes priced by the core's cost table and the board's [cycles] memory (toolkit.hil.cycles),
    per stage too for raw-input runs; else instructions x cycles_per_instruction."""
    from toolkit.hil import cycles as C

    insns = (report.get("instructions") or {}).get("per_inference")
    if insns is None or not board.clock_hz:
        return None
    classes = (report.get("instructions") or {}).get("classes")
    if classes and board.cycles and board.core in C.CORES:
        memory = C.MemoryModel.from_table(dict(board.cycles))
        costs = C.core_costs(board.core)
        est = C.estimate(classes, costs, memory)
        out = {"latency_ms": est.ms(board.clock_hz), "cycles": est.cycles,
               "cycles_parts": {k: round(v) for k, v in est.parts.items()},
               "method": "instruction classes",
               "source": f"{C.LABEL}: {board.core} cost table, {board.name} memory "
                         f"({memory.flash_wait_states} flash wait states, ART {'on' if memory.art else 'off'}, "
                         f"{memory.fetch_stall_per_line} cycles per 8-byte line; {memory.calibration}) "
                         f"at {board.clock_hz / 1e6:.0f} MHz, not measured"}
        stages = {name: C.estimate(st["instruction_classes"], costs, memory).ms(board.clock_hz)
                  for name, st in (report.get("pipeline") or {}).items()
                  if isinstance(st, dict) and st.get("instruction_classes")}
        if stages:
            out["stages_ms"] = stages
        return out
    if not board.cycles_per_instruction:
        return None
    return {"latency_ms": insns * board.cycles_per_instruction / board.clock_hz * 1e3, "method": "flat",
            "source": f"estimate: QEMU instructions × {board.cycles_per_instruction} cycles/instruction ÷ "
                      f"{board.clock_hz / 1e6:.0f} MHz ({board.name}; no instruction classes), not measured"}


def unavailable_reason(spec: TargetSpec, port: str | None = None) -> str | None:
    """Why this target cannot run here now (None when it can)."""
    if spec.kind in ("linux", "linux-ssh"):  # a robot that cannot be reached is an error that says why
        return None
    return make_target(spec, port=port).unavailable()


def as_bundle(model: str | os.PathLike | ModelSource | Bundle, samples: int | None = None) -> Bundle:
    """A Bundle from a bundle folder, a MODEL.tflite, a ModelSource or a Bundle."""
    if isinstance(model, Bundle):
        return model
    src = model if isinstance(model, ModelSource) else ModelSource(Path(model), samples=samples)
    return open_bundle(src)


def firmware_spec(spec: TargetSpec, key: ModelKey) -> TargetSpec:
    """The target as built for this model: the MLPerf model key compiled in (dut.c cmd_profile)."""
    return with_defines(spec, key.define)


def _run_chain(target: str, bundle: Bundle, out: Path, *, port: str | None, samples: int, key: ModelKey,
               build_dir: Path | None, optimize: str = "size") -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The report of the first available target along the chain (else the estimate) and the fallbacks."""
    chain, fallbacks = fallback_chain(target), []
    check_port(chain[0], port)
    for i, spec in enumerate(chain):
        reason = unavailable_reason(spec, port if i == 0 else None)
        if reason:
            require_or_fallback(spec, reason)
            fallbacks.append({"target": spec.name, "reason": reason})
            log.warning("%s unavailable (%s); falling back", spec.name, reason)
            continue
        classes = i > 0 and spec.kind == "qemu" and bool(chain[0].cycles)  # the board's cycles are estimated
        return PROFILERS[spec.kind](firmware_spec(spec, key), bundle, out, port=port if i == 0 else None,
                                    samples=samples, build_dir=build_dir, optimize=optimize,
                                    classes=classes), fallbacks
    return estimate(chain[0], bundle), fallbacks


def profile(bundle_dir: str | os.PathLike | ModelSource | Bundle, target: str, *, port: str | None = None,
            samples: int | None = 20, out_dir: str | os.PathLike | None = None,
            build_dir: str | os.PathLike | None = None, limits: Limits = Limits(),
            mlperf_key: str | None = None, optimize: str = "size", layers: bool | None = None,
            lab: Mapping[str, Any] | None = None) -> ProfileResult:
    """Profile a bundle (or an int8 .tflite) on a target (or what stands in for it); write JSON, Markdown
    and HTML reports with the figures, where each came from, and the checks under `limits`.

    `samples=None` runs every test input of the bundle. Firmware targets run C generated with the target's
    kernel set and `optimize` ("size": int8 weights; "speed": int16 weights where the target's flash allows).
    `layers`: the per-layer run on QEMU targets (None: on unless EDGETK_PROFILE_LAYERS=0).
    `lab`: the lab place the board was reserved on (toolkit.hil.lab), recorded in the report.
    """
    if layers is None:
        layers = os.environ.get("EDGETK_PROFILE_LAYERS", "1") != "0"
    bundle = as_bundle(bundle_dir, samples)
    n = len(bundle.x) if samples is None else min(samples, len(bundle.x))
    key = resolve_key(bundle, mlperf_key)
    out = Path(out_dir) if out_dir else bundle.path / f"profile-{target}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # One profile of a bundle at a time: its C library and firmware are regenerated into one cache folder per
    # bundle and target, and the per-layer run below compiles from that library again.
    with path_lock(cache_dir("build") / f".{bundle.sha256[:16]}.lock"):
        return _profile_locked(bundle, target, out, t0, n=n, key=key, port=port, build_dir=build_dir,
                               limits=limits, optimize=optimize, layers=layers, lab=lab)


def _profile_locked(bundle: Bundle, target: str, out: Path, t0: float, *, n: int, key: Any, port: str | None,
                    build_dir: str | os.PathLike | None, limits: Limits, optimize: str,
                    layers: bool, lab: Mapping[str, Any] | None = None) -> ProfileResult:
    from toolkit.hil.report import enrich, record_history, write_reports

    report, fallbacks = _run_chain(target, bundle, out, port=port, samples=n, key=key,
                                   build_dir=Path(build_dir) if build_dir else None, optimize=optimize)
    if fallbacks and "instructions" in report:
        report["board_estimate"] = board_estimate(fallback_chain(target)[0], report)
    if bundle.has_frontend and "frontend" not in report:
        report["frontend"] = {"type": bundle.frontend.get("type"), "ran": False,
                              "why": f"{report['ran_on']} ran the network only, on the bundle's features"}
    raw = bool((report.get("frontend") or {}).get("ran"))
    device_outputs = report.pop("_outputs", None)
    report.update(score(bundle, device_outputs, report.pop("_reference", None), raw=raw))
    report.update(target=target, fallbacks=fallbacks, samples=n, wall_s=time.monotonic() - t0,
                  fidelity_stages=bundle.fidelity, inputs=bundle.raw_label if raw else bundle.inputs_label, random_inputs=bundle.random_inputs,
                  bundle=str(bundle.path),
                  mlperf={"key": key.key, "source": key.source, "firmware_answered": report.pop("mlperf_answer", None)})
    if lab is not None:
        report["lab"] = dict(lab)
    checks = evaluate(report, limits)
    report["checks"] = [c.to_dict() for c in checks]
    report["limits"] = dataclasses.asdict(limits)
    with stage("reports: per layer (QEMU targets), accuracy, capacity, history"):
        report.update(enrich(report, bundle, target, out, device_outputs, layers=layers))
        report["history"] = record_history(report, out)
        files = write_reports(report, out)
    return ProfileResult(report=report, out_dir=out, files=files, checks=tuple(checks))

"""Profile reports: JSON (everything), Markdown (the figures), HTML (figures + plots as base64 PNG)."""
from __future__ import annotations

import base64
import json
import html
import io
import logging
from pathlib import Path
from typing import Any

from toolkit.fsio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.4g}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def figure_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, source) rows, the heart of every report format (pure)."""
    lat, mem = report.get("latency", {}), report.get("memory", {})
    src = mem.get("source", {})
    pipe = report.get("pipeline")
    rows = latency_rows(report)
    est = report.get("board_estimate")
    if est:
        rows.append((f"latency on {report['target']} (estimate)", _fmt(est["latency_ms"], " ms"), est["source"]))
    for key in ("instructions", "cycles"):
        if key in report:
            d = report[key]
            net = " (network)" if pipe else ""
            rows.append((f"{key} per inference{net}", _fmt(d["per_inference"]), d["source"]))
            rows.append((f"{key} per MAC{net}", _fmt(d["per_mac"]), d["source"]))
    rows += pipeline_rows(pipe, measured=lat.get("measured", True))
    rows += [("flash", _fmt(mem.get("flash_bytes"), " B"), src.get("flash/static RAM", "")),
             ("static RAM", _fmt(mem.get("static_ram_bytes"), " B"), src.get("flash/static RAM", "")),
             ("arena", _fmt(mem.get("arena_bytes"), " B"), src.get("arena", "")),
             ("stack high-water", _fmt(mem.get("stack_high_water_bytes"), " B"), src.get("stack", ""))]
    if "peak_rss_bytes" in mem:
        rows.append(("peak RSS", _fmt(mem["peak_rss_bytes"], " B"), src.get("peak RSS", "")))
    if "p99_ms" in lat:
        rows.append(("latency p99", _fmt(lat["p99_ms"], " ms"), lat.get("source", "")))
    rows = [r for r in rows if r[1] != "n/a" or report.get("ran_on") != "linux-local"]
    fid = report.get("fidelity", {})
    if fid:
        rows.append(("outputs vs reference (agreement)",
                     f"top-1 agreement {fid['top1_agreement']:.3f}, max {fid['max_lsb_diff']} LSB, "
                     f"RMSE {fid['rmse_lsb']:.3g} LSB, cos {fid['cosine']:.6f}, "
                     f"{'bit-exact' if fid['bit_exact'] else 'NOT bit-exact'} ({fid['samples']} samples)",
                     fid.get("reference", "")))
    for c in report.get("comparisons", []):
        if c["reference"].startswith("golden"):
            rows.append(("outputs vs golden outputs",
                         f"max {c['max_lsb_diff']} LSB, {c['samples_differing']} of {c['samples']} samples differ",
                         c["reference"]))
    racc = report.get("raw_accuracy")
    if racc:
        rows.append((f"{racc['metric']} from raw input", f"device {racc['device']:.4f} vs host {racc['host']:.4f}, same "
                     f"prediction on {racc['same_predictions']}/{racc['samples']} windows",
                     f"device: frontend + network on the device; host: {racc['host_source']}; labels {racc['labels']}"))
    acc = report.get("accuracy")
    if acc:
        rows.append((f"accuracy on labels ({acc['metric']})",
                     f"device {acc['device']:.4f} vs reference {acc['reference']:.4f} ({acc['samples']} samples)",
                     f"device outputs vs {acc['labels']}; reference: {acc['reference_source']}"))
    return rows


def latency_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The latency rows, honest about what measured them: a board's ms as measured; an emulator's instructions
    (in the rows below) with ms only as an estimate at the core clock; the host simulator's wall clock as the
    host's, not the target's (pure)."""
    lat, net = report.get("latency", {}), " (network)" if report.get("pipeline") else ""
    measured = lat.get("measured", report.get("ran_on") not in ("estimate",))
    if measured:
        rows = [("latency per inference (measured)" + net, _fmt(lat.get("per_inference_ms"), " ms"),
                 lat.get("source", ""))]
        if lat.get("samples_ms"):
            rows.append(("latency median / p90 over samples (measured)",
                         f"{_fmt(lat.get('median_ms'), ' ms')} / {_fmt(lat.get('p90_ms'), ' ms')}",
                         lat.get("source", "")))
        return rows
    if "estimate_ms" in lat:
        clock = (report.get("header") or {}).get("clock_hz")
        at = f" at {clock / 1e6:g} MHz" if clock else ""
        return [(f"latency estimate{at}, emulated (not measured){net}", _fmt(lat["estimate_ms"], " ms"),
                 lat.get("estimate_source", ""))]
    if report.get("ran_on") == "estimate":
        return [("latency estimate (analytic, not measured)" + net, _fmt(lat.get("per_inference_ms"), " ms"),
                 lat.get("source", ""))]
    rows = [("host wall clock per inference (host simulator, not the target)" + net,
             _fmt(lat.get("per_inference_ms"), " ms"), lat.get("estimate_source") or lat.get("source", ""))]
    if lat.get("samples_ms"):
        rows.append(("host wall clock median / p90 (not the target)",
                     f"{_fmt(lat.get('median_ms'), ' ms')} / {_fmt(lat.get('p90_ms'), ' ms')}", lat.get("source", "")))
    return rows


STAGES = (("frontend", "frontend per window"), ("network", "network per window"),
          ("end_to_end", "end to end (raw -> output)"))


def pipeline_rows(pipe: dict[str, Any] | None, measured: bool = True) -> list[tuple[str, str, str]]:
    """Frontend, network and end-to-end rows per raw window: instructions/cycles and latency (pure)."""
    rows = []
    for key, label in STAGES if pipe else ():
        d = pipe[key]
        for what in ("instructions", "cycles"):
            if what in d:
                rows.append((f"{label}: {what}", _fmt(round(d[what])), d[f"{what}_source"]))
        if measured:  # an emulator's stage ms would be its virtual clock, not the target's: instructions only
            rows.append((f"{label}: latency", _fmt(d["latency_ms"], " ms"), d["latency_source"]))
    return rows


def features_line(report: dict[str, Any]) -> str | None:
    """`features: device == training on 40/40 windows (bit-exact, ...)` for a bundle with a frontend (pure)."""
    from toolkit.hil.checks import features_text

    fe = report.get("frontend")
    return f"features: {features_text(fe)}" if fe else None


def where_lines(report: dict[str, Any]) -> list[str]:
    """Where the figures come from, loudly when a stand-in ran instead of the requested target (pure)."""
    want, ran = report["target"], report["ran_on"]
    if ran == want:
        lines = [f"ran on the requested target {want}"]
    else:
        lines = [f"FALLBACK: {want} did not run; every figure below comes from {ran}, not from {want}"]
        lines += [f"  {f['target']} unavailable: {f['reason']}" for f in report.get("fallbacks", [])]
    lat = report.get("latency") or {}
    if lat.get("measured") is False and ran != "estimate":
        how = "emulated" if "estimate_ms" in lat else "the host simulator's wall clock"
        lines.append(f"timing: {how} ({lat.get('source', '')}); no ms figure below is a measurement on {want}")
    if report.get("inputs"):
        lines.append(f"inputs: {report['inputs']}")
    mk = report.get("mlperf")
    if mk:
        said = mk.get("firmware_answered")
        lines.append(f"MLPerf Tiny model key: {mk['key']} ({mk['source']})"
                     + (f"; the firmware answered m-model-[{said}]" if said else ""))
    cg = report.get("codegen")
    if cg:
        lines.append(f"generated C: kernel set {cg.get('kernels')}, optimize {cg.get('optimize')} "
                     f"({'int16' if cg.get('optimize') == 'speed' else 'int8'} weights in the SIMD kernels), "
                     f"arena {cg.get('arena_bytes')} B")
    return lines


def check_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(check, verdict, measured, limit, detail) rows (pure)."""
    return [(c["name"], c["verdict"].upper(), _fmt(c["measured"]), _fmt(c["limit"]), c["detail"])
            for c in report.get("checks", [])]


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Terminal summary: where it ran, each figure and its source."""
    lines = [f"profile of {report.get('model', {}).get('sha256', '')[:12]} for {report['target']} "
             f"(ran on: {report['ran_on']})"]
    feat = features_line(report)
    lines += [feat] if feat else []
    lines += [f"  {ln}" for ln in where_lines(report)]
    lines += [f"  {name:36s} {value:28s} [{source}]" for name, value, source in figure_rows(report)]
    if report.get("checks"):
        lines.append("  checks:")
        lines += [f"    {verdict:4s} {name}: {detail}" for name, verdict, _, _, detail in check_rows(report)]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (pure)."""
    out = [f"# Profile for {report['target']} (ran on {report['ran_on']})", ""]
    hdr = header_rows(report)
    if hdr:
        out += _md_table(("", ""), hdr) + [""]
    feat = features_line(report)
    out += [f"- {ln.strip()}" for ln in ([feat] if feat else []) + where_lines(report)]
    out += ["", "| figure | value | source |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in figure_rows(report)]
    if report.get("checks"):
        out += ["", "## Checks", "", "| check | verdict | measured | limit | detail |", "|---|---|---|---|---|"]
        out += [f"| {' | '.join(r)} |" for r in check_rows(report)]
    out += extra_markdown(report)
    stages = report.get("fidelity_stages")
    if stages:
        out += ["", "## Fidelity per stage (bundle/fidelity.json)", "", "```", _compact(stages), "```"]
    if report.get("transcript"):
        out += ["", f"Transcript of the serial link: `{report['transcript']}`"]
    return "\n".join(out) + "\n"


def _compact(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, sort_keys=True)[:4000]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    lat = report.get("latency", {})
    if lat.get("samples_ms") and lat.get("measured", True):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(lat["samples_ms"], bins=20)
        ax.set_xlabel(f"ms per inference, measured ({lat.get('source', '')})", fontsize=7)
        ax.set_ylabel("samples")
        plots.append(("latency histogram", _png(fig)))
    mem = {k: v for k, v in report.get("memory", {}).items() if k.endswith("_bytes") and v}
    if mem:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.barh(list(mem), [v / 1024 for v in mem.values()])
        ax.set_xlabel("KiB")
        plots.append(("memory", _png(fig)))
    stages = _stage_values(report)
    if stages:
        fig, ax = plt.subplots(figsize=(5, 3))
        names = list(stages)
        bad = _outputs_failed(report)
        colours = [VERDICT_COLOURS["fail"] if (bad and n.startswith("device")) else "#1565c0" for n in names]
        ax.bar(names, list(stages.values()), color=colours)
        for k, n in enumerate(names):
            if bad and n.startswith("device"):
                ax.text(k, 0.02, "FAILED", ha="center", color="white", fontsize=8, fontweight="bold")
        ax.set_ylabel("agreement")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        plots.append(("fidelity per stage", _png(fig)))
    return plots


def _outputs_failed(report: dict[str, Any]) -> bool:
    """Whether a check on the device's outputs or accuracy failed (a failed run is never drawn as a plain bar)."""
    return any(c["verdict"] == "fail" and (c["name"].startswith("outputs") or c["name"] in ("accuracy", "device"))
               for c in report.get("checks", []))


def _stage_values(report: dict[str, Any]) -> dict[str, float]:
    """One agreement number per stage: bundle/fidelity.json stages (any numeric 'top1'/'agreement' field) + device."""
    out: dict[str, float] = {}
    stages = report.get("fidelity_stages") or {}
    items = stages.items() if isinstance(stages, dict) else enumerate(stages)
    for name, st in items:
        if isinstance(st, dict):
            for key in ("top1_agreement", "agreement", "top1", "cosine"):
                if isinstance(st.get(key), (int, float)):
                    out[str(st.get("stage", name))] = float(st[key])
                    break
    fid = report.get("fidelity", {})
    if fid:
        out[f"device ({report['ran_on']})"] = float(fid["top1_agreement"])
    return out


def html_page(report: dict[str, Any]) -> str:
    """A self-contained HTML page: figures table and plots (pure apart from matplotlib)."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in figure_rows(report))
    feat = features_line(report)
    falls = "".join(f"<li>{e(ln.strip())}</li>" for ln in ([feat] if feat else []) + where_lines(report))
    checks = "".join("<tr>" + "".join(f"<td class='{r[1].lower()}'>{e(v)}</td>" if k == 1 else f"<td>{e(v)}</td>"
                                       for k, v in enumerate(r)) + "</tr>" for r in check_rows(report))
    checks = (f"<section id='checks'><h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>measured</th><th>limit</th>"
              f"<th>detail</th></tr>{checks}</table></section>") if checks else ""
    imgs = "".join(f"<h2>{e(t)}</h2><img alt='{e(t)}' src='data:image/png;base64,{b}'>" for t, b in _plots(report))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgetk profile {e(report['target'])}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;"
            "padding:.3em}table{border-collapse:collapse}.fail{color:#fff;background:#c62828;font-weight:bold}"
            ".pass{color:#fff;background:#2e7d32}.warn{background:#ef6c00;color:#fff}.skip{background:#eee}"
            "</style></head><body>"
            f"<h1>Profile for {e(report['target'])} (ran on {e(report['ran_on'])})</h1>"
            f"<section id='header'>{_table(('', ''), header_rows(report))}</section><ul>{falls}</ul>"
            f"<section id='figures'><table><tr><th>figure</th><th>value</th><th>source</th></tr>{rows}</table></section>"
            f"{checks}{extra_html(report)}{imgs}"
            f"<p>transcript: {e(str(report.get('transcript', 'n/a')))}</p></body></html>\n")


def write_reports(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and report.html in out_dir."""
    return {"json": atomic_write_json(out_dir / "report.json", report),
            "md": atomic_write_text(out_dir / "report.md", markdown(report)),
            "html": atomic_write_text(out_dir / "report.html", html_page(report))}


# ---- facts gathered after the run: header, honest latency, per layer, capacity, accuracy side by side ----

def git_commit() -> str:
    """The checkout's commit (`+dirty` with uncommitted changes to tracked files); "unknown" outside a checkout."""
    import subprocess

    from toolkit.paths import REPO_ROOT

    if not (REPO_ROOT / ".git").exists():
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = head.stdout.strip()
    if head.returncode != 0 or not sha:
        return "unknown"
    return sha + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def compiler_version(cc: str) -> str:
    """The first line of `cc --version` ("unknown" when it does not run)."""
    import subprocess

    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (r.stdout.splitlines() or ["unknown"])[0].strip() if r.returncode == 0 else "unknown"


def model_name(manifest: dict[str, Any], bundle_path: Path, tflite: Path) -> str:
    """The model's name: the manifest's, else the source file's stem, else the bundle folder's name (pure)."""
    src = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    path = manifest.get("name") or src.get("path") or src.get("file")
    if path:
        return Path(str(path)).stem
    return bundle_path.name if bundle_path.name != "bundle" else tflite.stem


def header_facts(bundle: Any, requested: Any, ran: Any, report: dict[str, Any]) -> dict[str, Any]:
    """Who/what/when of a profile: task, model, labels, bundle hash, requested target and what ran, date (UTC),
    edgetk version and git commit, the firmware's compiler and flags, core clocks."""
    from datetime import datetime, timezone

    from toolkit import __version__

    man = bundle.manifest
    build = getattr(ran, "build", None) if ran is not None else None
    compiler = None
    if build is not None and getattr(build, "cc", None) and report.get("codegen"):
        compiler = {"cc": build.cc, "version": compiler_version(build.cc), "cflags": list(build.cflags),
                    "kernels": report["codegen"].get("kernels"), "optimize": report["codegen"].get("optimize")}
    return {"task": man.get("task") or man.get("kind") or "unknown",
            "model": model_name(man, bundle.path, bundle.tflite),
            "labels": [str(v) for v in (man.get("labels") or [])],
            "bundle_sha256": bundle.sha256, "bundle": str(bundle.path),
            "target": requested.name, "ran_on": report["ran_on"],
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "edgetk_version": __version__, "git_commit": git_commit(), "compiler": compiler,
            "clock_hz": getattr(ran, "clock_hz", None) or None, "target_clock_hz": requested.clock_hz or None}


EMULATED_KINDS = ("qemu", "host")


def honest_latency(report: dict[str, Any], ran_kind: str, ran_clock_hz: int | None) -> dict[str, Any]:
    """The latency block with `measured` set: only a board measures milliseconds of the target. An emulator's
    figure is instructions; its ms is an estimate at the core clock (1 instruction per cycle), labelled so; the
    host simulator's ms is this machine's wall clock, not a microcontroller's (pure)."""
    lat = dict(report.get("latency") or {})
    if ran_kind in ("board", "linux", "linux-ssh"):
        return {**lat, "measured": True}
    lat["measured"] = False
    insns = (report.get("instructions") or {}).get("per_inference")
    if ran_kind == "qemu" and insns and ran_clock_hz:
        lat["estimate_ms"] = insns / ran_clock_hz * 1e3
        lat["estimate_source"] = (f"estimate: {insns:,.0f} emulated instructions at 1 cycle each, "
                                  f"{ran_clock_hz / 1e6:g} MHz core clock; not measured")
    elif ran_kind == "host":
        lat["estimate_source"] = "this machine's wall clock running the firmware runtime; not a microcontroller's"
    elif report.get("ran_on") == "estimate":
        lat["estimate_source"] = lat.get("source", "estimate")
    return lat


def per_layer(lib_dir: Path, graph: Any, x1: Any, work: Path, core: str) -> dict[str, Any]:
    """Per operator instructions of one inference on QEMU (marker pair around each operator) beside the whole
    inference of the same input, with MACs, weights and the arena plan (toolkit.codegen.mcu_run)."""
    from toolkit.codegen.mcu_run import run_on_qemu

    ops = run_on_qemu(lib_dir, x1, work, core=core, per_op=True)
    whole = run_on_qemu(lib_dir, x1, work, core=core)
    plan = json.loads((Path(lib_dir) / "plan.json").read_text())
    out = layer_table(plan, graph, ops.per_op, int(whole.instructions[0]))
    out.update(core=core, source=f"instructions (QEMU TCG plugin, exact count; {core}, one marked window per "
                                 "operator and one whole edgetk_run of the same input)")
    return out


def _lifetimes(graph: Any) -> dict[int, tuple[int, int]]:
    """tensor -> (producer operator, last reader) over the schedule; the input lives from -1, an output to n."""
    n = len(graph.operators)
    first = {t: -1 for t in graph.inputs}
    last: dict[int, int] = {}
    for op in graph.operators:
        for t in op.outputs:
            first.setdefault(t, op.index)
        for t in op.inputs:
            if t >= 0:
                last[t] = op.index
    for t in graph.outputs:
        last[t] = n
    return {t: (f, max(last.get(t, f), f)) for t, f in first.items()}


def layer_table(plan: dict[str, Any], graph: Any, per_op: Any, whole: int) -> dict[str, Any]:
    """Rows per operator (index, type, kernel, instructions, MACs, instructions/MAC, weight bytes, output
    tensor bytes, offset, lifetime) and the arena's memory map (pure)."""
    where = {t["index"]: t for t in plan.get("tensors", [])}
    pops = {o["index"]: o for o in plan.get("ops", [])}
    life = _lifetimes(graph)
    rows = []
    for i, op, n in per_op:
        g = graph.operators[i]
        weights = sum(graph.tensor(t).nbytes for t in g.inputs if t >= 0 and graph.tensor(t).data is not None)
        t_out = g.outputs[0] if g.outputs else -1
        loc = where.get(t_out, {})
        macs = int(pops.get(i, {}).get("macs") or 0)
        rows.append({"index": i, "op": op, "kernel": pops.get(i, {}).get("kernel"), "instructions": int(n),
                     "macs": macs, "instructions_per_mac": n / macs if macs else None, "weight_bytes": int(weights),
                     "output_tensor": t_out, "output_bytes": int(loc.get("bytes") or graph.tensor(t_out).nbytes),
                     "output_location": loc.get("location"), "output_offset": loc.get("offset"),
                     "output_lifetime": list(life.get(t_out, (i, i)))})
    total = sum(r["instructions"] for r in rows)
    boxes = [{"name": t["name"], "tensor": t["index"], "offset": t["offset"], "bytes": t["bytes"],
              "first_op": life.get(t["index"], (0, 0))[0], "last_op": life.get(t["index"], (0, 0))[1]}
             for t in plan.get("tensors", []) if t.get("offset") is not None and t.get("location") != "const"]
    boxes += [{"name": b["name"], "tensor": None, "offset": b["offset"], "bytes": b["size"], "first_op": b["first_op"],
               "last_op": b["last_op"]} for b in plan.get("buffers", []) if str(b["name"]).startswith("scratch")]
    return {"ops": rows, "sum": total, "whole_inference": whole, "difference": whole - total,
            "difference_pct": (whole - total) / whole * 100 if whole else None,
            "arena_bytes": plan.get("arena_size"), "memory_map": boxes}


def capacity(report: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    """Flash and RAM (static + arena + stack) of the firmware against the target's capacity (pure)."""
    mem = report.get("memory") or {}
    flash, static = mem.get("flash_bytes"), mem.get("static_ram_bytes")
    if not (spec.flash_bytes or spec.ram_bytes) or flash is None:
        return None
    arena = mem.get("arena_bytes") or 0
    stack = mem.get("stack_reserved_bytes") or mem.get("stack_high_water_bytes") or 0
    other = max((static or 0) - arena, 0) if (static or 0) >= arena else (static or 0)
    ram = other + arena + stack
    return {"target": spec.name,
            "flash": {"used": flash, "limit": spec.flash_bytes or None,
                      "fits": flash <= spec.flash_bytes if spec.flash_bytes else None},
            "ram": {"used": ram, "limit": spec.ram_bytes or None, "fits": ram <= spec.ram_bytes if spec.ram_bytes else None,
                    "parts": {"static (without the arena)": other, "arena": arena,
                              ("stack (reserved)" if mem.get("stack_reserved_bytes") else "stack (high water)"): stack}},
            "source": f"{report['ran_on']} firmware build ({mem.get('source', {}).get('flash/static RAM', 'size')}) "
                      f"against {spec.name}'s target file (flash_bytes, ram_bytes)"}


def accuracy_table(bundle: Any, report: dict[str, Any], device: Any) -> dict[str, Any]:
    """fp32 (the exporter's host figure), int8 on the host (TFLite-Micro) and int8 on the device side by side,
    with the device's confusion matrix; "no labels" when the bundle has none (pure apart from numpy)."""
    import numpy as np

    man, acc = bundle.manifest, report.get("accuracy")
    if bundle.y is None or device is None or len(device) == 0:
        why = report.get("accuracy_skipped") or "no labels"
        return {"labels": False, "why": ("no labels: " + bundle.inputs_label) if bundle.y is None else why}
    out: dict[str, Any] = {"labels": True, "samples": int(len(device)),
                           "fp32_host": man.get("fp32_metric"), "int8_host_export": man.get("int8_metric"),
                           "fp32_source": "the exporter's fp32 model on the host, whole test set (manifest fp32_metric)",
                           "metric": (acc or {}).get("metric") or man.get("metric")}
    if acc:
        out.update(int8_host=acc["reference"], int8_device=acc["device"], int8_host_source=acc["reference_source"])
    else:
        out["device_why"] = report.get("accuracy_skipped") or "not measured"
    if bundle.kind != "anomaly":
        k = int(np.prod(device.shape[1:]))
        y = np.asarray(bundle.y[:len(device)]).astype(np.int64).reshape(-1)
        if y.min(initial=0) >= 0 and y.max(initial=0) < k:
            pred = device.reshape(len(device), -1).argmax(axis=1)
            cm = np.zeros((k, k), np.int64)
            np.add.at(cm, (y, pred), 1)
            names = [str(v) for v in (man.get("labels") or [])]
            out["confusion"] = {"labels": names if len(names) == k else [str(i) for i in range(k)],
                                "matrix": cm.tolist(), "rows": "true label", "columns": "device prediction"}
    return out


def enrich(report: dict[str, Any], bundle: Any, target: str, out_dir: Path, device: Any, *,
           layers: bool = True) -> dict[str, Any]:
    """Everything the reports add to the runner's figures: header, honest latency, capacity, accuracy side by
    side, per layer on QEMU targets (a second run of the same library, one input), then the history entry."""
    from toolkit.errors import EdgetkError
    from toolkit.targets import fallback_chain

    chain = fallback_chain(target)
    requested = chain[0]
    ran = next((s for s in chain if s.name == report["ran_on"]), None)
    extra: dict[str, Any] = {
        "header": header_facts(bundle, requested, ran, report),
        "latency": honest_latency(report, ran.kind if ran is not None else "estimate",
                                  ran.clock_hz if ran is not None else None),
        "capacity": capacity(report, requested),
        "accuracy_table": accuracy_table(bundle, report, device)}
    lib = (report.get("codegen") or {}).get("library")
    if not layers and ran is not None and ran.kind == "qemu":
        extra["layers"] = {"skipped": "per-layer run not requested (--no-layers / EDGETK_PROFILE_LAYERS=0)"}
    elif ran is not None and ran.kind == "qemu" and lib and len(bundle.x) and not report.get("device_error"):
        from toolkit.tflite import read_model

        try:
            extra["layers"] = per_layer(Path(lib), read_model(bundle.tflite), bundle.x[:1], out_dir / "per-layer",
                                        ran.core)
        except EdgetkError as e:
            log.warning("per-layer run failed: %s", e)
            extra["layers"] = {"error": str(e).splitlines()[0]}
    return extra


def record_history(report: dict[str, Any], out_dir: Path) -> dict[str, Any] | None:
    """Append this profile to the history store; this model's past runs on this target for the plot."""
    from toolkit.errors import EdgetkError
    from toolkit.hil import history

    try:
        run_id, path = history.append(report, out_dir / "report.json")
        past = history.runs(model=report["model"]["sha256"], target=report["target"], path=path)
    except (OSError, EdgetkError) as e:
        log.warning("history not recorded: %s", str(e).splitlines()[0])
        return None
    return {"id": run_id, "store": str(path), "runs": past}


# ---- rendering of the added sections (pure) ----

def header_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows of the header."""
    h = report.get("header")
    if not h:
        return []
    cc = h.get("compiler")
    ran = h["ran_on"] if h["ran_on"] == h["target"] else f"{h['ran_on']} (FALLBACK: {h['target']} did not run)"
    rows = [("task", str(h["task"])), ("model", str(h["model"])),
            ("labels", ", ".join(h["labels"]) if h["labels"] else "none in the bundle"),
            ("bundle sha256", h["bundle_sha256"]), ("requested target", h["target"]), ("ran on", ran),
            ("date", h["date_utc"]), ("edgetk", f"{h['edgetk_version']} (git {h['git_commit']})"),
            ("compiler", f"{cc['version']} ({cc['cc']}); flags {' '.join(cc['cflags'])}; kernels {cc['kernels']}, "
                         f"optimize {cc['optimize']}" if cc else "n/a (no firmware build)"),
            ("core clock", (f"{h['clock_hz'] / 1e6:g} MHz ({h['ran_on']})" if h.get("clock_hz") else "n/a")
             + (f"; {h['target']} {h['target_clock_hz'] / 1e6:g} MHz" if h.get("target_clock_hz")
                and h["target"] != h["ran_on"] else ""))]
    return rows


def layer_rows(layers: dict[str, Any]) -> list[tuple[str, ...]]:
    """(index, op, kernel, instructions, MACs, instr/MAC, weights, output bytes, offset, lifetime) per operator."""
    return [(str(r["index"]), r["op"], str(r["kernel"] or "-"), _fmt(r["instructions"]), _fmt(r["macs"]),
             _fmt(r["instructions_per_mac"]), _fmt(r["weight_bytes"], " B"), _fmt(r["output_bytes"], " B"),
             _fmt(r["output_offset"]) if r["output_offset"] is not None else "-",
             f"{r['output_lifetime'][0]}..{r['output_lifetime'][1]}") for r in layers.get("ops", [])]


LAYER_HEAD = ("#", "operator", "kernel", "instructions", "MACs", "instr/MAC", "weights", "output", "arena offset",
              "lifetime (ops)")


def layer_total_line(layers: dict[str, Any]) -> str:
    return (f"per-operator sum {layers['sum']:,} vs whole inference {layers['whole_inference']:,} instructions "
            f"(difference {layers['difference']:+,}, {layers['difference_pct']:+.3f} %; {layers['source']})")


def accuracy_rows(table: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(what, value, source): fp32 host / int8 host / int8 device."""
    if not table:
        return []
    if not table.get("labels"):
        return [("accuracy", "not measured", table.get("why", "no labels"))]
    metric = table.get("metric") or "metric"
    rows = [(f"fp32 on the host ({metric})", _fmt(table.get("fp32_host")), table["fp32_source"])]
    if table.get("int8_host_export") is not None:
        rows.append((f"int8 on the host at export ({metric})", _fmt(table["int8_host_export"]),
                     "the exporter's int8 TFLite, whole test set (manifest int8_metric)"))
    if "int8_device" in table:
        rows.append((f"int8 on the host, same samples ({metric})", _fmt(table["int8_host"]), table["int8_host_source"]))
        rows.append((f"int8 on the device ({metric})", _fmt(table["int8_device"]),
                     f"device outputs vs the labels, {table['samples']} samples"))
    elif table.get("device_why"):
        rows.append((f"int8 on the device ({metric})", "not measured", table["device_why"]))
    return rows


def capacity_rows(cap: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """(memory, used, limit, verdict)."""
    if not cap:
        return []
    out = []
    for key in ("flash", "ram"):
        d = cap[key]
        verdict = "n/a" if d["fits"] is None else ("fits" if d["fits"] else "OVER THE LIMIT")
        used = _fmt(d["used"], " B") + (" = " + " + ".join(f"{k} {v:,}" for k, v in d["parts"].items())
                                       if d.get("parts") else "")
        out.append((key, used, _fmt(d["limit"], " B"), verdict))
    return out


def history_rows(hist: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not hist:
        return []
    return [(str(r["id"]), str(r["date"]), str(r["ran_on"]), str(r["git_commit"])[:12], _fmt(r["instructions"]),
             _fmt(r["latency_ms"], " ms") + ("" if r["latency_measured"] else " (est.)"), _fmt(r["flash_bytes"], " B"),
             _fmt(r["ram_bytes"], " B"), _fmt(r["accuracy"]), str(r["checks_failed"]))
            for r in hist.get("runs", [])]


HISTORY_HEAD = ("run", "date", "ran on", "commit", "instructions", "latency", "flash", "RAM", "accuracy", "failed checks")

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "warn": "#ef6c00", "skip": "#757575"}


def _svg(w: int, h: int, body: str, title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' "
            f"aria-label='{html.escape(title)}'>{body}</svg>")


def svg_bars(items: list[tuple[str, float, str]], unit: str, limit: float | None = None, title: str = "") -> str:
    """Horizontal bars (label, value, colour), a dashed limit line when given."""
    e, w, lw, h = html.escape, 640, 170, 22
    top = max([v for _, v, _ in items] + [limit or 0]) or 1
    body = []
    for k, (label, v, colour) in enumerate(items):
        y = 4 + k * h
        body.append(f"<text x='0' y='{y + 14}' font-size='11'>{e(label[:28])}</text>"
                    f"<rect x='{lw}' y='{y}' width='{max(v / top * (w - lw - 90), 1):.1f}' height='{h - 6}' "
                    f"fill='{colour}'/><text x='{lw + max(v / top * (w - lw - 90), 1) + 4:.1f}' y='{y + 14}' "
                    f"font-size='11'>{e(_fmt(int(v) if float(v).is_integer() else v))}{e(unit)}</text>")
    hh = 8 + len(items) * h
    if limit:
        x = lw + (w - lw - 90)
        body.append(f"<line x1='{x}' y1='0' x2='{x}' y2='{hh}' stroke='#000' stroke-dasharray='4 3'/>"
                    f"<text x='{x - 4}' y='{hh + 12}' font-size='10' text-anchor='end'>limit {e(_fmt(int(limit)))}"
                    f"{e(unit)}</text>")
        hh += 16
    return _svg(w, hh, "".join(body), title)


def svg_memory_map(layers: dict[str, Any]) -> str:
    """The arena as a memory map: x = operator index (lifetime), y = byte offset, one box per tensor."""
    boxes, n = layers.get("memory_map") or [], len(layers.get("ops") or [])
    arena = max([b["offset"] + b["bytes"] for b in boxes] + [layers.get("arena_bytes") or 0]) or 1
    w, h, l, b0 = 640, 300, 60, 20
    sx, sy = (w - l - 10) / (n + 2), (h - b0 - 10) / arena
    e, body = html.escape, []
    palette = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e")
    for k, bx in enumerate(boxes):
        x = l + (bx["first_op"] + 1) * sx
        wd = max((bx["last_op"] - bx["first_op"] + 1) * sx - 1, 2)
        y = 10 + (arena - bx["offset"] - bx["bytes"]) * sy
        body.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{wd:.1f}' height='{max(bx['bytes'] * sy, 1):.1f}' "
                    f"fill='{palette[k % len(palette)]}' fill-opacity='0.6' stroke='#222'>"
                    f"<title>{e(str(bx['name']))}: {bx['bytes']:,} B at {bx['offset']:,}, ops "
                    f"{bx['first_op']}..{bx['last_op']}</title></rect>")
    body.append(f"<text x='0' y='14' font-size='10'>{arena:,} B</text><text x='0' y='{h - b0}' font-size='10'>0</text>"
                f"<text x='{l}' y='{h - 4}' font-size='10'>operator index -1 (input) .. {n} (output); "
                f"boxes: tensor lifetimes at their arena offsets</text>")
    return _svg(w, h, "".join(body), "arena memory map")


def svg_history(runs: list[dict[str, Any]], key: str, label: str) -> str:
    """This model's `key` across its past runs on this target, one point per run."""
    pts = [(r["id"], r[key]) for r in runs if isinstance(r.get(key), (int, float))]
    if not pts:
        return ""
    w, h, l = 640, 160, 80
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = (hi - lo) or abs(hi) or 1
    sx = (w - l - 20) / max(len(pts) - 1, 1)
    xy = [(l + k * sx, 20 + (hi - v) / span * (h - 50)) for k, (_, v) in enumerate(pts)]
    body = [f"<polyline fill='none' stroke='#1565c0' points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in xy)}'/>"]
    body += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#1565c0'><title>run {i}: {_fmt(v)}</title></circle>"
             f"<text x='{x:.1f}' y='{h - 8}' font-size='9' text-anchor='middle'>{i}</text>"
             for (x, y), (i, v) in zip(xy, pts)]
    body.append(f"<text x='0' y='24' font-size='10'>{html.escape(_fmt(hi))}</text>"
                f"<text x='0' y='{h - 28}' font-size='10'>{html.escape(_fmt(lo))}</text>"
                f"<text x='{l}' y='12' font-size='11'>{html.escape(label)} per run (x: run id)</text>")
    return _svg(w, h, "".join(body), label)


def _table(head: tuple[str, ...] | list[str], rows: list[tuple[str, ...]], cls: str = "") -> str:
    e = html.escape
    head_row = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" if any(head) else ""
    return (f"<table class='{cls}'>{head_row}"
            + "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows) + "</table>")


def _md_table(head: tuple[str, ...] | list[str], rows: list[tuple[str, ...]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(str, r)) + " |"
                                                                       for r in rows]


def extra_markdown(report: dict[str, Any]) -> list[str]:
    """The added Markdown sections: per layer, accuracy side by side, capacity, history."""
    out: list[str] = []
    layers = report.get("layers")
    if layers and "ops" in layers:
        out += ["", "## Per layer (QEMU, one inference)", "", layer_total_line(layers), ""]
        out += _md_table(LAYER_HEAD, layer_rows(layers))
    elif layers and "skipped" in layers:
        out += ["", f"## Per layer: not run ({layers['skipped']})"]
    elif layers:
        out += ["", f"## Per layer: FAILED: {layers.get('error')}"]
    acc = report.get("accuracy_table")
    if acc:
        out += ["", "## Accuracy against the labels", ""] + _md_table(("figure", "value", "source"), accuracy_rows(acc))
        cm = acc.get("confusion")
        if cm:
            out += ["", f"Confusion matrix on the device (rows: {cm['rows']}, columns: {cm['columns']}):", ""]
            out += _md_table(["", *cm["labels"]], [(lab, *row) for lab, row in zip(cm["labels"], cm["matrix"])])
    cap = report.get("capacity")
    if cap:
        out += ["", f"## Flash and RAM against {cap['target']}'s capacity", ""]
        out += _md_table(("memory", "used", "limit", "verdict"), capacity_rows(cap)) + ["", cap["source"]]
    hist = report.get("history")
    if hist:
        out += ["", f"## History of this model on {report['target']} ({hist['store']})", ""]
        out += _md_table(HISTORY_HEAD, history_rows(hist))
    return out


def extra_html(report: dict[str, Any]) -> str:
    """The added HTML sections (ids: layers, memory-map, accuracy, capacity, history)."""
    e, parts = html.escape, []
    layers = report.get("layers")
    if layers and "ops" in layers:
        bars = [(f"{r['index']} {r['op']}", float(r["instructions"]), "#1565c0") for r in layers["ops"]]
        parts.append(f"<section id='layers'><h2>Per layer (QEMU, one inference)</h2><p>{e(layer_total_line(layers))}"
                     f"</p>{_table(LAYER_HEAD, layer_rows(layers))}{svg_bars(bars, '', title='instructions per operator')}"
                     f"</section><section id='memory-map'><h2>Arena memory map ({_fmt(layers.get('arena_bytes'), ' B')})"
                     f"</h2>{svg_memory_map(layers)}</section>")
    elif layers and "skipped" in layers:
        parts.append(f"<section id='layers'><h2>Per layer</h2><p>not run: {e(layers['skipped'])}</p></section>")
    elif layers:
        parts.append(f"<section id='layers'><h2>Per layer</h2><p class='fail'>FAILED: {e(str(layers.get('error')))}"
                     "</p></section>")
    acc = report.get("accuracy_table")
    if acc:
        cm = acc.get("confusion")
        cmh = ""
        if cm:
            cmh = (f"<p>Confusion matrix on the device (rows: {e(cm['rows'])}, columns: {e(cm['columns'])})</p>"
                   + _table(["", *cm["labels"]], [(lab, *row) for lab, row in zip(cm["labels"], cm["matrix"])], "cm"))
        parts.append(f"<section id='accuracy'><h2>Accuracy against the labels</h2>"
                     f"{_table(('figure', 'value', 'source'), accuracy_rows(acc))}{cmh}</section>")
    cap = report.get("capacity")
    if cap:
        svgs = ""
        for key in ("flash", "ram"):
            d = cap[key]
            colour = VERDICT_COLOURS["fail"] if d["fits"] is False else VERDICT_COLOURS["pass"]
            items = [(f"{key} used", float(d["used"]), colour)]
            items += [(k, float(v), "#90a4ae") for k, v in (d.get("parts") or {}).items()]
            svgs += f"<h3>{key}</h3>" + svg_bars(items, " B", d["limit"], f"{key} against the limit")
        parts.append(f"<section id='capacity'><h2>Flash and RAM against {e(cap['target'])}'s capacity</h2>"
                     f"{_table(('memory', 'used', 'limit', 'verdict'), capacity_rows(cap))}{svgs}"
                     f"<p>{e(cap['source'])}</p></section>")
    hist = report.get("history")
    if hist:
        charts = "".join(svg_history(hist["runs"], k, lab) for k, lab in
                         (("instructions", "instructions per inference"), ("latency_ms", "latency ms"),
                          ("flash_bytes", "flash bytes"), ("ram_bytes", "RAM bytes"), ("accuracy", "accuracy")))
        parts.append(f"<section id='history'><h2>History of this model on {e(report['target'])}</h2>"
                     f"<p>store: {e(hist['store'])}; this run: {hist['id']}</p>"
                     f"{_table(HISTORY_HEAD, history_rows(hist))}{charts}</section>")
    return "".join(parts)

"""Profile reports: JSON (everything), Markdown (the figures), HTML (figures + plots as base64 PNG)."""
from __future__ import annotations

import base64
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
    rows = [("latency per inference" + (" (network)" if pipe else ""), _fmt(lat.get("per_inference_ms"), " ms"),
             lat.get("source", ""))]
    if lat.get("samples_ms"):
        rows.append(("latency median / p90 over samples",
                     f"{_fmt(lat.get('median_ms'), ' ms')} / {_fmt(lat.get('p90_ms'), ' ms')}", lat.get("source", "")))
    est = report.get("board_estimate")
    if est:
        rows.append((f"latency on {report['target']} (estimate)", _fmt(est["latency_ms"], " ms"), est["source"]))
    for key in ("instructions", "cycles"):
        if key in report:
            d = report[key]
            net = " (network)" if pipe else ""
            rows.append((f"{key} per inference{net}", _fmt(d["per_inference"]), d["source"]))
            rows.append((f"{key} per MAC{net}", _fmt(d["per_mac"]), d["source"]))
    rows += pipeline_rows(pipe)
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


STAGES = (("frontend", "frontend per window"), ("network", "network per window"),
          ("end_to_end", "end to end (raw -> output)"))


def pipeline_rows(pipe: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Frontend, network and end-to-end rows per raw window: instructions/cycles and latency (pure)."""
    rows = []
    for key, label in STAGES if pipe else ():
        d = pipe[key]
        for what in ("instructions", "cycles"):
            if what in d:
                rows.append((f"{label}: {what}", _fmt(round(d[what])), d[f"{what}_source"]))
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
    feat = features_line(report)
    out += [f"- {ln.strip()}" for ln in ([feat] if feat else []) + where_lines(report)]
    out += ["", "| figure | value | source |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in figure_rows(report)]
    if report.get("checks"):
        out += ["", "## Checks", "", "| check | verdict | measured | limit | detail |", "|---|---|---|---|---|"]
        out += [f"| {' | '.join(r)} |" for r in check_rows(report)]
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
    if lat.get("samples_ms"):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(lat["samples_ms"], bins=20)
        ax.set_xlabel(f"ms per inference ({lat.get('source', '')})", fontsize=7)
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
        ax.bar(list(stages), list(stages.values()))
        ax.set_ylabel("agreement")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        plots.append(("fidelity per stage", _png(fig)))
    return plots


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
    checks = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in check_rows(report))
    checks = (f"<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>measured</th><th>limit</th>"
              f"<th>detail</th></tr>{checks}</table>") if checks else ""
    imgs = "".join(f"<h2>{e(t)}</h2><img alt='{e(t)}' src='data:image/png;base64,{b}'>" for t, b in _plots(report))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgetk profile {e(report['target'])}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;"
            "padding:.3em}table{border-collapse:collapse}</style></head><body>"
            f"<h1>Profile for {e(report['target'])} (ran on {e(report['ran_on'])})</h1><ul>{falls}</ul>"
            f"<table><tr><th>figure</th><th>value</th><th>source</th></tr>{rows}</table>{checks}{imgs}"
            f"<p>transcript: {e(str(report.get('transcript', 'n/a')))}</p></body></html>\n")


def write_reports(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and report.html in out_dir."""
    return {"json": atomic_write_json(out_dir / "report.json", report),
            "md": atomic_write_text(out_dir / "report.md", markdown(report)),
            "html": atomic_write_text(out_dir / "report.html", html_page(report))}

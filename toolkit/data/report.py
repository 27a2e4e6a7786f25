"""What `edgetk data RECIPE` shows: per class and split the counts, durations/shapes, rates and groups, and every problem.

The source stage runs with every problem collected instead of raised, so one look lists them all.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from toolkit.data.source import Problems, resolve
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig


def data_report(cfg: DataConfig, frontend: Any = None, source: str = "recipe") -> dict[str, Any]:
    """The report as a JSON-ready dict; `errors` counts the problems that stop `edgetk train`."""
    problems = Problems("collect")
    what = cfg.name or cfg.format or f"loader {cfg.loader}"
    root = str(resolve(cfg, cfg.root)) if cfg.root else ""
    report: dict[str, Any] = {"source": what, "root": root, "classes": [], "split": {}, "groups": {}}
    try:
        if cfg.loader:
            _from_task(report, _hook(cfg))
        else:
            from toolkit.data import load_samples

            samples, split = load_samples(cfg, frontend, problems, source)
            _from_samples(report, samples, split)
    except EdgetkError as e:
        problems.items.append({"file": "", "row": None, "problem": str(e), "fatal": True})
    report["problems"] = problems.items
    report["errors"] = sum(1 for p in problems.items if p.get("fatal") or cfg.on_error == "raise")
    report["skipped"] = 0 if cfg.on_error == "raise" else sum(1 for p in problems.items if not p.get("fatal"))
    return report


def _hook(cfg: DataConfig) -> Any:
    from toolkit.data.hook import load_hook

    return load_hook(cfg)


def _from_samples(report: dict[str, Any], s: Any, split: Any) -> None:
    side = np.full(len(s.y), "", dtype=object)
    side[split.train], side[split.test] = "train", "test"
    facts = {f["file"]: f for f in s.files}
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"samples": 0, "files": set(), "groups": set()})
    for i in range(len(s.y)):
        if not side[i]:
            continue
        row = rows[(s.labels[s.y[i]], side[i])]
        row["samples"] += 1
        row["files"].add(str(s.ids[i]).split("#", 1)[0])
        if s.groups is not None:
            row["groups"].add(str(s.groups[i]))
    for (label, part), row in sorted(rows.items(), key=lambda kv: (s.labels.index(kv[0][0]), kv[0][1] != "train")):
        f = [facts[n] for n in sorted(row["files"]) if n in facts]
        secs = [x["seconds"] for x in f if x.get("seconds") is not None]
        report["classes"].append({
            "class": label, "split": part, "samples": row["samples"], "files": len(row["files"]), "groups": len(row["groups"]),
            "seconds": [round(min(secs), 3), round(float(np.mean(secs)), 3), round(max(secs), 3)] if secs else None,
            "rate_hz": sorted({x["rate_hz"] for x in f if x.get("rate_hz")}),
            "channels": sorted({x["channels"] for x in f if isinstance(x.get("channels"), int)}),
            "sizes": sorted({f"{x['width']}x{x['height']}" for x in f if "width" in x}),
        })
    report["sample_shape"] = list(s.x.shape[1:])
    report["info"] = {k: v for k, v in s.info.items() if not k.startswith("_")}
    report["split"] = {**split.info, "train": int(len(split.train)), "test": int(len(split.test))}
    if s.groups is not None:
        report["groups"] = {p: sorted(set(s.groups[idx].tolist())) for p, idx in (("train", split.train), ("test", split.test))}


def _from_task(report: dict[str, Any], data: Any) -> None:
    for part in ("train", "test"):
        y, groups = getattr(data, f"y_{part}"), getattr(data, f"groups_{part}")
        for c, label in enumerate(data.labels):
            sel = y == c
            report["classes"].append({"class": label, "split": part, "samples": int(sel.sum()), "files": None,
                                      "groups": len(set(groups[sel].tolist())) if groups is not None else 0,
                                      "seconds": None, "rate_hz": [], "channels": [], "sizes": []})
    report["sample_shape"] = list(data.input_shape)
    report["split"] = {**data.split, "train": len(data.x_train), "test": len(data.x_test)}
    if data.groups_train is not None and data.groups_test is not None:
        report["groups"] = {"train": sorted(set(data.groups_train.tolist())), "test": sorted(set(data.groups_test.tolist()))}


def format_report(r: dict[str, Any]) -> str:
    """The report as text: a table per class and split, groups, then every problem."""
    lines = [f"data     {r['source']}  {r['root']}".rstrip()]
    sp = r["split"]
    if sp:
        how = ", ".join(f"{k} {sp[k]}" for k in ("seed", "test_fraction") if k in sp)
        lines.append(f"split    {sp.get('method')}{f' ({how})' if how else ''}: {sp['train']} train / {sp['test']} test"
                     + (f", sample shape {r['sample_shape']}" if r.get("sample_shape") else ""))
    if r["classes"]:
        head = f"{'class':<14} {'split':<6} {'samples':>7} {'files':>6} {'groups':>6}  {'seconds min/mean/max':<22} {'rate Hz':<14} channels/sizes"
        lines += ["", head]
        for c in r["classes"]:
            secs = "/".join(f"{v:g}" for v in c["seconds"]) if c["seconds"] else "-"
            rate = ",".join(f"{v:g}" for v in c["rate_hz"]) or "-"
            other = ",".join(str(v) for v in c["channels"] + c["sizes"]) or "-"
            files = "-" if c["files"] is None else c["files"]
            lines.append(f"{c['class']:<14} {c['split']:<6} {c['samples']:>7} {files:>6} {c['groups']:>6}  {secs:<22} {rate:<14} {other}")
    if r["groups"]:
        both = sp.get("groups_on_both_sides", sorted(set(r["groups"]["train"]) & set(r["groups"]["test"])))
        lines += ["", f"groups   train {len(r['groups']['train'])}: {_names(r['groups']['train'])}",
                  f"         test {len(r['groups']['test'])}: {_names(r['groups']['test'])}",
                  f"         on both sides: {_names(both) if both else 'none'}"]
    probs = r["problems"]
    if probs:
        verdict = (f"{r['errors']} error(s)" + (f", {r['skipped']} skipped (data.on_error = skip)" if r["skipped"] else ""))
        lines += ["", f"problems {len(probs)}: {verdict}"]
        lines += [f"  {problem_text(p)}" for p in probs]
    else:
        lines += ["", "problems none"]
    return "\n".join(lines)


def problem_text(p: dict[str, Any]) -> str:
    """One problem as "file, row N: what"."""
    where = p["file"] + (f", row {p['row']}" if p.get("row") is not None else "")
    return f"{where}: {p['problem']}" if where else p["problem"]


def _names(names: list[str], most: int = 12) -> str:
    return ", ".join(names[:most]) + (f", ... ({len(names) - most} more)" if len(names) > most else "")

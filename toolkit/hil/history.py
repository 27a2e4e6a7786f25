"""The local history of profiles: one row per `edgetk profile` in a SQLite store (stdlib sqlite3).

Where: $EDGETK_HISTORY (a file), else $EDGETK_HOME/history.sqlite, else ~/.local/share/edgetk/history.sqlite.
`edgetk history` lists the rows, `edgetk compare A B` shows the deltas of two runs (ids or report.json files).
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from toolkit.errors import EdgetkError

#: (column, SQL type): the headline figures of a run, in the order `edgetk history` prints them
COLUMNS = (("date", "TEXT"), ("model_sha256", "TEXT"), ("model", "TEXT"), ("task", "TEXT"), ("target", "TEXT"),
           ("ran_on", "TEXT"), ("git_commit", "TEXT"), ("edgetk_version", "TEXT"), ("instructions", "REAL"),
           ("latency_ms", "REAL"), ("latency_measured", "INTEGER"), ("flash_bytes", "INTEGER"),
           ("ram_bytes", "INTEGER"), ("arena_bytes", "INTEGER"), ("accuracy", "REAL"), ("checks", "TEXT"),
           ("checks_failed", "INTEGER"), ("report", "TEXT"))
#: figures `compare` takes deltas of (numeric columns)
FIGURES = ("instructions", "latency_ms", "flash_bytes", "ram_bytes", "arena_bytes", "accuracy", "checks_failed")


def store_path() -> Path:
    """$EDGETK_HISTORY, else $EDGETK_HOME/history.sqlite, else ~/.local/share/edgetk/history.sqlite."""
    if os.environ.get("EDGETK_HISTORY"):
        return Path(os.environ["EDGETK_HISTORY"])
    if os.environ.get("EDGETK_HOME"):
        return Path(os.environ["EDGETK_HOME"]) / "history.sqlite"
    return Path.home() / ".local" / "share" / "edgetk" / "history.sqlite"


def headline(report: dict[str, Any], report_path: Path | str | None = None) -> dict[str, Any]:
    """The figures a history row keeps, from a profile report (pure)."""
    hdr, mem = report.get("header") or {}, report.get("memory") or {}
    lat, cap = report.get("latency") or {}, report.get("capacity") or {}
    acc = report.get("accuracy") or {}
    checks = report.get("checks") or []
    measured = lat.get("measured")
    ms = lat.get("per_inference_ms") if measured else (report.get("board_estimate") or {}).get("latency_ms",
                                                                                               lat.get("estimate_ms"))
    return {"date": hdr.get("date_utc"), "model_sha256": (report.get("model") or {}).get("sha256"),
            "model": hdr.get("model"), "task": hdr.get("task"), "target": report.get("target"),
            "ran_on": report.get("ran_on"), "git_commit": hdr.get("git_commit"),
            "edgetk_version": hdr.get("edgetk_version"),
            "instructions": (report.get("instructions") or {}).get("per_inference"),
            "latency_ms": ms, "latency_measured": None if measured is None else int(bool(measured)),
            "flash_bytes": mem.get("flash_bytes"), "ram_bytes": (cap.get("ram") or {}).get("used"),
            "arena_bytes": mem.get("arena_bytes"), "accuracy": acc.get("device"),
            "checks": json.dumps({c["name"]: c["verdict"] for c in checks}, sort_keys=True),
            "checks_failed": sum(c["verdict"] == "fail" for c in checks),
            "report": str(report_path) if report_path else None}


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                    + ", ".join(f"{c} {t}" for c, t in COLUMNS) + ")")
    except (OSError, sqlite3.Error) as e:
        raise EdgetkError(f"history store {path}: {e}",
                          fix="set EDGETK_HISTORY to a writable file (or EDGETK_HOME to a writable folder)") from e
    con.row_factory = sqlite3.Row
    return con


def append(report: dict[str, Any], report_path: Path | str | None = None,
           path: Path | None = None) -> tuple[int, Path]:
    """Append one profile; returns (run id, the store's path)."""
    path = path or store_path()
    row = headline(report, report_path)
    con = _open(path)
    try:
        with con:
            cur = con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values()))
        return int(cur.lastrowid), path
    except sqlite3.Error as e:
        raise EdgetkError(f"history store {path}: {e}", fix="set EDGETK_HISTORY to a writable file") from e
    finally:
        con.close()


def runs(model: str | None = None, target: str | None = None, path: Path | None = None) -> list[dict[str, Any]]:
    """Rows, oldest first; `model` matches the sha256 (or its prefix) or the model name, `target` the target."""
    path = path or store_path()
    if not path.is_file():
        return []
    where, args = [], []
    if model:
        where.append("(model_sha256 LIKE ? OR model = ?)")
        args += [model + "%", model]
    if target:
        where.append("target = ?")
        args.append(target)
    con = _open(path)
    try:
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [dict(r) for r in con.execute(sql, args)]
    except sqlite3.Error as e:
        raise EdgetkError(f"history store {path}: {e}", fix="set EDGETK_HISTORY to another file") from e
    finally:
        con.close()


def load(ref: str, path: Path | None = None) -> dict[str, Any]:
    """A run by id (`edgetk history` lists them) or a profile's report.json."""
    p = Path(ref)
    if p.is_dir():
        p = p / "report.json"
    if p.suffix == ".json" or p.is_file():
        try:
            report = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise EdgetkError(f"{p}: not a readable report.json ({e})",
                              fix="give a run id from `edgetk history` or a profile's report.json") from e
        if not isinstance(report, dict) or "ran_on" not in report:
            raise EdgetkError(f"{p}: not an edgetk profile report", fix="give the report.json `edgetk profile` wrote")
        return {"id": None, **headline(report, p)}
    if not ref.isdigit():
        raise EdgetkError(f"{ref!r} is neither a run id nor a report.json",
                          fix="give a run id from `edgetk history` or a path to a profile's report.json")
    rows = [r for r in runs(path=path) if r["id"] == int(ref)]
    if not rows:
        raise EdgetkError(f"no run {ref} in the history store {path or store_path()}",
                          fix="list the runs with `edgetk history`")
    return rows[0]


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per figure: A, B, B - A and the change in percent of A (pure)."""
    out = []
    for f in FIGURES:
        va, vb = a.get(f), b.get(f)
        delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        out.append({"figure": f, "a": va, "b": vb, "delta": delta,
                    "pct": delta / va * 100 if delta is not None and va else None})
    return out

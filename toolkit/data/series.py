"""csv / parquet: time series recordings (sensor columns, a timestamp column in ms or a declared rate), windowed.

One file per recording, its class from its folder (or per row from data.label_column); .csv and
.parquet files may be mixed. Rows are numbered from 1 (the first data row; in a CSV file that is
line 2). Checked per file, each one error naming the file and row: missing columns, non-numeric or
empty cells, timestamps that do not increase, gaps, a rate that changes inside a file or differs
from data.rate_hz (or from the first file's rate). Windows of data.window samples every data.stride
(0: one sample per recording, all of the same length); when nothing else gives groups or a split,
the windows of one recording share it as their group, so the default split keeps each recording whole
on one side (data.split = "fraction" cuts windows freely).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.source import FileEntry, Problems, Samples, data_root, list_files, samples_from
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
SUFFIXES = (".csv", ".parquet", ".pq")


class BadRow(Exception):
    """A cell or row that cannot be used: (row, problem)."""

    def __init__(self, row: int | None, problem: str) -> None:
        super().__init__(problem)
        self.row, self.problem = row, problem


def read_table(path: Path) -> dict[str, np.ndarray]:
    """The file's columns by name (CSV: strings; Parquet: as stored), in file order."""
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as e:
            raise BadRow(None, f"not a readable CSV file ({e})") from None
        if not rows:
            raise BadRow(None, "empty file")
        head = [h.strip() for h in rows[0]]
        for n, r in enumerate(rows[1:], start=1):
            if len(r) != len(head) and any(c.strip() for c in r):
                raise BadRow(n, f"{len(r)} cells, the header has {len(head)} (line {n + 1})")
        body = [r for r in rows[1:] if len(r) == len(head)]
        return {h: np.array([r[i] for r in body], dtype=object) for i, h in enumerate(head)}
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
    except ImportError as e:
        raise EdgetkError(f"reading Parquet needs pyarrow ({e})", fix="pip install pyarrow") from None
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise BadRow(None, f"not a readable Parquet file ({type(e).__name__}: {e})") from None
    return {name: _arrow_column(table.column(name)) for name in table.column_names}


def _arrow_column(col: Any) -> np.ndarray:
    import pyarrow as pa

    kind = col.type
    if (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and col.null_count == 0:
        return col.to_numpy()
    return np.array(col.to_pylist(), dtype=object)


def numeric(values: np.ndarray, column: str, csv_lines: bool) -> np.ndarray:
    """A column as float64; BadRow naming the first empty or non-numeric cell."""
    try:
        out = values.astype(np.float64)
    except (TypeError, ValueError):
        out = None
    bad = None
    if out is None:
        for i, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                bad = i
                break
    elif not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
    if bad is not None:
        line = f" (line {bad + 2})" if csv_lines else ""
        v = values[bad]
        empty = v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and v != v)
        what = "empty cell" if empty else f"non-numeric value {v!r}"
        raise BadRow(bad + 1, f"{what} in column {column!r}{line}")
    return out


def check_rate(t: np.ndarray, expected: float, tol: float) -> float:
    """The rate (Hz) of timestamps t (ms); BadRow at the first step that breaks it (gap, change, not increasing)."""
    if len(t) < 2:
        raise BadRow(None, "fewer than 2 rows: no rate")
    step = np.diff(t)
    back = np.flatnonzero(step <= 0)
    if len(back):
        r = int(back[0]) + 2
        raise BadRow(r, f"timestamp {t[r - 1]:g} ms does not increase (previous {t[r - 2]:g} ms)")
    typical = float(np.median(step))
    rate = 1000.0 / typical
    if expected and abs(rate - expected) > tol * expected:
        raise BadRow(2, f"mixed rates: this file runs at {rate:.4g} Hz, {expected:.4g} Hz expected "
                        "(data.rate_hz, or the first file's rate)")
    ref = 1000.0 / expected if expected else typical
    off = np.flatnonzero(np.abs(step - ref) > tol * ref)
    if len(off):
        r, s = int(off[0]) + 2, float(step[off[0]])
        if s > ref:
            raise BadRow(r, f"gap in the timestamps: {s:g} ms between rows {r - 1} and {r}, {ref:g} ms expected")
        raise BadRow(r, f"the rate changes at row {r}: step {s:g} ms, {ref:g} ms expected (mixed rates)")
    return rate


def read_recording(e: FileEntry, cfg: DataConfig, expected_rate: float, columns: list[str] | None
                   ) -> tuple[np.ndarray, list[str], np.ndarray | None, float]:
    """(values [rows, C] float32, sensor columns, per-row labels or None, rate Hz) of one file."""
    table = read_table(e.path)
    head = list(table)
    wanted = [c for c in (cfg.timestamp_column, cfg.label_column, *cfg.columns) if c]
    missing = [c for c in wanted if c not in table]
    if missing:
        raise BadRow(None, f"missing column(s) {missing} (the file has {head})")
    sensors = list(cfg.columns) or [c for c in head if c not in (cfg.timestamp_column, cfg.label_column)]
    if columns is not None and sensors != columns:
        raise BadRow(None, f"columns {sensors} differ from the first file's {columns}; set data.columns")
    is_csv = e.path.suffix.lower() == ".csv"
    values = np.stack([numeric(table[c], c, is_csv) for c in sensors], axis=1).astype(np.float32)
    if cfg.timestamp_column:
        rate = check_rate(numeric(table[cfg.timestamp_column], cfg.timestamp_column, is_csv), cfg.rate_hz or expected_rate,
                          cfg.rate_tolerance)
    else:
        rate = cfg.rate_hz
    labels = None
    if cfg.label_column:
        labels = np.array([str(v).strip() for v in table[cfg.label_column]], dtype=str)
        empty = np.flatnonzero(labels == "")
        if len(empty):
            raise BadRow(int(empty[0]) + 1, f"empty label in column {cfg.label_column!r}")
    return values, sensors, labels, rate


def cut(values: np.ndarray, labels: np.ndarray | None, window: int, stride: int) -> list[tuple[int, np.ndarray, str | None]]:
    """(start row, window [window, C], label) for every full window inside a run of one label (window 0: the whole file)."""
    if window == 0:
        if labels is not None and len(set(labels.tolist())) > 1:
            raise BadRow(None, "several labels in one file need data.window (windows stay inside one label)")
        return [(0, values, None if labels is None else str(labels[0]))]
    runs = [0] if labels is None else [0, *(np.flatnonzero(labels[1:] != labels[:-1]) + 1).tolist()]
    ends = [*runs[1:], len(values)]
    out = []
    for a, b in zip(runs, ends):
        out += [(s, values[s:s + window], None if labels is None else str(labels[a])) for s in range(a, b - window + 1, stride)]
    if not out:
        raise BadRow(None, f"{len(values)} rows: shorter than one window of {window} samples")
    return out


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """The recordings as windows [N, window, C] float32 in sensor units."""
    root = data_root(cfg, "recordings (.csv / .parquet)")
    entries = list_files(cfg, root, SUFFIXES, problems, "recordings (.csv / .parquet)", flat=bool(cfg.label_column))
    w = _windows(entries, cfg, problems)
    if not w["x"]:
        raise EdgetkError(f"no usable recordings under {root}", fix="see the problems listed above (edgetk data RECIPE lists them all)")
    kept = [entries[i] for i in w["keep"]]
    if cfg.label_column:
        kept = [FileEntry(e.path, e.rel, lab, e.group, e.split) for e, lab in zip(kept, w["labels"])]
    by_recording = bool(cfg.window) and not any(e.group or e.split for e in entries)
    if by_recording:                          # windows of one recording stay on one side of the split
        kept = [FileEntry(e.path, e.rel, e.label, e.rel, e.split) for e in kept]
    info = {"sample_rate_hz": round(w["rate"], 6), "window_samples": int(w["x"][0].shape[0]), "stride": cfg.stride or cfg.window,
            "channels": w["columns"], "groups": "recording" if by_recording else None}
    return samples_from(kept, list(range(len(kept))), np.stack(w["x"]).astype(np.float32), "series", info, problems,
                        w["files"], f"{cfg.format} {root.name}", ids=w["ids"])


def _windows(entries: list[FileEntry], cfg: DataConfig, problems: Problems) -> dict[str, Any]:
    """Every file read and cut: windows, the entry index and label of each, ids, per-file facts, rate, columns."""
    window, stride = cfg.window, cfg.stride or cfg.window
    out: dict[str, Any] = {"x": [], "keep": [], "labels": [], "ids": [], "files": [], "rate": 0.0, "columns": None}
    length = None
    for i, e in enumerate(entries):
        try:
            values, sensors, labels, rate = read_recording(e, cfg, out["rate"], out["columns"])
            wins = cut(values, labels, window, stride)
            if window == 0 and length is not None and len(values) != length:
                raise BadRow(None, f"{len(values)} rows while the first recording has {length}; set data.window to cut windows")
        except BadRow as b:
            problems.add(e.path, b.problem, row=b.row, fix="fix the file or the [data] columns/rate settings, "
                         'or set data.on_error = "skip" to skip it')
            continue
        out["rate"], out["columns"], length = out["rate"] or rate, out["columns"] or sensors, length or len(values)
        for k, (_, x, label) in enumerate(wins):
            out["x"].append(x)
            out["keep"].append(i)
            out["labels"].append(label)
            out["ids"].append(f"{e.rel}#w{k}" if window else e.rel)
        out["files"].append({"file": e.rel, "label": e.label, "group": e.group, "split": e.split, "rows": len(values),
                             "rate_hz": round(rate, 4), "seconds": round(len(values) / rate, 4) if rate else None,
                             "windows": len(wins), "channels": len(sensors)})
    return out

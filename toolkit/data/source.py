"""The source stage's contract (Samples), the broken-file policy (Problems) and the folder conventions every format shares.

A source turns files into raw samples with labels, ids, groups and (where the files say so) a given
split; the split stage (toolkit/data/split.py) and the feature stage (toolkit/data/features.py) do
the rest the same way for every format and preset.

Folder conventions (audio-folder, csv/parquet, image-folder):
  root/<class>/...files...                  classes from folder names (files may sit deeper)
  root/train/<class>/..., root/test/<class>/...   the same with a given split
  data.manifest (CSV: file,label[,group][,split]) lists the files instead, relative to root
  data.group_pattern: a regex with a named group `group`, searched in each file's name
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Samples:
    """Raw samples from a source, before split and features."""

    x: np.ndarray                      # audio int16 [N, clip]; series float32 [N, T, C]; images float32 [N, C, H, W]; arrays as stored
    y: np.ndarray                      # int64 class ids
    labels: list[str]
    ids: np.ndarray                    # str per sample, unique: file path under root ("#w<k>": k-th window of it)
    modality: str                      # audio | series | image | array
    info: dict[str, Any] = field(default_factory=dict)   # sample_rate, channels, ... (into TaskData.frontend)
    groups: np.ndarray | None = None   # str per sample (speaker, session), None when the source has none
    given: np.ndarray | None = None    # "train" | "test" | "" (unused) per sample, from folders/manifest/preset
    files: tuple[dict[str, Any], ...] = ()  # per file: file, label, group, split and what was read (rate, seconds, shape)
    problems: tuple[dict[str, Any], ...] = ()  # skipped or (edgetk data) collected problems
    kind: str = "classification"
    name: str = ""
    aux: dict[str, Any] = field(default_factory=dict)  # arrays the feature stage needs (audio: "noise" signals to mix in)


class Problems:
    """Where broken files go: raise (one EdgetkError), skip (listed in the run) or collect (`edgetk data`: list them all)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.items: list[dict[str, Any]] = []

    def add(self, file: str | Path, problem: str, row: int | None = None, fix: str = "", fatal: bool = False) -> None:
        """Report a problem with a file (and row): raise it, or record it (fatal ones raise under skip too)."""
        where = f"{file}" + (f", row {row}" if row is not None else "")
        if self.mode == "raise" or (fatal and self.mode == "skip"):
            raise EdgetkError(f"{where}: {problem}", fix=fix or 'fix or remove the file, or set data.on_error = "skip" to skip it')
        self.items.append({"file": str(file), "row": row, "problem": problem, "fatal": fatal})
        if self.mode == "skip":
            log.warning("skipped %s: %s", where, problem)

    def extend(self, items: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> None:
        """Re-report problems recorded earlier (e.g. stored in the cache) under this policy."""
        for p in items:
            self.add(p["file"], p["problem"], p.get("row"), fatal=p.get("fatal", False))


@dataclass(frozen=True)
class FileEntry:
    """One data file: its path, class, group and given split ("" = none)."""

    path: Path
    rel: str          # posix path under root: the sample id (windows add "#w<k>")
    label: str
    group: str = ""
    split: str = ""


def resolve(cfg: DataConfig, path: str) -> Path:
    """A [data] path: ~ expanded, relative paths start at data.base_dir (the recipe's folder)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or not cfg.base_dir else Path(cfg.base_dir) / p


def data_root(cfg: DataConfig, what: str) -> Path:
    """data.root resolved; an EdgetkError naming it when it does not exist."""
    root = resolve(cfg, cfg.root)
    if not root.exists():
        raise EdgetkError(f"data folder not found: {root}", fix=f"set data.root to the folder holding your {what}")
    return root


def list_files(cfg: DataConfig, root: Path, suffixes: tuple[str, ...], problems: Problems, what: str,
               flat: bool = False) -> list[FileEntry]:
    """The data files by the folder conventions (or the manifest), with groups from data.group_pattern.

    flat: the classes come from inside the files (csv label_column), so every file under root (or under
    root/train and root/test) is read, whatever folder it sits in."""
    if cfg.manifest:
        entries = _from_manifest(cfg, root, problems)
    elif flat:
        entries = _flat(root, suffixes, what)
    else:
        entries = _from_folders(root, suffixes, problems, what)
    if cfg.group_pattern:
        pattern = re.compile(cfg.group_pattern)
        out = []
        for e in entries:
            m = pattern.search(e.path.name)
            if m is None or not m.group("group"):
                problems.add(e.path, f"file name does not match data.group_pattern {cfg.group_pattern!r}",
                             fix="rename the file or change data.group_pattern")
                continue
            out.append(FileEntry(e.path, e.rel, e.label, m.group("group"), e.split))
        entries = out
    if not entries:
        raise EdgetkError(f"no {what} ({', '.join(suffixes)}) found under {root}",
                          fix=f"put them in one folder per class under {root} (or list them in data.manifest)")
    return entries


def _from_folders(root: Path, suffixes: tuple[str, ...], problems: Problems, what: str) -> list[FileEntry]:
    if not root.is_dir():
        raise EdgetkError(f"{root} is not a folder", fix=f"set data.root to a folder with one subfolder of {what} per class")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = {p.name for p in subdirs}
    if set(SPLITS) <= names:
        if names - set(SPLITS):
            problems.add(root, f"folders {sorted(names - set(SPLITS))} beside train/ and test/ are not read",
                         fix="move them into train/ or test/", fatal=True)
        return [e for s in SPLITS for e in _class_folders(root, root / s, suffixes, problems, what, s)]
    return _class_folders(root, root, suffixes, problems, what, "")


def _flat(root: Path, suffixes: tuple[str, ...], what: str) -> list[FileEntry]:
    if not root.is_dir():
        raise EdgetkError(f"{root} is not a folder", fix=f"set data.root to the folder holding your {what}")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    out = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        part = rel.split("/", 1)[0] if split else ""
        if split and part not in SPLITS:
            raise EdgetkError(f"{p} is outside {root / 'train'} and {root / 'test'}", fix="move it into train/ or test/")
        out.append(FileEntry(p, rel, "", "", part))
    return out


def _class_folders(root: Path, folder: Path, suffixes: tuple[str, ...], problems: Problems, what: str,
                   split: str) -> list[FileEntry]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise EdgetkError(f"no class folders in {folder}", fix=f"put the {what} of each class in a subfolder named after it")
    out = []
    for c in classes:
        files = sorted(p for p in c.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            problems.add(c, f"empty class folder: no {what} ({', '.join(suffixes)}) in it",
                         fix=f"add {what} to {c} or remove the folder", fatal=True)
        out += [FileEntry(p, p.relative_to(root).as_posix(), c.name, "", split) for p in files]
    return out


def _from_manifest(cfg: DataConfig, root: Path, problems: Problems) -> list[FileEntry]:
    path = resolve(cfg, cfg.manifest)
    if not path.is_file():
        raise EdgetkError(f"data.manifest not found: {path}", fix="write a CSV with columns file,label[,group][,split]")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    head = [h.strip() for h in rows[0]] if rows else []
    if "file" not in head or "label" not in head:
        raise EdgetkError(f"{path}: the first row must name the columns file,label[,group][,split], got {head}",
                          fix="add the header row file,label,group,split")
    known = _class_names(root)
    col = {h: i for i, h in enumerate(head)}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        cell = {h: (row[i].strip() if i < len(row) else "") for h, i in col.items()}
        file, label, split = cell["file"], cell["label"], cell.get("split", "")
        if not file:
            continue
        if not label or (known and label not in known):
            problems.add(path, f"unknown label {label!r} for {file}" + (f" (classes: {', '.join(known)})" if known else ""),
                         row=n, fix="use one of the class folder names" if known else "fill in the label")
            continue
        if split not in ("", *SPLITS):
            problems.add(path, f"split {split!r} for {file} is not train or test", row=n, fix="write train or test")
            continue
        p = root / file
        if not p.is_file():
            problems.add(path, f"{file} does not exist under {root}", row=n, fix="fix the path (relative to data.root)")
            continue
        out.append(FileEntry(p, Path(file).as_posix(), label, cell.get("group", ""), split))
    return out


def _class_names(root: Path) -> list[str]:
    """Class folder names under root (or root/train), [] for a flat folder."""
    base = root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def label_ids(names: list[str], extra: tuple[str, ...] = ()) -> tuple[list[str], dict[str, int]]:
    """Sorted class names (plus extra ones last) and their ids."""
    labels = sorted(set(names) - set(extra)) + [e for e in extra if e in set(names)]
    return labels, {c: i for i, c in enumerate(labels)}


def samples_from(entries: list[FileEntry], keep: list[int], x: np.ndarray, modality: str, info: dict[str, Any],
                 problems: Problems, files: list[dict[str, Any]], name: str, ids: list[str] | None = None,
                 extra_labels: tuple[str, ...] = ()) -> Samples:
    """Samples for the entries kept (one sample per index in keep; ids default to the entries' paths)."""
    kept = [entries[i] for i in keep]
    labels, index = label_ids([e.label for e in kept], extra_labels)
    groups = np.array([e.group for e in kept], dtype=str) if kept and any(e.group for e in kept) else None
    given = np.array([e.split for e in kept], dtype=str) if any(e.split for e in kept) else None
    return Samples(x=x, y=np.array([index[e.label] for e in kept], dtype=np.int64), labels=labels,
                   ids=np.array(ids if ids is not None else [e.rel for e in kept], dtype=str), modality=modality,
                   info=info, groups=groups, given=given, files=tuple(files), problems=tuple(problems.items), name=name)

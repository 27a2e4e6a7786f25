"""The split stage (one place for every format and preset) and the split record a run keeps (RUN_DIR/split.json).

data.split: folders (the split the files give: train/ and test/ folders, a manifest's split column,
a preset's fixed split), group (no group on both sides; seeded, stratified where possible),
fraction (seeded, stratified), auto (folders when given, else group when the data has groups, else
fraction). The record holds the method, seed, ids and a short digest of every sample, so `load_run`
re-derives the split and names the files that changed.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

log = logging.getLogger(__name__)
RECORD_VERSION = 1


@dataclass(frozen=True)
class Split:
    """Train and test sample indices into a source's samples, and how they were chosen."""

    train: np.ndarray
    test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)   # method, seed, test_fraction, groups on both sides


def choose_method(cfg: DataConfig, given: np.ndarray | None, groups: np.ndarray | None) -> str:
    """The split method data.split = auto resolves to (or the one asked for)."""
    if cfg.split != "auto":
        return cfg.split
    return "folders" if given is not None else "group" if groups is not None else "fraction"


def split_samples(y: np.ndarray, groups: np.ndarray | None, given: np.ndarray | None, cfg: DataConfig,
                  source: str = "data") -> Split:
    """Cut samples into train and test by cfg.split (see the module docstring)."""
    method = choose_method(cfg, given, groups)
    if method == "folders":
        train, test = _given(given, source)
    elif method == "group":
        train, test = _by_group(y, groups, cfg.test_fraction, cfg.split_seed, source)
    else:
        train, test = _fraction(y, cfg.test_fraction, cfg.split_seed)
    info: dict[str, Any] = {"method": method}
    if method != "folders":
        info |= {"seed": cfg.split_seed, "test_fraction": cfg.test_fraction}
    if groups is not None:
        both = sorted(set(groups[train].tolist()) & set(groups[test].tolist()))
        info |= {"groups_train": len(set(groups[train].tolist())), "groups_test": len(set(groups[test].tolist())),
                 "groups_on_both_sides": both}
        if both and method != "folders":     # a given split is the data's own choice (fsdd: by recording index)
            log.warning("%s: %d group(s) on both sides of the %s split (e.g. %s): test scores will be optimistic",
                        source, len(both), method, ", ".join(both[:3]))
    return Split(train, test, info)


def _given(given: np.ndarray | None, source: str) -> tuple[np.ndarray, np.ndarray]:
    if given is None:
        raise EdgetkError(f"{source}: data.split = 'folders' but the data gives no split",
                          fix="put the files under train/ and test/ folders (or a manifest's split column), or use split = 'group' or 'fraction'")
    missing = np.flatnonzero(given == "")
    if len(missing):
        raise EdgetkError(f"{source}: {len(missing)} sample(s) have no given split while others do",
                          fix="give every file a split (train/ or test/ folder, or the manifest's split column)")
    train, test = np.flatnonzero(given == "train"), np.flatnonzero(given == "test")
    if not len(train) or not len(test):
        raise EdgetkError(f"{source}: the given split has {len(train)} train and {len(test)} test samples",
                          fix="put files in both train/ and test/")
    return train, test


def _by_group(y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    if groups is None:
        raise EdgetkError(f"{source}: data.split = 'group' but the samples have no groups",
                          fix="set data.group_pattern or a manifest's group column, or use split = 'fraction'")
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise EdgetkError(f"{source}: a group split needs 2 or more groups, found {names}",
                          fix="add recordings of more speakers/sessions, or use data.split = 'fraction'")
    k = min(len(names), max(2, round(1.0 / fraction)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # "least populated class has fewer members than n_splits"
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        train, test = next(folds.split(np.zeros(len(y)), y, groups))
    return np.sort(train), np.sort(test)


def _fraction(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if len(y) and counts[counts > 0].min() >= 2 and round(fraction * len(y)) >= len(counts[counts > 0]) else None
    train, test = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify)
    return np.asarray(train), np.asarray(test)


def digests(a: np.ndarray | None, n: int) -> list[str]:
    """A 12-hex-digit sha256 of every sample (n of them; [] when the array is missing or of another length)."""
    if a is None or len(a) != n:
        return []
    return [hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:12] for v in a]


def split_record(data: Any) -> dict[str, Any]:
    """What RUN_DIR/split.json holds for a TaskData: method, seed, ids and per-sample digests, a hash of it all."""
    ids_tr, ids_te = [str(v) for v in data.ids_train], [str(v) for v in data.ids_test]
    rec: dict[str, Any] = {"version": RECORD_VERSION, "dataset": data.name, **data.split,
                           "n_train": len(ids_tr), "n_test": len(ids_te), "ids_train": ids_tr, "ids_test": ids_te,
                           "sha_train": digests(_side(data, "train"), len(ids_tr)),
                           "sha_test": digests(_side(data, "test"), len(ids_te)),
                           "skipped": list(data.problems)}
    body = "\n".join(["train", *ids_tr, *rec["sha_train"], "test", *ids_te, *rec["sha_test"]])
    rec["hash"] = hashlib.sha256(body.encode()).hexdigest()
    return rec


def _side(data: Any, side: str) -> np.ndarray:
    raw = getattr(data, f"raw_{side}")
    return raw if raw is not None else getattr(data, f"x_{side}")


def check_record(stored: dict[str, Any], data: Any, where: str) -> None:
    """Raise one EdgetkError naming the files gone, new or changed since the run recorded its split (and samples moved)."""
    now = split_record(data)
    if now["hash"] == stored.get("hash"):
        return
    old, new = _by_id(stored), _by_id(now)
    changes = [f"{_file(i)} (gone)" for i in old if i not in new] + [f"{_file(i)} (new)" for i in new if i not in old]
    changes += [f"{_file(i)} (changed)" for i in new if i in old and old[i][1] and new[i][1] and old[i][1] != new[i][1]]
    moved = sum(1 for i in new if i in old and old[i][0] != new[i][0])
    if not changes and not moved and stored.get("ids_train") == now["ids_train"] and stored.get("ids_test") == now["ids_test"]:
        return    # same samples, contents not comparable (one side recorded no digests)
    names = list(dict.fromkeys(changes))
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    if moved or not names:
        shown += ("; " if shown else "") + f"{moved} sample(s) moved between train and test"
    raise EdgetkError(f"the data of this run changed since it was trained ({where}): {shown}",
                      fix="restore those files, or retrain the run on the data as it is now")


def _by_id(rec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    out = {}
    for side in ("train", "test"):
        ids = rec.get(f"ids_{side}", [])
        shas = rec.get(f"sha_{side}") or [""] * len(ids)
        out |= {i: (side, h) for i, h in zip(ids, shas)}
    return out


def _file(sample_id: str) -> str:
    return sample_id.split("#", 1)[0]

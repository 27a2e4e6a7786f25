"""A small on-disk cache for computed features ($EDGETK_CACHE or ~/.cache/edgetk), written atomically."""
from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from toolkit.fsio import atomic_write_bytes

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """$EDGETK_CACHE, else $XDG_CACHE_HOME/edgetk, else ~/.cache/edgetk (toolkit.paths.cache_dir)."""
    from toolkit.paths import cache_dir as root

    return root()


def cache_key(params: dict[str, Any]) -> str:
    """A short hash of JSON-serialisable parameters (front-end settings, file list, ...)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_arrays(name: str, params: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from the cache keyed by name + params, computed and stored on a miss."""
    path = cache_dir() / f"{name}-{cache_key(params)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cache file %s (%s)", path, e)
    arrays = compute()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        log.warning("could not write feature cache %s (%s)", path, e)
    return arrays

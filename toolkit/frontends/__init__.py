"""Fixed-point signal frontends shared by training (host C via ctypes) and the device (generated C).

A recipe's [frontend] table (FrontendConfig) chooses mfcc | logmel | imu. `apply_frontend` turns raw
train/test windows into int8 model inputs with the SAME C code the device compiles (Frontend.emit_c),
so device features equal training features bit for bit by construction. Stage 1 is the signal
processing (int16 features), stage 2 a per-channel integer normalisation to int8 with a fixed
power-of-two input scale; training sees x = (q - zp) * scale exactly.

Only the config is imported eagerly (toolkit.recipe registers it); the rest loads on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from toolkit.frontends.config import TYPES, FrontendConfig

_LAZY = {"apply_frontend": "api", "frontend_from_info": "api", "reference_distance": "api", "FrontendResult": "api",
         "FRONTENDS": "api", "Frontend": "frontend", "IMPLEMENTATION": "frontend", "Stage2": "norm"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"toolkit.frontends.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'toolkit.frontends' has no attribute {name!r}")


__all__ = ["FrontendConfig", "TYPES", *_LAZY]

"""edgetk: specialized tiny models from data to a measured model on a device."""
from __future__ import annotations

__version__ = "0.1.0"

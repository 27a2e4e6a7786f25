"""pytest plugin for hardware-in-the-loop tests (filled in by the HIL runner work)."""
from __future__ import annotations

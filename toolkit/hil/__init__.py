"""Hardware-in-the-loop: targets (board, QEMU, host simulator), transport, protocol, runner, report."""
from __future__ import annotations

from toolkit.hil.runner import ModelMismatchError, ProfileResult, profile

__all__ = ["ModelMismatchError", "ProfileResult", "profile"]

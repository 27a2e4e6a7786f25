"""The one exception type users see: a message that names the cause and the fix."""
from __future__ import annotations


class EdgetkError(Exception):
    """A user-facing error; the CLI prints it without a traceback and exits with status 2."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(message if fix is None else f"{message}\n  fix: {fix}")

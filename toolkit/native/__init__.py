"""Native code: the C sources edgetk ships (frontends) and every compiler call that builds them.

A leaf package: it imports nothing from data, codegen or hil (they may import it).
"""
from __future__ import annotations

from toolkit.native.build import (HOST_CFLAGS, SANITIZE_FLAGS, build_executable, build_shared, cross_link_check,
                                  load_shared)

__all__ = ["HOST_CFLAGS", "SANITIZE_FLAGS", "build_shared", "build_executable", "load_shared", "cross_link_check"]

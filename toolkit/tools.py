"""External tools (compilers, emulator): where they are, and the Debian packages that provide them."""
from __future__ import annotations

import shutil

from toolkit.errors import EdgetkError

APT_PACKAGES = {
    "gcc": "gcc",
    "qemu-system-arm": "qemu-system-arm",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "sshd": "openssh-server",
    "ser2net": "ser2net",
}


def install_hint(tool: str) -> str:
    """The apt-get line that installs a tool (arm-none-eabi binutils come with gcc-arm-none-eabi)."""
    if tool in APT_PACKAGES:
        return f"apt-get install {APT_PACKAGES[tool]}"
    if tool.startswith("arm-none-eabi-"):
        return "apt-get install gcc-arm-none-eabi"
    return f"install {tool}"


def require_tool(tool: str, purpose: str = "") -> str:
    """Path of a tool on PATH, or an EdgetkError that says how to install it."""
    path = shutil.which(tool)
    if path is None:
        needed = f" (needed to {purpose})" if purpose else ""
        raise EdgetkError(f"{tool} not found{needed}", fix=install_hint(tool))
    return path

"""Which network containment is active for this process: a loopback-only namespace, or the Node guard only.

Owns ``isolation()`` and ``interfaces()``. Interfaces are read from ``/proc/self/net/dev``, which follows the
reading process's network namespace (``/sys/class/net`` does not: it shows the namespace sysfs was mounted in). Imports only the standard library. The namespace itself is made by
``scripts/contained`` (``unshare --net`` when root) around the whole test session or demo; the Node preload guard
(``guard.cjs``) is always loaded into the legacy regardless, so its log can be asserted on in both cases.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

NETNS = "netns"
GUARD_ONLY = "guard only"
PROC_NET_DEV = Path("/proc/self/net/dev")
SYS_NET = Path("/sys/class/net")


def interfaces() -> list[str]:
    """Network interfaces of this process's network namespace, sorted."""
    try:
        lines = PROC_NET_DEV.read_text().splitlines()[2:]
        return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)
    except OSError:
        try:
            return sorted(p.name for p in SYS_NET.iterdir())
        except OSError:
            return []


def isolation() -> str:
    """``"netns"`` when this process sees only ``lo`` (a loopback-only namespace), else ``"guard only"``."""
    return NETNS if interfaces() == ["lo"] else GUARD_ONLY


def describe() -> str:
    """One line for status output and logs."""
    mode = isolation()
    if mode == NETNS:
        return "netns (loopback-only network namespace) + Node preload guard"
    marker = os.environ.get("PARITY_CONTAINED")
    why = f" ({marker})" if marker and marker != NETNS else ""
    return f"guard only (Node preload guard; interfaces: {', '.join(interfaces()) or 'none'}){why}"

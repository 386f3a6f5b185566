"""``scripts/contained`` and ``parity.legacy.netns``: a loopback-only namespace when root, reported truthfully."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _timing import S

from parity.legacy import netns

CONTAINED = Path(__file__).resolve().parents[2] / "scripts" / "contained"
PROBE = """
import json, socket
from parity.legacy import netns
out = {"isolation": netns.isolation(), "interfaces": netns.interfaces()}
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("192.0.2.1", 80))
    out["connect"] = "ok"
except OSError as exc:
    out["connect"] = type(exc).__name__ + ":" + str(exc.errno)
srv = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(srv.getsockname(), timeout=5)
out["loopback"] = "ok"
print(json.dumps(out))
"""


def _netns_possible() -> str | None:
    if os.geteuid() != 0:
        return "not root: scripts/contained runs guard-only"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) not installed"
    if subprocess.run(["unshare", "--net", "--", "true"], capture_output=True).returncode != 0:
        return "unshare --net is not permitted here"
    return None


def test_isolation_matches_the_visible_interfaces() -> None:
    names = netns.interfaces()
    assert "lo" in names
    assert netns.isolation() == (netns.NETNS if names == ["lo"] else netns.GUARD_ONLY)
    assert netns.describe().startswith(netns.isolation())


def test_contained_runs_in_a_loopback_only_namespace_when_root() -> None:
    import json

    why = _netns_possible()
    if why is not None:
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if k != "PARITY_CONTAINED"}
    proc = subprocess.run([str(CONTAINED), sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60 * S, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "[contained] netns" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["isolation"] == "netns" and out["interfaces"] == ["lo"]
    assert out["connect"].startswith("OSError:101")  # ENETUNREACH: no route leaves the namespace
    assert out["loopback"] == "ok"


def test_contained_passes_the_exit_status_through() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PARITY_CONTAINED"}  # not already inside: it must say which
    proc = subprocess.run([str(CONTAINED), "sh", "-c", "exit 7"], capture_output=True, text=True, timeout=60 * S,
                          env=env)
    assert proc.returncode == 7
    assert "[contained]" in proc.stderr
    usage = subprocess.run([str(CONTAINED)], capture_output=True, text=True, timeout=60 * S)
    assert usage.returncode == 2 and "usage" in usage.stderr

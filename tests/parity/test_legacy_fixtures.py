"""The root fixtures' containment check: an unexpected guard-log line fails the whole pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _timing import S

TESTS = Path(__file__).resolve().parents[1]

LEAKY_TEST = '''
def test_leak(legacy):
    # Stand-in for a new outbound call of a future legacy release: the guard would log exactly this.
    with open(legacy.guard_log_path, "a") as fh:
        fh.write("BLOCKED net.connect 192.0.2.7:443\\n")
'''


@pytest.mark.slow
def test_unexpected_guard_line_fails_the_run(tmp_path: Path, legacy_installation: Any) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-p", "no:locust", "-q",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_leaky.py")],
        capture_output=True, text=True, timeout=280 * S, env=env, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert "1 passed" in out, out  # the test itself passed ...
    assert proc.returncode == 1, out  # ... but the run fails on the guard log
    assert "LEGACY CONTAINMENT FAILURE" in out and "BLOCKED net.connect 192.0.2.7:443" in out

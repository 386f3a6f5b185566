"""Fixtures for the bench tests: the bench modules on ``sys.path``, and pyclaw on loopback (``tests/gateway``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "gateway"))

from gw_support import gw, gw_factory  # noqa: E402, F401 - pytest fixtures

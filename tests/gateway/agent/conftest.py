"""Fixtures for agent-turn tests: the same candidate fixtures as tests/gateway/http (see ``h4b_support``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "http"))

from h4b_support import candidate, candidate_factory, legacy_capture  # noqa: E402,F401 - pytest fixtures

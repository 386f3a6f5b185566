"""Fixtures for the candidate's WS/core tests (defined in ``gw_support``; see its docstring)."""

from gw_support import gw, gw_factory  # noqa: F401 - pytest fixtures

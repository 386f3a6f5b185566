"""Fixtures for the candidate's HTTP surface (defined in ``h4b_support``; see its docstring)."""

from h4b_support import candidate, candidate_factory, legacy_capture  # noqa: F401 - pytest fixtures

"""openclaw-parity: the ``parity`` command and the harness around the legacy gateway.

Subpackages: ``parity.legacy`` (install, contain, start and stop the real OpenClaw gateway; the fake model
server). The libraries live in ``wire``, ``recorder``, ``diffing``, ``shadow`` and ``gateway``.
"""

__version__ = "0.1.0"
TOOL = f"openclaw-parity {__version__}"

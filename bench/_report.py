"""Shared writer for docs/benchmarks.md: each bench rewrites only its own section, between markers.

``write_section(name, markdown_table, machine_info)`` replaces (or appends) the block
``<!-- bench:NAME:begin --> ... <!-- bench:NAME:end -->``; ``write_header(text)`` replaces the block
``<!-- bench:header:begin --> ... <!-- bench:header:end -->`` at the top (``bench/run_all.py`` writes it with the
machine info of the whole run). ``machine_info()`` describes the machine in one line. Stdlib only.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from pathlib import Path

__all__ = ["DOC", "machine_info", "write_header", "write_section"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
TITLE = "# Benchmarks\n\nFigures measured by `make bench` (`bench/run_all.py`); each figure sits next to a baseline from the same run.\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _mem_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "? GiB"


def machine_info() -> str:
    """One line: CPU, cores, memory, OS, Python, load average, UTC time."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, {_mem_gib()} RAM, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}, load {load:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def _replace_block(text: str, name: str, body: str, *, at_top: bool = False) -> str:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    if at_top:
        # Before the first section (or block), i.e. right after the title paragraph.
        first = min((i for i in (text.find("\n## "), text.find("\n<!-- bench:")) if i >= 0), default=-1)
        if first >= 0:
            return text[: first + 1].rstrip() + "\n\n" + block + "\n" + text[first + 1 :]
    return text.rstrip() + "\n\n" + block


def _read() -> str:
    return DOC.read_text() if DOC.exists() else TITLE


def write_section(name: str, markdown_table: str, machine: str | None = None) -> None:
    """Replace bench ``name``'s section (a heading, the machine line and its table) in docs/benchmarks.md."""
    body = f"## {name}\n\nMachine: {machine or machine_info()}\n\n{markdown_table.rstrip()}\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(_replace_block(_read(), name, body))


def write_header(text: str) -> None:
    """Replace the run-wide header block (machine and per-bench status) at the top of docs/benchmarks.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(_replace_block(_read(), "header", text, at_top=True))

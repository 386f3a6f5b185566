"""``make bench``: run every ``bench/*_bench.py`` in turn, then rewrite the header of docs/benchmarks.md.

Each bench is a standalone script that prints its figures and writes its own section of docs/benchmarks.md
through ``bench/_report.write_section`` (figure + same-run baseline + machine). This runner adds the header:
the machine, the time, and each bench's status and duration. Benches run one at a time (2 shared cores).
Exit status: 0 when every bench exited 0, else 1. Usage: ``python bench/run_all.py [NAME_FILTER...]``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import DOC, machine_info, write_header  # noqa: E402

logger = logging.getLogger("bench.run_all")
TIMEOUT = 1800.0


def discover(filters: list[str]) -> list[Path]:
    benches = sorted(HERE.glob("*_bench.py"))
    return [b for b in benches if not filters or any(f in b.stem for f in filters)]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    benches = discover(argv)
    machine = machine_info()
    if not benches:
        logger.info("no bench/*_bench.py scripts found")
    rows = []
    failed = 0
    for bench in benches:
        logger.info("== %s", bench.name)
        started = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, str(bench)], cwd=HERE.parent, timeout=TIMEOUT).returncode
            status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        except subprocess.TimeoutExpired:
            rc, status = -1, f"TIMED OUT after {TIMEOUT:.0f} s"
        took = time.monotonic() - started
        failed += rc != 0
        rows.append(f"| `{bench.name}` | {status} | {took:.1f} s |")
        logger.info("== %s: %s in %.1f s", bench.name, status, took)
    table = "\n".join(["| bench | status | duration |", "|---|---|---:|", *rows]) if rows else "_no benches found_"
    write_header(f"Last `make bench`: {machine}.\n\n{table}\n")
    logger.info("wrote %s (%d bench(es), %d failed)", DOC, len(benches), failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

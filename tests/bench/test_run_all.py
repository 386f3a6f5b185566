"""bench/run_all.py on a copy of the bench runner with two tiny benches: sections kept, header rewritten, exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OK_BENCH = """
import sys
sys.path.insert(0, "bench")
from _report import write_section
write_section("tiny", "| figure | value | baseline (same run) |\\n|---|---:|---:|\\n| ops/s | 10 | 5 |")
"""


def make_tree(tmp_path: Path, *, failing: bool) -> Path:
    (tmp_path / "bench").mkdir()
    (tmp_path / "docs").mkdir()
    for name in ("run_all.py", "_report.py"):
        shutil.copy(ROOT / "bench" / name, tmp_path / "bench" / name)
    (tmp_path / "bench" / "tiny_bench.py").write_text(OK_BENCH)
    if failing:
        (tmp_path / "bench" / "zz_bench.py").write_text("raise SystemExit(3)\n")
    return tmp_path


def run(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "bench/run_all.py"], cwd=tree, capture_output=True, text=True, timeout=120)


def test_runs_every_bench_and_rewrites_the_header(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, failing=False)
    first = run(tree)
    assert first.returncode == 0, first.stderr
    second = run(tree)
    assert second.returncode == 0, second.stderr
    doc = (tree / "docs" / "benchmarks.md").read_text()
    assert doc.startswith("# Benchmarks")
    assert doc.count("<!-- bench:header:begin -->") == 1 and doc.count("<!-- bench:tiny:begin -->") == 1
    assert doc.index("bench:header:begin") < doc.index("bench:tiny:begin")
    assert "| `tiny_bench.py` | ok |" in doc
    assert "cores" in doc and "Python 3." in doc
    assert "| ops/s | 10 | 5 |" in doc


def test_a_failing_bench_fails_the_run_and_is_listed(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, failing=True)
    result = run(tree)
    assert result.returncode == 1
    doc = (tree / "docs" / "benchmarks.md").read_text()
    assert "| `zz_bench.py` | FAILED (exit 3) |" in doc
    assert "| `tiny_bench.py` | ok |" in doc

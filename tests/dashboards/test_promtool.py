"""promtool over dashboards/prometheus: the rules parse, and their unit tests pass (and can fail)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "dashboards" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; scripts/setup.sh installs it as root)"
)


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_check_rules() -> None:
    result = _promtool("check", "rules", str(PROM_DIR / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass() -> None:
    tests = sorted((PROM_DIR / "tests").glob("*.yml"))
    assert tests, "no promtool unit tests under dashboards/prometheus/tests"
    result = _promtool("test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: loosen the parity alert and they must fail."""
    rules = (PROM_DIR / "rules.yml").read_text()
    assert "route:parity_ratio:rate5m < 0.99\n            and on (route)" in rules
    (tmp_path / "rules.yml").write_text(
        rules.replace("route:parity_ratio:rate5m < 0.99\n            and on (route)", "route:parity_ratio:rate5m < 0.5\n            and on (route)")
    )
    (tmp_path / "tests").mkdir()
    shutil.copy(PROM_DIR / "tests" / "rules_test.yml", tmp_path / "tests" / "rules_test.yml")
    result = _promtool("test", "rules", "tests/rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ParityRatioLow" in result.stdout + result.stderr

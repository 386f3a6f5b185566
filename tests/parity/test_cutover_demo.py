"""The cutover demo end to end on a few scenarios: real legacy, real candidate, real proxy, Prometheus, locust.

Proves: every stage runs and leaves its output (traces recorded through the proxy, a parity database with pairs,
report, gate JUnit with one test case per policy group, Prometheus data, locust stats); the live metrics were
scraped from the proxy; and no gateway or hook secret of either leg reaches any file the demo wrote outside the
gateways' own config and secrets files.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parity.cutover_demo import SCENARIOS, run_cutover_demo
from parity.prometheus import find_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.legacy]

ONLY = ["http-healthz", "tools-invoke-ok", "hooks-wake-ok-bearer", "rpc-health", "rpc-status", "ws-connect-token"]
FILES = ["http-probes.yaml", "http-tools.yaml", "http-hooks.yaml", "ws-rpc.yaml", "ws-handshake.yaml"]


def secrets_of(run_dir: Path) -> dict[Path, list[str]]:
    """Each gateway's own secret-holding files -> its secret values."""
    out: dict[Path, list[str]] = {}
    for config in run_dir.glob("*/state/openclaw.json"):
        data = json.loads(config.read_text())
        values = [data["gateway"]["auth"].get("token"), data["hooks"].get("token")]
        out[config.parents[1]] = [v for v in values if v]
    return out


def test_cutover_demo_runs_every_stage(tmp_path: Path) -> None:
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("locust not installed (extra 'load')")
    run_dir = tmp_path / "demo"
    lines: list[str] = []
    summary = run_cutover_demo(run_dir, scenarios=[SCENARIOS / f for f in FILES], only=ONLY, say=lines.append,
                               locust_seconds=3)
    text = "\n".join(lines)
    assert summary["candidate"]["kind"] in ("pyclaw", "legacy"), text
    assert summary["scenarios"] == {"exit": 0, "traces": len(ONLY)}, text
    assert sorted(p.stem for p in (run_dir / "traces").glob("*.jsonl")) == sorted(ONLY)
    assert summary["replay"]["exit"] == 0, (run_dir / "logs" / "replay.log").read_text()[-2000:]
    assert summary["gate_exit"] in (0, 1, 2)

    with sqlite3.connect(run_dir / "parity.db") as db:
        (pairs,) = db.execute("select count(*) from pairs").fetchone()
    assert pairs >= len(ONLY)
    assert (run_dir / "report.md").read_text().strip()
    junit = ET.parse(run_dir / "gate.xml").getroot()
    cases = [c.get("name") for c in junit.iter("testcase")]
    assert {"handshake", "read-rpc"} <= set(cases)
    assert "verdict: " in text and "[demo] done in" in text
    assert (run_dir / "locust_stats.csv").exists()

    if find_prometheus():
        assert any((run_dir / "prometheus" / "data").iterdir())
        pairs_line = next(ln for ln in lines if ln.strip().startswith("pairs by outcome"))
        assert "no data" not in pairs_line and "error" not in pairs_line, text

    owned = secrets_of(run_dir)
    assert len(owned) == 2, owned  # legacy and candidate
    for path in run_dir.rglob("*"):
        # The gateways' own config (and OpenClaw's backups of it: openclaw.json.last-good) and secrets files.
        if not path.is_file() or path.name.startswith("openclaw.json") or path.name == "secrets.json":
            continue
        data = path.read_bytes()
        for values in owned.values():
            for secret in values:
                assert secret.encode() not in data, f"a secret leaked into {path}"


def test_cutover_demo_with_a_second_legacy_as_candidate(tmp_path: Path) -> None:
    """``--candidate legacy``: an A/A run through the same stack; the probe's pairs are equal after the profile."""
    run_dir = tmp_path / "aa"
    lines: list[str] = []
    summary = run_cutover_demo(run_dir, scenarios=[SCENARIOS / "http-probes.yaml"], only=["http-healthz"],
                               say=lines.append, locust_seconds=2, candidate_kind="legacy")
    text = "\n".join(lines)
    assert summary["candidate"]["kind"] == "legacy" and "A/A" in summary["candidate"]["note"], text
    assert summary["replay"]["exit"] == 0, text
    with sqlite3.connect(run_dir / "parity.db") as db:
        rows = db.execute("select route, equal from pairs").fetchall()
    assert rows and all(equal for _route, equal in rows), rows
    assert "http-probes      PASS" in text or "http-probes      INCONCLUSIVE" in text, text

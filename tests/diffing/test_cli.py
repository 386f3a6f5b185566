"""The ``parity replay``/``report``/``noise`` commands as a user runs them (subprocess), on databases built
through the store API. Corrupt trace lines: ``--strict`` stops with file:line, the default skips and counts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from diffing.diff import Diff, DiffKind, PairResult
from diffing.store import Store
from wire.model import ExchangeKind

HEADER = {"format": "openclaw-parity-trace", "version": 1, "profile": "openclaw", "target": "", "recorded_at": "",
          "tool": "test"}


def parity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", *args], capture_output=True, text=True, timeout=120)


def write_trace(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join([json.dumps(HEADER), *lines, json.dumps({"end": True, "complete": True})]) + "\n")


def test_corrupt_trace_line_strict_stops_default_skips_and_counts(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    write_trace(trace, ['{"t":0,"conn":"c1","dir":"c2s","kind":"ws-open","path":"/"}', "{not json",
                        '{"t":1,"conn":"c1","dir":"sideways","kind":"ws-text"}'])
    db = f"sqlite:///{tmp_path / 'p.db'}"
    dead = "http://127.0.0.1:9"  # never contacted: a trace without client frames sends nothing
    strict = parity("replay", str(trace), "--legacy", dead, "--candidate", dead, "--db", db, "--strict")
    assert strict.returncode == 1
    assert f"{trace}:3: bad observation" in strict.stderr
    ok = parity("replay", str(trace), "--legacy", dead, "--candidate", dead, "--db", db, "--format", "json",
                "--no-progress")
    assert ok.returncode in (0, 1), ok.stderr  # the single ws-open cannot connect: the run is marked failed
    assert f"{trace}:3: skipped" in ok.stderr and f"{trace}:4: skipped" in ok.stderr
    assert "2 corrupt trace line(s) skipped" in ok.stderr


def result(i: int, route: str, diffs: tuple[Diff, ...] = (), scenario: str = "a") -> PairResult:
    return PairResult(conn="c1", key=str(i), kind=ExchangeKind.WS, group=route, scenario=scenario,
                      equal=not diffs, stage="explain" if diffs else "raw", diffs=diffs, fields_total=4,
                      fields_equal=4 - len(diffs), legacy_latency=0.010, candidate_latency=0.012)


async def build_db(path: Path) -> None:
    store = await Store.open(f"sqlite:///{path}")
    run = await store.start_run(name="crafted")
    for i in range(10):
        store.add_pair(run, result(i, "health"))
    store.add_pair(run, result(10, "status", (Diff("payload.pid", DiffKind.VALUE, "1", "2"),), scenario="b"))
    store.add_pair(run, result(11, "status", scenario="b"))
    await store.finish_run(run)
    await store.close()


def test_report_formats(tmp_path: Path) -> None:
    db_path = tmp_path / "r.db"
    asyncio.run(build_db(db_path))
    db = f"sqlite:///{db_path}"
    js = parity("report", "--db", db, "--format", "json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["pairs"] == 12 and data["matches"] == 11
    assert data["scenario_parity"] == 0.5 and data["scenarios"] == 2
    assert data["field_parity"] == 47 / 48
    routes = {r["route"]: r for r in data["routes"]}
    assert routes["status"]["parity"] == 0.5 and routes["health"]["parity"] == 1.0
    assert routes["health"]["ratio"] == 1.2
    assert data["signatures"][0]["path"] == "payload.pid" and data["signatures"][0]["exemplars"][0]["legacy"] == "1"
    md = parity("report", "--db", db, "--format", "markdown")
    assert "| status | 2 | 50.00 % |" in md.stdout and "`payload.pid` value" in md.stdout
    term = parity("report", "--db", db, "--out", str(tmp_path / "r.txt"))
    assert term.returncode == 0
    text = (tmp_path / "r.txt").read_text()
    assert "scenario parity 50.00 % (1/2)" in text and "payload.pid" in text
    missing = parity("report", "--db", db, "--run", "99")
    assert missing.returncode == 1 and "no run with id 99" in missing.stderr
    empty = parity("report", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert empty.returncode == 1 and "holds no runs" in empty.stderr


def test_noise_review_commands(tmp_path: Path) -> None:
    db_path = tmp_path / "n.db"

    async def seed() -> int:
        store = await Store.open(f"sqlite:///{db_path}")
        (rid,) = await store.propose_noise([{"route": "status", "path": "payload.pid", "kind": "value",
                                             "action": "mask", "differing": 5, "compared": 5, "runs": 2,
                                             "reason": "A/A"}])
        await store.close()
        return rid

    rid = asyncio.run(seed())
    db = f"sqlite:///{db_path}"
    listed = parity("noise", "list", "--db", db)
    assert "proposed" in listed.stdout and "payload.pid" in listed.stdout
    assert parity("noise", "accept", str(rid), "--db", db).returncode == 0
    assert "accepted" in parity("noise", "list", "--db", db, "--status", "accepted").stdout
    out = tmp_path / "rules.toml"
    exported = parity("noise", "export", "--db", db, "--out", str(out))
    assert exported.returncode == 0 and "1 rule(s)" in exported.stdout
    assert 'method = "status"' in out.read_text() and 'path = "payload.pid"' in out.read_text()
    assert parity("noise", "reject", str(rid), "--db", db).returncode == 0
    bad = parity("noise", "accept", "999", "--db", db)
    assert bad.returncode == 1 and "noise rule id 999 does not exist" in bad.stderr

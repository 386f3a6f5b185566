"""Golden traces as data (architecture §10.2): every ``tests/data/traces/*.jsonl`` holding a legacy and a
candidate leg is correlated, paired, normalized and diffed, and the findings must equal
``tests/data/expected/<name>.json``. ``--update-golden`` rewrites the expected files on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diffing.api import diff_observations
from recorder.format import read_trace
from wire.model import Leg
from wire.profiles.openclaw import OPENCLAW

DATA = Path(__file__).resolve().parents[1] / "data"
TRACES = sorted((DATA / "traces").glob("*.jsonl"))


def findings(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        trace = read_trace(fh, path=str(path), strict=True)
    legacy = [o for o in trace.observations if o.leg is Leg.LEGACY]
    candidate = [o for o in trace.observations if o.leg is Leg.CANDIDATE]
    out = []
    for _, r in diff_observations(legacy, candidate, OPENCLAW, scenario=path.stem):
        out.append({"conn": r.conn, "key": r.key, "group": r.group, "equal": r.equal,
                    "diffs": [[d.path, d.kind.value, d.legacy, d.candidate] for d in r.diffs]})
    return out


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_findings_match_expected(path: Path, request: pytest.FixtureRequest) -> None:
    got = findings(path)
    expected_path = DATA / "expected" / f"{path.stem}.json"
    if request.config.getoption("--update-golden", default=False):
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert expected_path.exists(), f"{expected_path} missing: run with --update-golden once and review it"
    assert got == json.loads(expected_path.read_text())


def test_the_ab_trace_finds_exactly_the_planted_difference() -> None:
    got = findings(DATA / "traces" / "health-ab.jsonl")
    unequal = [f for f in got if not f["equal"]]
    assert [(f["group"], f["diffs"]) for f in unequal] == [
        ("health", [["payload.heartbeatSeconds", "value", "1800", "900"]])]
    assert len(got) >= 3  # challenge, connect, health

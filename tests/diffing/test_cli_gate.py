"""``parity gate`` over crafted parity databases, built through the store API (real SQLite files).

Exit codes are checked on the real command in a subprocess; figure aggregation (noise rules, review states,
latency CI, error deltas, ``--run``) in-process through ``judge_database``.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import pytest
from test_store import postgres_url  # noqa: F401 - the module-scoped real PostgreSQL server fixture

from diffing.cli_gate import judge_database
from diffing.diff import Diff, DiffKind, PairResult
from diffing.gate import Verdict, load_policy
from diffing.store import Store
from wire.model import ExchangeKind

ROOT = Path(__file__).resolve().parents[2]
PARITY = [sys.executable, "-m", "parity"]

POLICY = (ROOT / "tests" / "data" / "gate-policy.toml").read_text()


def pair(route: str, i: int, *, diffs: Iterable[Diff] = (), legacy_latency: float = 0.010,
         candidate_latency: float = 0.011, candidate_error: bool = False, legacy_error: bool = False) -> PairResult:
    diffs = tuple(diffs)
    return PairResult(conn=f"c{i % 3}", key=f"{route}#{i}", kind=ExchangeKind.WS, group=route, scenario=None,
                      equal=not diffs, stage="explain" if diffs else "raw", diffs=diffs, fields_total=10,
                      fields_equal=10 - len(diffs), legacy_latency=legacy_latency, candidate_latency=candidate_latency,
                      legacy_error=legacy_error, candidate_error=candidate_error)


def value_diff(path: str = "payload.status") -> Diff:
    return Diff(path=path, kind=DiffKind.VALUE, legacy='"ok"', candidate='"started"')


async def craft(path: Path | str, runs: list[list[PairResult]]) -> str:
    """One run per list, in order, into a SQLite file (a path) or a database URL; returns the URL."""
    url = path if isinstance(path, str) else f"sqlite:///{path}"
    store = await Store.open(url)
    try:
        for results in runs:
            run_id = await store.start_run(name="crafted", source="api")
            for result in results:
                store.add_pair(run_id, result)
            await store.finish_run(run_id)
    finally:
        await store.close()
    return url


def healthy(chat: int = 30, reads: int = 60) -> list[PairResult]:
    return [pair("chat.send", i) for i in range(chat)] + [pair("health", i) for i in range(reads)]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "cutover.toml"
    path.write_text(POLICY)
    return path


def gate(db: str, policy: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], ET.Element]:
    junit = tmp_path / "gate.xml"
    result = subprocess.run([*PARITY, "gate", "--db", db, "--policy", str(policy), "--junit", str(junit),
                             "--markdown", str(tmp_path / "gate.md"), *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    root = ET.parse(junit).getroot() if junit.exists() else ET.Element("none")
    return result, root


async def test_pass_exits_0(tmp_path: Path, policy_file: Path) -> None:
    db = await craft(tmp_path / "p.db", [healthy()])
    result, junit = gate(db, policy_file, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: PASS (exit 0)" in result.stdout
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert list(cases) == ["chat", "reads", "hooks"]
    assert junit.find(".//failure") is None
    assert (tmp_path / "gate.md").read_text().startswith("## Parity gate: **PASS** (exit 0)")


async def test_fail_exits_1_with_evidence_in_junit(tmp_path: Path, policy_file: Path) -> None:
    results = healthy()
    results[40:45] = [pair("health", 100 + i, diffs=[value_diff()]) for i in range(5)]
    db = await craft(tmp_path / "f.db", [results])
    result, junit = gate(db, policy_file, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: FAIL (exit 1)" in result.stdout
    failure = junit.find(".//testcase[@name='reads']/failure")
    assert failure is not None
    assert "parity 0.9167 (55/60) vs min 0.99" in (failure.get("message") or "")
    assert "major value at health payload.status x5" in (failure.text or "")
    assert junit.find(".//testcase[@name='chat']/failure") is None


async def test_too_few_samples_exits_2(tmp_path: Path, policy_file: Path) -> None:
    db = await craft(tmp_path / "i.db", [healthy(chat=30, reads=49)])
    result, junit = gate(db, policy_file, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "too few samples: 49 compared pairs < min 50" in result.stdout
    assert "verdict: INCONCLUSIVE (exit 2)" in result.stdout
    skipped = junit.find(".//testcase[@name='reads']/skipped")
    assert skipped is not None and "inconclusive" in (skipped.get("message") or "")


def test_help_documents_exit_codes() -> None:
    result = subprocess.run([*PARITY, "gate", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for line in ("0  pass", "1  fail", "2  inconclusive"):
        assert line in result.stdout


def test_bad_policy_and_missing_database_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nmin_parity = 2.0\n")
    result = subprocess.run([*PARITY, "gate", "--db", str(tmp_path / "x.db"), "--policy", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "bad.toml: defaults.min_parity: must be within [0, 1], got 2.0" in result.stderr
    good = tmp_path / "good.toml"
    good.write_text(POLICY)
    result = subprocess.run([*PARITY, "gate", "--db", str(tmp_path / "missing.db"), "--policy", str(good)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no such database file" in result.stderr
    assert not (tmp_path / "missing.db").exists()


async def test_accepted_noise_rule_restores_parity(tmp_path: Path, policy_file: Path) -> None:
    results = healthy()
    results[40:45] = [pair("health", 100 + i, diffs=[value_diff("payload.ts")]) for i in range(5)]
    db = await craft(tmp_path / "n.db", [results])
    policy = load_policy(str(policy_file))
    before = await judge_database(db, policy)
    assert before.verdict is Verdict.FAIL
    store = await Store.open(db)
    try:
        (rule_id,) = await store.propose_noise([{"route": "health", "path": "payload.ts", "kind": "value",
                                                  "action": "mask", "differing": 5, "compared": 60, "runs": 2,
                                                  "reason": "A/A: snapshot timestamp"}])
        proposed = await judge_database(db, policy)
        assert proposed.verdict is Verdict.FAIL  # proposed is not accepted
        await store.set_noise_status(rule_id, "accepted")
    finally:
        await store.close()
    after = await judge_database(db, policy)
    assert after.verdict is Verdict.PASS
    reads = next(g for g in after.groups if g.policy.name == "reads")
    assert (reads.stats.pairs, reads.stats.matches, reads.stats.signatures) == (60, 60, ())


async def test_signature_review_states(tmp_path: Path, policy_file: Path) -> None:
    results = healthy(reads=200)
    results[50] = pair("health", 999, diffs=[value_diff()])  # parity 199/200 = 0.995, above the bar
    db = await craft(tmp_path / "s.db", [results])
    policy = load_policy(str(policy_file))
    unreviewed = await judge_database(db, policy)
    assert unreviewed.verdict is Verdict.FAIL
    assert "unreviewed above minor" in unreviewed.groups[1].reason
    store = await Store.open(db)
    try:
        (sig,) = await store.signatures()
        await store.set_signature_review(sig.id, "expected", "status wording differs on purpose")
        assert (await judge_database(db, policy)).verdict is Verdict.PASS
        await store.set_signature_review(sig.id, "bug")
    finally:
        await store.close()
    bug = await judge_database(db, policy)
    assert bug.verdict is Verdict.FAIL
    assert "(bug)" in bug.groups[1].reason


async def test_latency_ratio_ci_upper_bound_fails(tmp_path: Path, policy_file: Path) -> None:
    slow = [pair("chat.send", i, legacy_latency=0.010, candidate_latency=0.010 * (1.8 + (i % 5) / 10))
            for i in range(30)]
    db = await craft(tmp_path / "l.db", [slow + healthy(chat=0)])
    result = await judge_database(db, load_policy(str(policy_file)))
    chat = result.groups[0]
    assert chat.verdict is Verdict.FAIL
    assert chat.stats.latency_ratio_ci is not None and chat.stats.latency_ratio_ci[1] > 1.5
    assert "latency ratio 2.000 CI95" in chat.reason
    again = await judge_database(db, load_policy(str(policy_file)))
    assert again.groups[0].stats.latency_ratio_ci == chat.stats.latency_ratio_ci  # reproducible


async def test_candidate_error_delta_fails(tmp_path: Path, policy_file: Path) -> None:
    results = healthy()
    results[30:33] = [pair("health", 200 + i, candidate_error=True) for i in range(3)]
    results[33] = pair("health", 300, candidate_error=True, legacy_error=True)  # both failed: no delta
    db = await craft(tmp_path / "e.db", [results])
    result = await judge_database(db, load_policy(str(policy_file)))
    reads = result.groups[1]
    assert reads.verdict is Verdict.FAIL
    assert "candidate error rate delta 0.0500 (candidate 4, legacy 1 of 60)" in reads.reason


async def test_run_option_and_unmatched_routes(tmp_path: Path, policy_file: Path) -> None:
    old_run = healthy(reads=10)
    new_run = healthy() + [pair("models.catalog", i, diffs=[value_diff()]) for i in range(3)]
    db = await craft(tmp_path / "r.db", [old_run, new_run])
    policy = load_policy(str(policy_file))
    latest = await judge_database(db, policy)
    assert latest.database.endswith("run 2")
    other = latest.groups[-1]
    assert other.policy.name == "other" and other.stats.routes == ("models.catalog",)
    assert latest.verdict is Verdict.FAIL
    first = await judge_database(db, policy, run=1)
    assert first.verdict is Verdict.INCONCLUSIVE
    assert [g.policy.name for g in first.groups] == ["chat", "reads", "hooks"]


@pytest.mark.postgres
async def test_gate_over_postgresql(postgres_url: str, policy_file: Path, tmp_path: Path) -> None:  # noqa: F811
    results = healthy()
    results[0] = pair("chat.send", 999, diffs=[value_diff()])
    db = await craft(postgres_url, [results])
    result = await judge_database(db, load_policy(str(policy_file)))
    assert result.verdict is Verdict.FAIL
    assert "parity 0.9667 (29/30) vs min 0.99" in result.groups[0].reason
    proc, junit = gate(db, policy_file, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert junit.find(".//testcase[@name='chat']/failure") is not None

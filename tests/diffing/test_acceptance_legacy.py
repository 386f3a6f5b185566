"""Issue 3 acceptance against the real legacy: A/A parity of the golden traces, and one wrong-candidate test per
finding kind (altered field, dropped event, changed status, changed close code, double answer).

Each fault test first replays the trace through the proxy with no fault (baseline) and then with the fault;
the fault must add exactly the expected signature and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from wrong_candidate import WrongCandidate

from diffing._cli_common import Loaded, load_traces, replay_and_diff
from diffing.api import diff_observations, record
from diffing.noise import NoiseCounter, propose
from diffing.report import build_report
from diffing.store import Store
from recorder.target import Target
from wire.model import Leg
from wire.profiles.openclaw import OPENCLAW

pytestmark = [pytest.mark.legacy, pytest.mark.slow]

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
logger = logging.getLogger(__name__)


def _target(gw: Any, url: str | None = None) -> Target:
    return Target(url=url or gw.http_url, token=gw.token, hook_token=gw.hook_token, name="t")


def _pw_target(gw: Any) -> Target:
    return Target(url=gw.http_url, password=gw.password, hook_token=gw.hook_token, name="pw", auth_mode="password")


def _golden() -> list[Loaded]:
    traces, skipped = load_traces(sorted(str(p) for p in GOLDEN.glob("*.jsonl")), strict=True)
    assert skipped == 0
    return traces


async def _signatures(legacy: Any, candidate_url: str, trace: str) -> set[tuple[str, str, str]]:
    (item,) = load_traces([str(GOLDEN / trace)], strict=True)[0]
    results = await replay_and_diff(item, _target(legacy), _target(legacy, candidate_url), OPENCLAW, timeout=15,
                                    sequential=True)
    return {(r.group, path, kind.value) for _, r in results for path, kind in r.signature_counts()}


@pytest.mark.timeout(1500)
async def test_aa_golden_traces_reach_full_parity_after_profile_and_accepted_noise(
    legacy: Any, legacy_pw: Any, tmp_path: Path
) -> None:
    """Every golden trace replayed five times against the legacy, one at a time (events are broadcast to every
    connection, so overlapping replays would see each other's): runs 1 vs 2, 3 and 4 teach the noise beyond the
    profile (``parity noise learn --runs 4``), which is accepted; runs 1 vs 5 must then be 100 % equal. Each trace
    goes to a legacy in the auth mode it was recorded in (the pw-* traces to a password-mode one)."""
    from recorder.replay import replay_trace

    if not list(GOLDEN.glob("*.jsonl")):
        pytest.skip("no golden traces in tests/golden (recorded by the recorder helper)")
    traces = _golden()
    store = await Store.open(f"sqlite:///{tmp_path / 'aa.db'}")
    targets = {"token": _target(legacy), "password": _pw_target(legacy_pw)}
    try:
        counter = NoiseCounter(runs=4)
        verify: list[tuple[Loaded, Any, Any]] = []
        for item in traces:
            t = targets[str(item.trace.header.meta.get("auth_mode") or "token")]
            # Warm-up replay first (discarded): background work of the previous trace (agent tasks finishing,
            # broadcast to every connection) and first-turn-only phases must not land in run 1 alone.
            await replay_trace(item.trace, t, leg=Leg.LEGACY, timeout=30)
            r1, r2, r3, r4, r5 = [await replay_trace(item.trace, t, leg=Leg.LEGACY, timeout=30) for _ in range(5)]
            for other in (r2, r3, r4):
                for _, result in diff_observations(r1.observations, other.observations, OPENCLAW,
                                                   scenario=item.scenario):
                    counter.add(result)
            verify.append((item, r1, r5))
        proposals = propose(counter)
        for p in proposals:
            logger.warning("A/A noise beyond the profile: %s %s %s (%d/%d)", p["route"], p["path"], p["kind"],
                           p["differing"], p["compared"])
        for rid in await store.propose_noise(proposals):
            await store.set_noise_status(rid, "accepted")
        compared = sum(counter.compared.values())
        assert compared > 600, "the golden traces should give hundreds of pairs (x3 comparisons)"
        # The profile must do most of the work: only a few paths may need learned noise on top of it.
        assert len(proposals) <= 40, [f"{p['route']} {p['path']} {p['kind']}" for p in proposals]

        run = await store.start_run(name="aa", source="replay")
        for item, r1, r5 in verify:
            record(store, run, diff_observations(r1.observations, r5.observations, OPENCLAW, scenario=item.scenario))
        await store.finish_run(run)
        report = await build_report(store, run, top=50)
        leftovers = [f"{s.route} {s.path} {s.kind} x{s.count_in_run}: {s.exemplars[:1]}" for s in report.signatures]
        assert report.pairs > 200
        assert report.parity == 1.0, leftovers
        assert report.scenario_parity == 1.0
        logger.warning("A/A: %d pairs over %d scenarios, %d noise rules beyond the profile, field parity %.4f",
                       report.pairs, report.scenarios, len(proposals), report.field_parity or 0)
    finally:
        await store.close()


async def _fault_case(legacy: Any, proxy: WrongCandidate, trace: str, install: Any,
                      expected: tuple[str, str, str]) -> None:
    # Warm-up: the legacy answers the first turn on a fresh session differently (workspace preparation
    # phases), so baseline and fault runs must both be later turns.
    await _signatures(legacy, legacy.http_url, trace)
    baseline = await _signatures(legacy, proxy.url, trace)
    install(proxy.fault)
    faulty = await _signatures(legacy, proxy.url, trace)
    assert proxy.fault.hits, "the fault never fired"
    assert expected not in baseline, baseline
    assert faulty - baseline == {expected}, (faulty, baseline)


async def test_altered_field_is_one_value_signature(legacy: Any, wrong_candidate: WrongCandidate) -> None:
    def alter(f: dict[str, Any]) -> list[dict[str, Any]]:
        if f.get("type") == "res" and isinstance(f.get("payload"), dict) and "heartbeatSeconds" in f["payload"]:
            f["payload"]["heartbeatSeconds"] = 1
        return [f]

    def install(fault: Any) -> None:
        fault.ws_text = alter

    await _fault_case(legacy, wrong_candidate, "rpc-health.jsonl", install, ("health", "payload.heartbeatSeconds", "value"))


async def test_dropped_event_is_one_event_missing_signature(legacy: Any, wrong_candidate: WrongCandidate) -> None:
    """The candidate never sends ``connect.challenge`` (a token-only client does not need its nonce)."""

    def drop(f: dict[str, Any]) -> list[dict[str, Any]]:
        if f.get("type") == "event" and f.get("event") == "connect.challenge":
            return []
        return [f]

    def install(fault: Any) -> None:
        fault.ws_text = drop

    await _fault_case(legacy, wrong_candidate, "rpc-health.jsonl", install,
                      ("connect.challenge", "event:connect.challenge", "event-missing"))


async def test_changed_status_is_one_status_signature(legacy: Any, wrong_candidate: WrongCandidate) -> None:
    def install(fault: Any) -> None:
        fault.http_status = lambda method, path, status: 503 if path == "/healthz" else status

    await _fault_case(legacy, wrong_candidate, "http-healthz.jsonl", install, ("GET /healthz", "status", "status"))


async def test_changed_close_code_is_one_close_code_signature(legacy: Any, wrong_candidate: WrongCandidate) -> None:
    def install(fault: Any) -> None:
        fault.close_code = lambda code: 1011 if code == 1008 else code

    await _fault_case(legacy, wrong_candidate, "ws-connect-wrong-token.jsonl", install,
                      ("<close>", "close.code", "close-code"))


async def test_double_answer_is_one_frame_count_signature(legacy: Any, wrong_candidate: WrongCandidate) -> None:
    def twice(f: dict[str, Any]) -> list[dict[str, Any]]:
        if f.get("type") == "res" and isinstance(f.get("payload"), dict) and "heartbeatSeconds" in f["payload"]:
            return [f, f]
        return [f]

    def install(fault: Any) -> None:
        fault.ws_text = twice

    await _fault_case(legacy, wrong_candidate, "rpc-health.jsonl", install, ("health", "responses", "frame-count"))


def _parity(*args: str, env: dict[str, str]) -> Any:
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "parity", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_parity_replay_and_noise_learn_commands_against_the_legacy(legacy: Any, tmp_path: Path) -> None:
    """The commands as a user runs them; credentials come from the environment, never argv."""
    import json

    env = {"PARITY_LEGACY_TOKEN": legacy.token, "PARITY_CANDIDATE_TOKEN": legacy.token,
           "PARITY_LEGACY_HOOK_TOKEN": legacy.hook_token, "PARITY_CANDIDATE_HOOK_TOKEN": legacy.hook_token}
    traces = [str(GOLDEN / n) for n in ("rpc-health.jsonl", "http-healthz.jsonl", "ws-connect-wrong-token.jsonl")]
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    learned = _parity("noise", "learn", *traces, "--legacy", legacy.http_url, "--db", db, "--runs", "2",
                      "--concurrency", "1", env=env)
    assert learned.returncode == 0, learned.stderr
    assert "pairs compared" in learned.stdout
    out = _parity("replay", *traces, "--legacy", legacy.http_url, "--candidate", legacy.http_url, "--db", db,
                  "--sequential", "--concurrency", "1", "--format", "json", "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["pairs"] >= 6 and report["scenarios"] == 3
    assert report["parity"] == 1.0, report["signatures"]
    assert legacy.token not in out.stdout + out.stderr + learned.stdout + learned.stderr

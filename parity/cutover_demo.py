"""The cutover half of ``parity demo``: legacy + candidate behind the shadow proxy, Prometheus, traffic, verdict.

Owns the demo's stack (fake model, contained legacy, the candidate -- ``pyclaw`` when it boots, else a second
legacy --, ``parity shadow`` with its admin ``/metrics``, a local Prometheus), driving the golden scenarios and a
locust burst through the proxy (live metrics in Prometheus), replaying the client traces recorded through the
proxy to both legs into the parity database (``parity replay``), and printing the report and the gate verdict. Everything lands under the run directory (``runs/demo-<ts>/``). Every process is
started here and stopped here by its own handle. Blocking; called from ``parity.demo``.
May import: stdlib, ``parity.*``, ``diffing``, ``recorder``, ``wire``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.legacy import (
    FakeModelServer,
    LegacyGateway,
    LegacyOptions,
    RunLayout,
    build_config,
    build_env,
    free_port,
    new_secret,
)
from parity.legacy.config import write_config
from parity.prometheus import PrometheusServer, find_prometheus
from wire.errors import ConfigError, ParityError, UpstreamError

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "run_cutover_demo"]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POLICY = ROOT / "docs" / "cutover.toml"
SCENARIOS = ROOT / "tests" / "scenarios"
#: Scenario files the demo skips: password-mode ones need a second, password-mode legacy; the OpenAI ones run
#: full model turns (tens of seconds each on a loaded 2-core box). `make golden` and the tests cover them.
DEMO_SKIP = ("auth-password.yaml", "http-openai.yaml")
Say = Callable[[str], None]


@dataclass(slots=True)
class Candidate:
    """The candidate leg: what it is, where it listens, its own secrets, and how to stop it."""

    kind: str  # "pyclaw" | "legacy"
    url: str
    token: str
    hook_token: str
    stop: Callable[[], object]
    note: str = ""


def _wait_http(url: str, timeout: float, *, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def start_pyclaw(run_dir: Path, model_url: str, *, timeout: float = 60.0) -> Candidate:
    """Boot ``pyclaw gateway run`` with the legacy harness's offline config (own port, state and secrets)."""
    layout = RunLayout(run_dir)
    layout.create()
    port, token, hook_token = free_port(), new_secret(), new_secret()
    write_config(build_config(port=port, model_url=model_url, layout=layout, token=token, hook_token=hook_token),
                 layout.config_path)
    pyclaw = BIN / "pyclaw"
    if not pyclaw.exists():
        raise UpstreamError(f"pyclaw is not installed in {BIN}")
    log = open(layout.gateway_log, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen([str(pyclaw), "gateway", "run", "--port", str(port)], env=build_env(layout),
                                cwd=run_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()
    url = f"http://127.0.0.1:{port}"
    if not _wait_http(f"{url}/readyz", timeout, alive=lambda: proc.poll() is None):
        _stop_process(proc)
        raise UpstreamError(f"pyclaw did not become ready in {timeout:g} s (exit {proc.returncode}); "
                            f"see {layout.gateway_log}")
    return Candidate("pyclaw", url, token, hook_token, lambda: _stop_process(proc))


CANDIDATES = ("auto", "pyclaw", "legacy")


def start_candidate(run_dir: Path, model_url: str, say: Say, kind: str = "auto") -> Candidate:
    """``pyclaw`` (fail if it does not boot), ``legacy`` (a second legacy: an A/A run), or ``auto`` (pyclaw, else a
    second legacy, saying why)."""
    if kind not in CANDIDATES:
        raise ConfigError(f"--candidate: expected one of {', '.join(CANDIDATES)}, got {kind!r}")
    if kind != "legacy":
        try:
            return start_pyclaw(run_dir / "candidate-pyclaw", model_url)
        except (ParityError, OSError) as exc:
            if kind == "pyclaw":
                raise
            say(f"  pyclaw is not usable as the candidate ({exc}); using a second legacy instead (A/A)")
    gw = LegacyGateway.start(LegacyOptions(run_dir=run_dir / "candidate-legacy", model_url=model_url))
    return Candidate("legacy", gw.http_url, gw.token or "", gw.hook_token, gw.stop,
                     note="second legacy standing in for the candidate (A/A)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARITY_", "OPENCLAW_"))}
    env.update(extra)
    return env


def _run(cmd: list[str], *, env: dict[str, str], log: Path, timeout: float) -> int:
    with open(log, "ab") as fh:
        try:
            return subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            fh.write(f"\n[demo] timed out after {timeout:g} s\n".encode())
            return 124


def _prom_value(prom: PrometheusServer, expr: str) -> str:
    try:
        result = prom.query(expr)
    except ParityError as exc:
        return f"error: {exc}"
    if not result:
        return "no data"
    return ", ".join(
        f"{json.dumps(r['metric']) if r['metric'] else ''} {float(r['value'][1]):.4g}".strip() for r in result[:6]
    )


def default_scenarios(scenarios: Path = SCENARIOS) -> list[Path]:
    """The scenario files the demo drives: a directory minus :data:`DEMO_SKIP`, or the file given."""
    if scenarios.is_dir():
        return [p for p in sorted(scenarios.glob("*.yaml")) if p.name not in DEMO_SKIP]
    return [scenarios]


def run_cutover_demo(run_dir: Path, *, traces_dir: Path | None = None, scenarios: list[Path] | None = None,
                     only: list[str] | None = None, say: Say = print, locust_seconds: int = 10,
                     candidate_kind: str = "auto") -> dict[str, Any]:
    """Run the whole cutover demo under ``run_dir``.

    Args:
        run_dir: every output goes under it.
        traces_dir: where the client-side traces recorded through the proxy go (default ``run_dir/traces``).
        scenarios: scenario files to drive (default :func:`default_scenarios`).
        only: scenario ids to restrict to.
        say: one line of output.
        locust_seconds: length of the locust burst.
        candidate_kind: ``auto`` (pyclaw, else a second legacy), ``pyclaw`` or ``legacy`` (see :func:`start_candidate`).

    Returns:
        A summary for ``summary.json``; ``gate_exit`` is the gate's exit code (0 pass, 1 fail, 2 inconclusive).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    traces_dir = traces_dir or run_dir / "traces"
    scenario_files = [str(p) for p in (scenarios or default_scenarios())]
    summary: dict[str, Any] = {"run_dir": str(run_dir), "traces": str(traces_dir)}
    db = f"sqlite:///{run_dir / 'parity.db'}"
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    with ExitStack() as stack:
        started = time.monotonic()
        say("[demo] booting the fake model, the legacy and the candidate (15-60 s each on 2 cores)")
        fm = FakeModelServer().start()
        stack.callback(fm.stop)
        with ThreadPoolExecutor(2) as pool:
            f_legacy = pool.submit(LegacyGateway.start, LegacyOptions(run_dir=run_dir / "legacy", model_url=fm.url))
            f_candidate = pool.submit(start_candidate, run_dir, fm.url, say, candidate_kind)
        # Both boots are finished here; stop whichever came up, even when the other one failed.
        if f_legacy.exception() is None:
            stack.callback(f_legacy.result().stop)
        if f_candidate.exception() is None:
            stack.callback(f_candidate.result().stop)
        legacy, candidate = f_legacy.result(), f_candidate.result()
        summary["candidate"] = {"kind": candidate.kind, "url": candidate.url, "note": candidate.note}
        say(f"  legacy    {legacy.http_url} (openclaw, booted in {legacy.boot_seconds or 0:.1f} s)")
        say(f"  candidate {candidate.url} ({candidate.kind}{': ' + candidate.note if candidate.note else ''})")

        listen, admin = free_port(), free_port()
        proxy_url, admin_url = f"http://127.0.0.1:{listen}", f"127.0.0.1:{admin}"
        shadow_traces = run_dir / "shadow-traces"
        proxy_env = _env(PARITY_LEGACY_TOKEN=legacy.token or "", PARITY_LEGACY_HOOK_TOKEN=legacy.hook_token,
                         PARITY_CANDIDATE_TOKEN=candidate.token, PARITY_CANDIDATE_HOOK_TOKEN=candidate.hook_token)
        proxy_log = open(logs / "shadow.log", "ab")  # noqa: SIM115 - handed to the child
        proxy = subprocess.Popen(
            [str(BIN / "parity"), "shadow", "--listen", f"127.0.0.1:{listen}", "--admin", admin_url,
             "--legacy", legacy.http_url, "--candidate", candidate.url, "--trace-dir", str(shadow_traces)],
            cwd=ROOT, env=proxy_env, stdout=proxy_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proxy_log.close()
        stack.callback(_stop_process, proxy)
        if not _wait_http(f"http://{admin_url}/healthz", 30, alive=lambda: proxy.poll() is None):
            raise UpstreamError(f"the shadow proxy did not start; see {logs / 'shadow.log'}")
        say(f"  shadow proxy {proxy_url} (admin http://{admin_url}/metrics)")

        prom: PrometheusServer | None = None
        if find_prometheus():
            prom = PrometheusServer(run_dir / "prometheus", [admin_url], scrape_interval=1.0, rule_interval=1.0)
            prom.start()
            stack.callback(prom.stop)
            say(f"  prometheus {prom.url} (data in {prom.workdir / 'data'})")
        else:
            say("  prometheus: not installed (Debian package 'prometheus'); skipping the live metrics")

        say(f"[demo] driving the golden scenarios ({', '.join(Path(f).stem for f in scenario_files)}) through the proxy")
        only_args = [a for i in (only or []) for a in ("--only", i)]
        rc = _run([str(BIN / "parity"), "record", "--target", proxy_url, "--scenarios", *scenario_files,
                   "--out", str(traces_dir), "--token", legacy.token or "", "--hook-token", legacy.hook_token,
                   *only_args], env=_env(), log=logs / "record.log", timeout=420)
        n_traces = len(list(traces_dir.glob("*.jsonl")))
        summary["scenarios"] = {"exit": rc, "traces": n_traces}
        say(f"  scenarios: exit {rc} ({n_traces} client traces in {traces_dir}; log {logs / 'record.log'})")

        say(f"[demo] locust burst: {locust_seconds} s, 4 users, through the proxy")
        rc = _run([str(BIN / "locust"), "--config", "load/profiles/smoke.conf", "--host", proxy_url,
                   "-t", f"{locust_seconds}s", "--csv", str(run_dir / "locust")],
                  env=_env(PARITY_LOAD_TOKEN=legacy.token or "", PARITY_LOAD_HOOK_TOKEN=legacy.hook_token),
                  log=logs / "locust.log", timeout=locust_seconds + 60)
        summary["locust"] = {"exit": rc, "stats": str(run_dir / "locust_stats.csv")}
        verdict = next((ln.split("locustfile: ", 1)[-1] for ln in (logs / "locust.log").read_text(errors="replace")
                        .splitlines() if "parity thresholds" in ln), "no threshold line; see the log")
        say(f"  locust: exit {rc} ({verdict}; stats {run_dir / 'locust_stats.csv'})")

        if prom is not None:
            time.sleep(3.0)  # two scrapes and rule evaluations after the last request
            say("[demo] live metrics (Prometheus, recording rules from dashboards/prometheus/rules.yml)")
            for label, expr in (("pairs by outcome", "sum by (outcome) (parity_pairs_total)"),
                                ("parity ratio (5m)", "parity:parity_ratio:rate5m"),
                                ("latency ratio p50 (5m)", "quantile(0.5, route:parity_latency_ratio:p50_rate5m > 0)"),
                                ("drops", "sum(parity_dropped_total) or vector(0)"),
                                ("candidate errors", "sum(parity_candidate_errors_total) or vector(0)")):
                say(f"  {label:<24} {_prom_value(prom, expr)}")

        _stop_process(proxy)
        client_traces = sorted(str(p) for p in traces_dir.glob("*.jsonl"))
        say(f"[demo] parity database: replaying the {len(client_traces)} client traces to both legs "
            f"(parity replay -> {run_dir / 'parity.db'})")
        rc = _run([str(BIN / "parity"), "replay", *client_traces, "--legacy", legacy.http_url,
                   "--candidate", candidate.url, "--db", db, "--concurrency", "4"],
                  env=_env(PARITY_LEGACY_TOKEN=legacy.token or "", PARITY_LEGACY_HOOK_TOKEN=legacy.hook_token,
                           PARITY_CANDIDATE_TOKEN=candidate.token, PARITY_CANDIDATE_HOOK_TOKEN=candidate.hook_token),
                  log=logs / "replay.log", timeout=600)
        summary["replay"] = {"exit": rc, "db": db}
        say(f"  replay: exit {rc} (log {logs / 'replay.log'})")

        say("[demo] parity report")
        report = subprocess.run([str(BIN / "parity"), "report", "--db", db, "--format", "markdown",
                                 "--out", str(run_dir / "report.md")], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        terminal = subprocess.run([str(BIN / "parity"), "report", "--db", db], cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
        say(terminal.stdout.rstrip() or f"  (report failed: {report.stderr.strip()[-500:]})")

        say(f"[demo] gate verdict (policy {POLICY.relative_to(ROOT)})")
        gate = subprocess.run([str(BIN / "parity"), "gate", "--db", db, "--policy", str(POLICY),
                               "--junit", str(run_dir / "gate.xml"), "--markdown", str(run_dir / "gate.md")],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        say(gate.stdout.rstrip() or gate.stderr.strip())
        summary["gate"] = {"exit": gate.returncode, "junit": str(run_dir / "gate.xml"), "markdown": str(run_dir / "gate.md")}
        summary["gate_exit"] = gate.returncode
        summary["seconds"] = round(time.monotonic() - started, 1)
        say(f"[demo] done in {summary['seconds']:.0f} s. Outputs in {run_dir}: parity.db, report.md, gate.md, "
            f"gate.xml, locust_*.csv, traces/, shadow-traces/, prometheus/data, logs/")
    return summary

"""A local Prometheus for the demo and the dashboard tests: Debian's ``prometheus`` binary on 127.0.0.1.

Owns writing a scrape config for the shadow proxy's admin ``/metrics``, loading ``dashboards/prometheus/rules.yml``
(with its evaluation interval shortened for short runs), starting and stopping the server process (by its own PID),
and instant queries over the HTTP API. Blocking (``subprocess``, ``urllib``); async callers use ``to_thread``.
May import: stdlib, ``wire.errors``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wire.errors import ConfigError, UpstreamError

logger = logging.getLogger(__name__)

__all__ = ["JOB", "RULES_PATH", "PrometheusServer", "find_prometheus", "free_port"]

ROOT = Path(__file__).resolve().parents[1]
RULES_PATH = ROOT / "dashboards" / "prometheus" / "rules.yml"
JOB = "parity-shadow"


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary (PATH, then Debian's /usr/bin), or None."""
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """One Prometheus process with its config, rules and TSDB under ``workdir``.

    Args:
        workdir: directory for ``prometheus.yml``, ``rules.yml``, ``data/`` and ``prometheus.log``.
        targets: ``host:port`` of the shadow proxy admin endpoints to scrape (job ``parity-shadow``).
        scrape_interval: seconds between scrapes.
        rule_interval: seconds between rule evaluations (replaces the interval in rules.yml).
    """

    def __init__(self, workdir: Path, targets: Sequence[str], *, scrape_interval: float = 1.0,
                 rule_interval: float = 1.0, binary: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.rule_interval = rule_interval
        self.binary = binary or find_prometheus()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = RULES_PATH.read_text()
        rules, n = re.subn(r"(?m)^(\s+interval:\s*)\S+$", rf"\g<1>{_dur(self.rule_interval)}", rules)
        if n == 0:
            raise ConfigError(f"{RULES_PATH}: no group interval to shorten")
        (self.workdir / "rules.yml").write_text(rules)
        targets = ", ".join(json.dumps(t) for t in self.targets)
        config = (
            "# Written by parity.prometheus for a local run; scrapes the shadow proxy admin endpoint.\n"
            "global:\n"
            f"  scrape_interval: {_dur(self.scrape_interval)}\n"
            f"  evaluation_interval: {_dur(self.rule_interval)}\n"
            "rule_files:\n"
            "  - rules.yml\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            f"    scrape_timeout: {_dur(min(self.scrape_interval, 10.0))}\n"
            f"    static_configs:\n"
            f"      - targets: [{targets}]\n"
        )
        path = self.workdir / "prometheus.yml"
        path.write_text(config)
        return path

    def start(self, *, timeout: float = 60.0) -> PrometheusServer:
        if self.binary is None:
            raise ConfigError("prometheus: binary not found (Debian package 'prometheus'; scripts/setup.sh installs it)")
        config = self.write_config()
        for _attempt in range(5):
            self.port = free_port()
            log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
            try:
                self.proc = subprocess.Popen(
                    [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                     "--storage.tsdb.retention.time=7d"],
                    cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()
            if self._wait_ready(timeout):
                logger.info("prometheus ready on %s (pid %s)", self.url, self.proc.pid)
                return self
            self.stop()
            if "address already in use" not in self.log_path.read_text(errors="replace"):
                break
        raise UpstreamError(f"prometheus did not become ready; see {self.log_path}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (empty when no series). Raises UpstreamError on an API error."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise UpstreamError(f"prometheus rejected {expr!r}: {exc.read().decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise UpstreamError(f"prometheus at {self.url} unreachable: {exc}") from exc
        if body.get("status") != "success":
            raise UpstreamError(f"prometheus query {expr!r} failed: {body}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def targets_up(self) -> bool:
        return bool(self.query(f'up{{job="{JOB}"}} == 1'))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _dur(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 or seconds != int(seconds) else f"{int(seconds)}s"

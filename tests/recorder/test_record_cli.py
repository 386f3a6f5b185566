"""``parity record``: exit codes, messages and the traces it leaves behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from parity.cli import main
from recorder.format import read_trace
from tests.recorder.conftest import ToyGateway

TWO = """\
scenarios:
  - id: first
    steps:
      - ws_connect: {conn: c1}
      - ws_rpc: {conn: c1, method: health}
  - id: second
    steps:
      - http: {path: /healthz}
"""


def test_malformed_scenario_file_exits_2_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - id: x\n    steps:\n      - ws_rpc: {conn: c1}\n")
    out = tmp_path / "out"
    rc = main(["record", "--target", "http://127.0.0.1:9", "--scenarios", str(bad), "--out", str(out)])
    assert rc == 2
    assert f"{bad}:4: ws_rpc: missing required argument 'method'" in capsys.readouterr().err
    assert not out.exists()  # nothing ran


def test_down_target_exits_1_and_keeps_incomplete_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.yaml").write_text(TWO)
    out = tmp_path / "out"
    rc = main(["record", "--target", "http://127.0.0.1:9", "--token", "t", "--scenarios", str(tmp_path / "s.yaml"),
               "--out", str(out)])
    assert rc == 1
    assert "target down" in capsys.readouterr().err
    for name in ("first", "second"):
        trace = read_trace((out / f"{name}.jsonl").open(), strict=True)
        assert trace.complete is False and trace.error and "127.0.0.1:9" in trace.error
        assert trace.header.scenario == name and trace.header.tool.startswith("openclaw-parity")


def test_password_scenarios_without_a_password_target_are_skipped(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("scenarios:\n  - id: pw\n    requires: {auth: password}\n"
                                     "    steps: [{sleep_ms: 1}]\n")
    rc = main(["record", "--target", "http://127.0.0.1:9", "--scenarios", str(tmp_path / "p.yaml"),
               "--out", str(tmp_path / "out")])
    assert rc == 1 and "skipped pw: requires auth=password" in capsys.readouterr().err
    assert not (tmp_path / "out" / "pw.jsonl").exists()


def test_unknown_only_id_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(TWO)
    assert main(["record", "--target", "http://127.0.0.1:9", "--scenarios", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--only", "nope"]) == 2


async def test_recording_a_live_target_writes_one_complete_trace_per_scenario(toy: ToyGateway, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(TWO)
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parity", "record", "--target", toy.url, "--token", toy.token,
        "--scenarios", str(tmp_path / "s.yaml"), "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    assert "recorded 2/2 scenarios" in stdout.decode()
    for name in ("first", "second"):
        text = (out / f"{name}.jsonl").read_text()
        assert toy.token not in text
        trace = read_trace((out / f"{name}.jsonl").open(), strict=True)
        assert trace.complete and trace.header.target == toy.url and trace.header.recorded_at

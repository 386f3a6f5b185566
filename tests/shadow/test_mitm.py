"""The mitmproxy adapter: ``mitmdump -s shadow/mitm.py`` in reverse mode in front of a fake legacy mirrors to a
fake candidate through the same pipeline, and its flow file imports into a trace. Runs from the mitm venv
(``scripts/setup-extras.sh``), as a subprocess: mitmproxy never enters the main venv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from _timing import S, async_wait_until
from shadow_fakes import FakeGateway, free_port, http_transcript, ws_transcript

from recorder.format import read_trace
from wire.model import Kind

ROOT = Path(__file__).parents[2]
MITM_VENV = ROOT / ".cache" / "mitm-venv"
MITMDUMP = MITM_VENV / "bin" / "mitmdump"

pytestmark = pytest.mark.skipif(not MITMDUMP.exists(),
                                reason=f"mitmproxy venv not installed ({MITMDUMP} missing; run scripts/setup-extras.sh)")


async def test_mitmdump_addon_mirrors_and_flows_import(tmp_path, fake_legacy: FakeGateway,
                                                       fake_candidate: FakeGateway) -> None:
    port, admin_port = free_port(), free_port()
    cfg = tmp_path / "shadow.toml"
    cfg.write_text(f'[legacy]\nurl = "{fake_legacy.url}"\ntoken = "tok-legacy"\n'
                   f'[candidate]\nurl = "{fake_candidate.url}"\ntoken = "tok-cand"\n'
                   '[limits]\ncandidate_timeout = 2.0\n'
                   f'[record]\ntrace_dir = "{tmp_path / "addon-traces"}"\n')
    flows = tmp_path / "flows.mitm"
    proc = subprocess.Popen(
        [str(MITMDUMP), "--mode", f"reverse:{fake_legacy.url}", "--listen-host", "127.0.0.1", "-p", str(port),
         "-s", str(ROOT / "shadow" / "mitm.py"), "--set", f"shadow_config={cfg}",
         "--set", f"shadow_admin=127.0.0.1:{admin_port}", "--set", f"confdir={tmp_path / 'mitmconf'}",
         "-w", str(flows), "-q"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        async def up() -> bool:
            if proc.poll() is not None:
                return True
            try:
                async with aiohttp.ClientSession() as s, s.get(admin + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False
        await async_wait_until(up, 60 * S, what="mitmdump with the shadow addon")
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "mitmdump exited"
        direct_http = [(r[0], r[1], r[2], r[5]) for r in await http_transcript(fake_legacy.url)]
        direct_ws = await ws_transcript(fake_legacy.url)
        assert [(r[0], r[1], r[2], r[5]) for r in await http_transcript(url)] == direct_http
        assert await ws_transcript(url) == direct_ws
        await async_wait_until(lambda: fake_candidate.connects and any('"health"' in f for f in fake_candidate.ws_frames),
                               10 * S, what="WS mirrored by the addon")
        assert fake_candidate.connects[0]["auth"] == {"token": "tok-cand"}
        assert any(p == "/healthz" for _, p, _, _ in fake_candidate.http_requests)

        async def metrics() -> str:
            async with aiohttp.ClientSession() as s, s.get(admin + "/metrics") as r:
                return await r.text()
        await async_wait_until(lambda: _has(metrics, 'parity_pairs_total{outcome="match",route="health"} 1.0'),
                               10 * S, what="health pair counted by the addon")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    # the addon records both legs through the same mirror side as the proxy (shadow.side.LocalSide), redacted
    (trace,) = (tmp_path / "addon-traces").glob("shadow-*.jsonl")
    text = trace.read_text()
    assert {json.loads(line).get("leg") for line in text.splitlines()[1:]} >= {"legacy", "candidate"}
    assert "tok-legacy" not in text and "tok-cand" not in text
    out = tmp_path / "imported" / "flows.jsonl"
    res = subprocess.run([str(MITM_VENV / "bin" / "python"), "-m", "parity", "import", str(flows), "--out",
                          str(out.parent)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    trace = read_trace(open(out), strict=True)
    kinds = {o.kind for o in trace.observations}
    assert {Kind.HTTP_REQUEST, Kind.HTTP_RESPONSE, Kind.WS_OPEN, Kind.WS_TEXT} <= kinds
    gets = [o for o in trace.observations if o.kind is Kind.HTTP_REQUEST and o.method == "GET"]
    assert gets and all(o.data == "" for o in gets)  # an empty body reads as "", like the live paths record it
    assert "tok-legacy" not in out.read_text()


async def _has(fetch, needle: str) -> bool:  # noqa: ANN001
    return needle in await fetch()


def test_importer_without_the_extra_says_how_to_get_it(tmp_path) -> None:
    """In the main venv, importing a flow file fails with a clear message, never a traceback."""
    try:
        import mitmproxy  # noqa: F401
        pytest.skip("mitmproxy is importable in this venv; the missing-extra path cannot be exercised")
    except ImportError:
        pass
    from shadow.importer import import_file
    from wire.errors import ConfigError

    f = tmp_path / "x.flows"
    f.write_bytes(b"\x00not-a-har")
    with pytest.raises(ConfigError, match="needs the 'mitm' extra"):
        import_file(f, tmp_path / "x.jsonl")

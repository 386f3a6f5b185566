"""The Node preload guard, run with the pinned Node 24 on small scripts: refuse and log non-loopback, pass loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _timing import S

from parity.legacy.config import GUARD_LOG_ENV, GUARD_PATH
from parity.legacy.install import Installation, find_installation
from wire.errors import LegacyError


@pytest.fixture(scope="module")
def node() -> Path:
    try:
        inst: Installation = find_installation()
    except LegacyError as exc:
        pytest.fail(f"Node 24 is needed for the guard tests: {exc}", pytrace=False)
    return inst.node


def run_guarded(node: Path, tmp_path: Path, script: str, *, guard: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Run an ES module under the guard; it prints one JSON object of results. Returns (results, guard lines)."""
    path = tmp_path / "probe.mjs"
    path.write_text(script)
    log = tmp_path / "guard.log"
    env = {"PATH": "/usr/bin:/bin", GUARD_LOG_ENV: str(log)}
    if guard:
        env["NODE_OPTIONS"] = f"--require {GUARD_PATH}"
    proc = subprocess.run([str(node), str(path)], env=env, capture_output=True, text=True, timeout=60 * S)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines() if log.exists() else []
    return json.loads(proc.stdout.strip().splitlines()[-1]), lines


PRELUDE = """
import dns from 'node:dns';
import { lookup as plookup, resolve4 as presolve4 } from 'node:dns/promises';
import net from 'node:net';
import dgram from 'node:dgram';
import { once } from 'node:events';
const out = {};
const code = (p) => p.then(() => 'ok', (e) => e.code);
const cb = (fn) => new Promise((res) => fn((e) => res(e ? e.code : 'ok')));
async function tcp(host, port) {
  const s = net.connect({ host, port });
  try { await once(s, 'connect'); s.destroy(); return 'ok'; } catch (e) { return e.code; }
}
"""


def test_public_lookups_are_refused_and_logged(node: Path, tmp_path: Path) -> None:
    results, lines = run_guarded(node, tmp_path, PRELUDE + """
out.plookup = await code(plookup('clawhub.ai'));
out.lookup = await cb((k) => dns.lookup('example.com', k));
out.lookupAll = await cb((k) => dns.lookup('example.org', { all: true }, k));
out.resolve4 = await cb((k) => dns.resolve4('example.net', k));
out.presolve4 = await code(presolve4('example.info'));
out.resolverTxt = await cb((k) => new dns.Resolver().resolveTxt('example.edu', k));
out.local = await cb((k) => dns.lookup('localhost', k));
console.log(JSON.stringify(out));
""")
    assert results == {"plookup": "ENOTFOUND", "lookup": "ENOTFOUND", "lookupAll": "ENOTFOUND",
                       "resolve4": "ENOTFOUND", "presolve4": "ENOTFOUND", "resolverTxt": "ENOTFOUND", "local": "ok"}
    assert lines == [
        "BLOCKED dns.promises.lookup clawhub.ai",
        "BLOCKED dns.lookup example.com",
        "BLOCKED dns.lookup example.org",
        "BLOCKED dns.resolve4 example.net",
        "BLOCKED dns.promises.resolve4 example.info",
        "BLOCKED dns.Resolver.resolveTxt example.edu",
    ]


def test_connects_and_sends_off_loopback_are_refused_asynchronously(node: Path, tmp_path: Path) -> None:
    results, lines = run_guarded(node, tmp_path, PRELUDE + """
let sync = true;
const s = net.connect(443, '192.0.2.10');
s.on('error', (e) => { out.asyncError = !sync; });
sync = false;
out.tcp = await tcp('192.0.2.11', 80);
out.tcpName = await tcp('example.com', 443);
const u = dgram.createSocket('udp4');
out.udp = await cb((k) => u.send('x', 53, '198.51.100.1', k));
u.close();
out.fetch = await fetch('http://203.0.113.5/').then(() => 'ok', (e) => e.cause && e.cause.code);
await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify(out));
""")
    assert results == {"asyncError": True, "tcp": "ECONNREFUSED", "tcpName": "ECONNREFUSED", "udp": "ECONNREFUSED",
                       "fetch": "ECONNREFUSED"}
    assert lines == [
        "BLOCKED net.connect 192.0.2.10:443",
        "BLOCKED net.connect 192.0.2.11:80",
        "BLOCKED net.connect example.com:443",
        "BLOCKED dgram.send 198.51.100.1:53",
        "BLOCKED net.connect 203.0.113.5:80",
    ]


def test_loopback_and_unix_sockets_pass(node: Path, tmp_path: Path) -> None:
    sock = str(tmp_path / "s.sock")
    results, lines = run_guarded(node, tmp_path, PRELUDE + f"""
const quiet = (c) => {{ c.on('error', () => {{}}); c.end('hi'); }};
const srv = net.createServer(quiet).listen(0, '127.0.0.1');
await once(srv, 'listening');
const port = srv.address().port;
out.v4 = await tcp('127.0.0.1', port);
out.name = await tcp('localhost', port);
out.other127 = await tcp('127.0.0.2', port).then((r) => r === 'ECONNREFUSED' ? 'kernel-refused' : r);
const srv6 = net.createServer(quiet).listen(0, '::1');
await once(srv6, 'listening');
out.v6 = await tcp('::1', srv6.address().port);
const us = net.createServer(quiet).listen({sock!r});
await once(us, 'listening');
const c = net.connect({sock!r});
out.unix = await once(c, 'connect').then(() => 'ok', (e) => e.code);
c.destroy();
const recv = dgram.createSocket('udp4');
recv.bind(0, '127.0.0.1');
await once(recv, 'listening');
const u = dgram.createSocket('udp4');
out.udp = await cb((k) => u.send('x', recv.address().port, '127.0.0.1', k));
const body = await new Promise((res) => {{
  const h = net.createServer((c) => c.end('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\nok'));
  h.listen(0, '127.0.0.1', () => fetch(`http://127.0.0.1:${{h.address().port}}/`).then((r) => r.text()).then(res, (e) => res(String(e))));
}});
out.fetch = body;
console.log(JSON.stringify(out));
process.exit(0);
""")
    assert results == {"v4": "ok", "name": "ok", "other127": "kernel-refused", "v6": "ok", "unix": "ok", "udp": "ok",
                       "fetch": "ok"}
    assert lines == []


def test_guard_is_inherited_by_child_node_processes(node: Path, tmp_path: Path) -> None:
    results, lines = run_guarded(node, tmp_path, PRELUDE + f"""
import {{ execFileSync }} from 'node:child_process';
const child = "require('dns').lookup('child.example', (e) => console.log(e ? e.code : 'ok'))";
out.child = execFileSync({str(node)!r}, ['-e', child]).toString().trim();
console.log(JSON.stringify(out));
""")
    assert results == {"child": "ENOTFOUND"}
    assert lines == ["BLOCKED dns.lookup child.example"]


def test_without_the_guard_nothing_is_logged(node: Path, tmp_path: Path) -> None:
    # Control: the same loopback probe unguarded leaves no log, so the lines above come from the guard.
    results, lines = run_guarded(node, tmp_path, PRELUDE + """
out.local = await cb((k) => dns.lookup('localhost', k));
console.log(JSON.stringify(out));
""", guard=False)
    assert results == {"local": "ok"} and lines == []

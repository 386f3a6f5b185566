"""Probes, common headers, 404/405 and the SPA fallback of the candidate, checked against the legacy's recording."""

from __future__ import annotations

import re
from typing import Any

import pytest
from h4b_support import Candidate, CandidateFactory

from gateway.http.headers import accepts_html
from gateway.http.probes import probe_kind

BASELINE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
}


def legacy_headers(capture: dict[str, Any], name: str) -> dict[str, str]:
    return {k: v for k, v in capture[name]["headers"]}


def assert_same_headers(ours: Any, theirs: dict[str, str], names: list[str]) -> None:
    for n in names:
        assert ours.get(n) == theirs.get(n), f"header {n}: candidate {ours.get(n)!r} legacy {theirs.get(n)!r}"


@pytest.mark.parametrize("path", ["/healthz", "/health"])
async def test_live_probe_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any], path: str) -> None:
    r = await candidate.client.get(path)
    assert r.status == 200
    assert await r.text() == legacy_capture["healthz"]["body"]
    assert_same_headers(r.headers, legacy_headers(legacy_capture, "healthz"),
                        [*BASELINE, "Content-Type", "Cache-Control", "Content-Length", "Connection", "Keep-Alive"])


async def test_no_server_header_like_node(candidate: Candidate) -> None:
    for method, path in (("GET", "/healthz"), ("GET", "/x"), ("POST", "/tools/invoke"), ("POST", "/nope")):
        r = await candidate.client.request(method, path)
        assert "Server" not in r.headers, (method, path)


async def test_head_probe_has_length_but_no_body(candidate: Candidate) -> None:
    r = await candidate.client.head("/healthz")
    assert r.status == 200
    assert r.headers["Content-Length"] == "27"
    assert await r.read() == b""


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/startup"])
async def test_probe_rejects_post_like_legacy(candidate: Candidate, legacy_capture: dict[str, Any], path: str) -> None:
    r = await candidate.client.post(path)
    assert r.status == 405
    assert await r.text() == "Method Not Allowed"
    assert_same_headers(r.headers, legacy_headers(legacy_capture, "healthz_post"), [*BASELINE, "Allow", "Content-Type"])


async def test_ready_and_startup_details_have_legacy_keys(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    import json

    for ours, theirs in (("/readyz", "readyz"), ("/ready", "ready"), ("/startupz", "startupz")):
        r = await candidate.client.get(ours)
        assert r.status == 200
        body = await r.json()
        legacy = json.loads(legacy_capture[theirs]["body"])
        assert set(body) == set(legacy), ours
        if "eventLoop" in body:
            assert set(body["eventLoop"]) == set(legacy["eventLoop"])
        assert r.headers["Cache-Control"] == "no-store"
    r = await candidate.client.get("/startupz")
    assert (await r.json())["version"] == "2026.9.6"


def test_probe_classification() -> None:
    assert probe_kind("/healthz") == "live"
    assert probe_kind("/ready") == "ready"
    assert probe_kind("/startupz") == "startup"
    assert probe_kind("/healthz/x") == "namespace"
    assert probe_kind("/healthzz") == "outside"


async def test_probe_namespace_is_404(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.get("/healthz/x")
    assert (r.status, await r.text()) == (legacy_capture["healthz_sub"]["status"], legacy_capture["healthz_sub"]["body"])


async def test_spa_fallback_for_unknown_get(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    legacy = legacy_headers(legacy_capture, "spa")
    for path in ("/", "/definitely/not/here"):
        r = await candidate.client.get(path)
        assert r.status == 200
        assert "<html" in await r.text()
        assert_same_headers(r.headers, legacy, ["X-Content-Type-Options", "Referrer-Policy", "Permissions-Policy",
                                                "X-Frame-Options", "Content-Type", "Cache-Control", "Vary"])
        csp = r.headers["Content-Security-Policy"]
        assert csp.startswith("default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
        assert csp.endswith("http://127.0.0.1:* https://127.0.0.1:*") == legacy["Content-Security-Policy"].endswith(
            "http://127.0.0.1:* https://127.0.0.1:*")
    r = await candidate.client.head("/x/y")
    assert r.status == 200 and await r.read() == b""
    head = legacy_headers(legacy_capture, "spa_head")
    assert_same_headers(r.headers, head, ["Permissions-Policy", "X-Frame-Options", "Content-Security-Policy",
                                          "Content-Type", "Cache-Control", "Vary"])


@pytest.mark.parametrize(("method", "path", "headers", "capture"), [
    ("POST", "/definitely/not/here", {}, "spa_post"),
    ("GET", "/x", {"Accept": "application/json"}, "spa_json_accept"),
    ("GET", "/v1/other", None, "v1_other"),
    ("POST", "/v1/other", None, "v1_other_post"),
])
async def test_not_found_answers_match_legacy(candidate: Candidate, legacy_capture: dict[str, Any], method: str,
                                              path: str, headers: dict[str, str] | None, capture: str) -> None:
    r = await candidate.client.request(method, path, headers=candidate.auth if headers is None else headers)
    assert r.status == legacy_capture[capture]["status"] == 404
    assert await r.text() == legacy_capture[capture]["body"] == "Not Found"
    assert_same_headers(r.headers, legacy_headers(legacy_capture, capture),
                        [*BASELINE, "Content-Type", "X-Frame-Options", "Content-Security-Policy"])


async def test_v1_disabled_is_404_with_or_without_bearer(candidate_factory: CandidateFactory) -> None:
    off = {"gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": False}, "responses": {"enabled": False}}}}}
    async with candidate_factory(off) as c:
        for path in ("/v1/models", "/v1/chat/completions", "/v1/responses"):
            for headers in ({}, c.auth):
                r = await c.client.post(path, headers=headers, json={})
                assert (r.status, await r.text()) == (404, "Not Found"), path
                assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(("method", "path", "capture"), [
    ("GET", "/v1/models", "models_noauth"), ("POST", "/v1/chat/completions", "cc_noauth"),
    ("POST", "/tools/invoke", "ti_noauth"),
])
async def test_unauthorized_json_without_www_authenticate(candidate: Candidate, legacy_capture: dict[str, Any],
                                                          method: str, path: str, capture: str) -> None:
    r = await candidate.client.request(method, path, json={})
    assert r.status == 401
    assert await r.text() == legacy_capture[capture]["body"]
    assert "WWW-Authenticate" not in r.headers
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_non_websocket_upgrade_is_bad_request(candidate: Candidate) -> None:
    r = await candidate.client.get("/", headers={"Upgrade": "h2c", "Connection": "Upgrade"})
    assert r.status == 400
    assert await r.text() == "Bad Request"


@pytest.mark.parametrize(("accept", "html"), [
    (None, True), ("", True), ("*/*", True), ("text/html", True), ("application/json", False),
    ("application/json, text/html;q=0", False), ("application/xhtml+xml", True), ("text/*;q=0.5", True),
    ("text/html;q=0, */*", False),
])
def test_accepts_html(accept: str | None, html: bool) -> None:
    assert accepts_html(accept) is html


async def test_handler_error_is_plain_500(candidate: Candidate) -> None:
    """A broken session store (unreadable dir) must give the legacy's plain 500, not a traceback page."""
    import shutil

    from gateway.app import SESSIONS_KEY

    sessions_dir = candidate.app[SESSIONS_KEY].sessions_dir("main")
    sessions_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(sessions_dir, ignore_errors=True)
    sessions_dir.write_text("not a directory")  # every transcript write now fails with NotADirectoryError
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth,
                                    json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]})
    assert (r.status, await r.text()) == (500, "Internal Server Error")
    assert r.headers["Cache-Control"] == "no-store"


async def test_probe_details_only_for_local_or_authenticated(candidate: Candidate) -> None:
    proxied = {"X-Forwarded-For": "203.0.113.7"}  # proxy headers from an untrusted peer: treated as remote
    r = await candidate.client.get("/readyz", headers=proxied)
    assert await r.json() == {"ready": True}
    r = await candidate.client.get("/startupz", headers=proxied)
    assert await r.json() == {"ok": True, "status": "started"}
    r = await candidate.client.get("/readyz", headers={**proxied, **candidate.auth})
    assert set(await r.json()) == {"ready", "failing", "uptimeMs", "eventLoop"}


def test_hooks_config_errors_use_the_legacys_texts(tmp_path: Any) -> None:
    from gateway.app import make_app
    from gateway.config import config_from_mapping
    from wire.errors import ConfigError

    base = {"gateway": {"mode": "local", "auth": {"mode": "token", "token": "t" * 32}}}
    for hooks, text in (({"enabled": True}, "hooks.enabled requires hooks.token"),
                        ({"enabled": True, "token": "x" * 20, "path": "/"}, "hooks.path may not be '/'")):
        with pytest.raises(ConfigError, match=re.escape(text)):
            make_app(config_from_mapping({**base, "hooks": hooks}, tmp_path))

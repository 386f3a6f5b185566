"""The fake OpenAI-compatible model server: plain JSON, SSE streaming, models list, counting, standalone use."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from _timing import S

from parity.legacy.fakemodel import FakeModelServer


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fm:
        yield fm


def _post(url: str, body: object) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10 * S) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read()


def _sse(raw: bytes) -> list[str]:
    return [line[len("data: "):] for line in raw.decode().split("\n\n") if line.startswith("data: ")]


def test_models_list_names_the_fake_model(server: FakeModelServer) -> None:
    with urllib.request.urlopen(f"{server.url}/models", timeout=10 * S) as resp:
        body = json.loads(resp.read())
    assert [m["id"] for m in body["data"]] == ["fake-model"]
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    assert server.request_count("GET /v1/models") == 1


def test_plain_completion_is_deterministic(server: FakeModelServer) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "ping"}], "tools": [{"x": 1}]}
    first = _post(f"{server.url}/chat/completions", body)
    second = _post(f"{server.url}/chat/completions", body)
    assert first == second
    status, ctype, raw = first
    answer = json.loads(raw)
    assert status == 200 and ctype == "application/json"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "PONG from fake model"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert server.request_count("POST /v1/chat/completions") == 2


def test_streaming_sends_role_deltas_finish_then_done(server: FakeModelServer) -> None:
    status, ctype, raw = _post(f"{server.url}/chat/completions", {"model": "fake-model", "stream": True})
    events = _sse(raw)
    assert status == 200 and ctype == "text/event-stream"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "PONG from fake model"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert not any("usage" in c for c in chunks)


def test_streaming_usage_chunk_only_when_asked(server: FakeModelServer) -> None:
    body = {"stream": True, "stream_options": {"include_usage": True}}
    chunks = [json.loads(e) for e in _sse(_post(f"{server.url}/chat/completions", body)[2])[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_reply_text_is_configurable() -> None:
    with FakeModelServer(reply="hello there") as fm:
        answer = json.loads(_post(f"{fm.url}/chat/completions", {})[2])
    assert answer["choices"][0]["message"]["content"] == "hello there"


def test_bad_json_and_unknown_routes_are_clear_errors(server: FakeModelServer) -> None:
    req = urllib.request.Request(f"{server.url}/chat/completions", data=b"{nope")
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(req, timeout=10 * S)
    assert bad.value.code == 400 and b"invalid JSON" in bad.value.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server.url}/nowhere", timeout=10 * S)
    assert missing.value.code == 404


def test_standalone_module_serves_on_the_given_port() -> None:
    from parity.legacy.process import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "parity.legacy.fakemodel", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        answer = json.loads(_post(f"http://127.0.0.1:{port}/v1/chat/completions", {})[2])
        assert answer["choices"][0]["message"]["content"] == "PONG from fake model"
    finally:
        proc.terminate()
        proc.wait(timeout=10 * S)


def test_client_hanging_up_mid_stream_is_counted_not_dumped(server: FakeModelServer, capfd: pytest.CaptureFixture[str]) -> None:
    import socket
    import struct
    import time

    body = json.dumps({"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    deadline = time.monotonic() + 20 * S
    while server.counts().get("client disconnected", 0) == 0 and time.monotonic() < deadline:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5 * S)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        sock.sendall(request)
        sock.close()
        time.sleep(0.05)
    assert server.counts().get("client disconnected", 0) >= 1
    # The server keeps serving, and nothing was dumped on stderr.
    status, _, _ = _post(f"{server.url}/chat/completions", {"model": "fake-model", "messages": []})
    assert status == 200
    assert "Traceback" not in capfd.readouterr().err

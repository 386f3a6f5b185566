"""A deterministic fake OpenAI-compatible model server: the one accepted stand-in in the test suite.

Owns ``FakeModelServer`` (a stdlib ``ThreadingHTTPServer`` on 127.0.0.1, served from a daemon thread) and the
``python -m parity.legacy.fakemodel`` entry point. Imports only the standard library.

Endpoints (reference section 1.9): ``GET /v1/models`` (also the provider preflight probe) and
``POST /v1/chat/completions`` answered as plain JSON, or as SSE when ``stream: true`` (role chunk, content deltas,
finish chunk, optional usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``). Tools, tool
choice and token limits are ignored. Every answer is the same for the same request, so turns are deterministic.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

MODEL_ID = "fake-model"
DEFAULT_REPLY = ("PONG", " from fake model")
#: Fixed so answers are byte-stable across runs.
CREATED = 1_700_000_000


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("fakemodel: " + format, *args)

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        self.server.count(f"GET {path}")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "fake"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route GET {path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        self.server.count(f"POST {path}")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"invalid JSON body: {exc}", "type": "invalid_request_error"}})
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route POST {path}", "type": "not_found"}})
            return
        parts = self.server.reply
        model = str(body.get("model") or MODEL_ID)
        usage = {"prompt_tokens": 10, "completion_tokens": len(parts), "total_tokens": 10 + len(parts)}
        if not body.get("stream"):
            self._send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                             "finish_reason": "stop"}],
                "usage": usage,
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model}
        chunks: list[dict[str, Any]] = [{**base, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in parts]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], reply: tuple[str, ...]) -> None:
        super().__init__(address, _Handler)
        self.reply = reply
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def handle_error(self, request: Any, client_address: tuple[str, int]) -> None:
        # A client that hangs up mid-stream (a cancelled turn, a test closing early) is normal here:
        # count it and log at debug instead of the stdlib's traceback on stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            self.count("client disconnected")
            logger.debug("fake model: client %s disconnected: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class FakeModelServer:
    """``fm = FakeModelServer(); fm.start(); fm.url -> "http://127.0.0.1:P/v1"; fm.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, reply: tuple[str, ...] | str = DEFAULT_REPLY) -> None:
        self.host = host
        self.requested_port = port
        self.reply: tuple[str, ...] = (reply,) if isinstance(reply, str) else tuple(reply)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeModelServer:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.requested_port), self.reply)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-model", daemon=True)
        self._thread.start()
        logger.info("fake model server on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake model server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL including ``/v1``, as OpenClaw's provider ``baseUrl`` wants it."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def reply_text(self) -> str:
        return "".join(self.reply)

    def counts(self) -> dict[str, int]:
        """Requests served so far, keyed ``"METHOD /path"``."""
        if self._server is None:
            return {}
        with self._server._lock:
            return dict(self._server.counts)

    def request_count(self, key: str | None = None) -> int:
        counts = self.counts()
        return sum(counts.values()) if key is None else counts.get(key, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.legacy.fakemodel", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default=None, help="reply text (default 'PONG from fake model')")
    args = parser.parse_args(argv)
    server = FakeModelServer(args.host, args.port, reply=args.reply or DEFAULT_REPLY).start()
    print(f"fake model server listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

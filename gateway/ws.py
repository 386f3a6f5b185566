"""The WebSocket connection shell: read frames, apply the protocol-4 rules, write frames.

Owns ``websocket_handler`` (aiohttp ``WebSocketResponse`` on any path): the ``connect.challenge``, the pre-auth
64 KiB cap (1009), the handshake timeout (1000, empty reason), the first-frame rules (parse error -> 1000;
non-request -> 1008 ``invalid request frame``; other method -> ``invalid handshake: first request must be
connect``; bad params -> ``invalid connect params: …``), connect authentication (``gateway.handshake``), then
request dispatch with the legacy's odd-frame answers (reference §2.6). Frames are validated by
``gateway.protocol`` (sans-I/O); this module only moves bytes and tasks. One writer task per connection drains
``ClientConn``'s queue so the per-client ``seq`` order is the wire order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from gateway.app import CONFIG_KEY, STATE_KEY
from gateway.auth import peer_ip
from gateway.diagnostics import DIAGNOSTICS_KEY
from gateway.dispatch import MethodContext, dispatch
from gateway.handshake import handle_connect
from gateway.protocol import REQUEST_FRAME, error_shape, format_errors, truncate_close_reason, validate
from gateway.state import ClientConn, dumps, now_ms

__all__ = ["MAX_PAYLOAD", "PREAUTH_MAX", "websocket_handler"]

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 26_214_400
PREAUTH_MAX = 65_536
CHALLENGE_CAPABILITIES = ["model-catalog-snapshot"]


class ConnLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds ``conn`` and ``peer`` to every record (JSON logs carry them as fields)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.update(self.extra or {})
        kwargs["extra"] = extra
        return f"[conn={str(extra.get('conn', ''))[:8]}] {msg}", kwargs


async def _writer(ws: web.WebSocketResponse, conn: ClientConn, log: ConnLogger) -> None:
    try:
        while True:
            text = await conn.next_frame()
            if text is None:
                break
            await ws.send_str(text)
    except (ConnectionError, RuntimeError) as exc:
        log.debug("send failed: %s", exc)
    finally:
        code, reason = conn.close_request or (1000, "")
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=reason.encode("utf-8"))
        conn.closed.set()


def _frame_text(msg: Any) -> tuple[bytes, str | None]:
    """``(raw bytes, text or None when not valid UTF-8)``."""
    if msg.type == WSMsgType.TEXT:
        text: str = msg.data
        return text.encode("utf-8", errors="surrogatepass"), text
    raw: bytes = msg.data
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw, None


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    state, config = app[STATE_KEY], app[CONFIG_KEY]
    ws = web.WebSocketResponse(max_msg_size=MAX_PAYLOAD, autoping=True, compress=False, timeout=5.0)
    await ws.prepare(request)
    transport = request.transport
    conn = ClientConn(str(uuid.uuid4()), peer_ip(request),
                      buffer_size=(lambda: transport.get_write_buffer_size()) if transport is not None else None)
    log = ConnLogger(logger, {"conn": conn.conn_id, "peer": conn.peer})
    state.register(conn)
    writer: asyncio.Future[None] = asyncio.ensure_future(_writer(ws, conn, log))
    nonce = str(uuid.uuid4())
    conn.enqueue(dumps({"type": "event", "event": "connect.challenge",
                        "payload": {"nonce": nonce, "ts": now_ms(), "capabilities": CHALLENGE_CAPABILITIES}}))
    if not state.accepting:
        conn.request_close(1012, "service restart")

    def handshake_deadline() -> None:
        if not conn.authorized:
            log.info("handshake timeout")
            conn.request_close(1000, "")

    # a timer handle, not a task: cheaper to arm and cancel on every connect
    timer = asyncio.get_running_loop().call_later(config.handshake_timeout_ms / 1000, handshake_deadline)
    inflight: set[asyncio.Future[Any]] = set()
    try:
        while conn.close_request is None:
            # when the writer closes the socket (timeout, slow consumer, shutdown), aiohttp hands this pending
            # receive a CLOSING message, so one plain await is enough
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                if msg.type == WSMsgType.ERROR and not conn.authorized:
                    exc = ws.exception()
                    log.info("ws error: %s", exc)
                break
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            raw, text = _frame_text(msg)
            if not conn.authorized:
                if len(raw) > PREAUTH_MAX:
                    log.info("preauth payload too large (%d bytes)", len(raw))
                    request.app[DIAGNOSTICS_KEY].record("payload.large", surface="gateway.ws.preauth", action="rejected",
                                                        limitBytes=PREAUTH_MAX, reason="preauth_frame_limit")
                    conn.request_close(1009, "")  # observed: 1009 with an empty reason (reference §2.8 says otherwise)
                    break
                parsed = _parse(text)
                if parsed is _BAD:
                    log.info("parse-error before handshake")
                    conn.request_close(1000, "")
                    break
                await _handshake(request, conn, parsed, nonce, log)
                if conn.authorized:
                    timer.cancel()
                continue
            parsed = _parse(text)
            if parsed is _BAD:
                log.info("parse-error")
                continue
            fut = asyncio.ensure_future(_handle_request(app, conn, parsed, log))
            inflight.add(fut)
            fut.add_done_callback(inflight.discard)
    finally:
        timer.cancel()
        state.unregister(conn)
        if conn.close_request is None:
            conn.request_close(1000, "")
        for pending in list(inflight):
            pending.cancel()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer, 6.0)
        if not writer.done():
            writer.cancel()
    return ws


_BAD = object()


def _parse(text: str | None) -> Any:
    if text is None:
        return _BAD
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _BAD


async def _handshake(request: web.Request, conn: ClientConn, parsed: Any, nonce: str, log: ConnLogger) -> None:
    errors = validate(REQUEST_FRAME, parsed)
    if errors:
        log.warning("invalid handshake: not a request frame")
        conn.request_close(1008, "invalid request frame")
        return
    if parsed["method"] != "connect":
        message = "invalid handshake: first request must be connect"
        conn.enqueue(dumps({"type": "res", "id": parsed["id"], "ok": False, "error": error_shape("INVALID_REQUEST", message)}))
        conn.request_close(1008, truncate_close_reason(message))
        return
    await handle_connect(request, conn, parsed["id"], parsed.get("params"), nonce, log)


async def _handle_request(app: web.Application, conn: ClientConn, parsed: Any, log: ConnLogger) -> None:
    errors = validate(REQUEST_FRAME, parsed)
    if errors:
        rid = parsed.get("id") if isinstance(parsed, dict) else None
        conn.enqueue(dumps({"type": "res", "id": "invalid" if rid is None else rid, "ok": False,
                            "error": error_shape("INVALID_REQUEST", f"invalid request frame: {format_errors(errors)}")}))
        return
    rid, name = parsed["id"], parsed["method"]
    if name == "connect":
        conn.enqueue(dumps({"type": "res", "id": rid, "ok": False,
                            "error": error_shape("INVALID_REQUEST", "connect is only valid as the first request")}))
        return

    def respond_extra(ok: bool, payload: Any, error: dict[str, Any] | None) -> None:
        frame: dict[str, Any] = {"type": "res", "id": rid, "ok": ok}
        if ok:
            frame["payload"] = payload
        else:
            frame["error"] = error
        conn.enqueue(dumps(frame))

    ctx = MethodContext(app=app, conn=conn, req_id=rid, method=name, respond_extra=respond_extra)
    ok, payload, error = await dispatch(ctx, parsed.get("params"))
    log.debug("req %s id=%s ok=%s", name, rid, ok)
    respond_extra(ok, payload, error)

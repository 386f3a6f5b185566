"""Gateway-wide runtime state: connected clients, per-client ``seq``, ``stateVersion``, presence, dedupe.

Owns ``ClientConn`` (one authorized or pending WS client: its outbound queue, its event counter, its role and
scopes, the slow-consumer rule) and ``GatewayState`` (boot id, the client registry, presence entries and the
``{presence, health}`` versions, the idempotency cache, and ``broadcast``, which gives every recipient its own
``seq`` starting at 1 and applies the legacy's event scope guards). Pure asyncio; no aiohttp import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ClientConn", "Dedupe", "GatewayState", "VERSION", "BUILD_ID", "now_ms"]

logger = logging.getLogger(__name__)

VERSION = "2026.9.6"
BUILD_ID = "pyclaw-0.1.0"
MAX_BUFFERED_BYTES = 52_428_800

_READ_EVENTS = ("chat", "agent", "session.", "sessions.")
_UNRESTRICTED = {"tick", "presence", "heartbeat", "health", "shutdown", "connect.challenge"}


def now_ms() -> int:
    return int(time.time() * 1000)


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode("utf-8")


def event_allowed(event: str, scopes: frozenset[str], role: str) -> bool:
    """The legacy's event scope guards (reference §2.7); unknown families fail closed for non-admins."""
    if event in _UNRESTRICTED:
        return True
    if "operator.admin" in scopes:
        return True
    if event.startswith("device.pair.") or event.startswith("node.pair."):
        return "operator.pairing" in scopes
    if event.startswith("exec.approval."):
        return "operator.approvals" in scopes
    if event.startswith("plugin."):
        return "operator.write" in scopes
    if event.startswith(_READ_EVENTS) or event in ("cron", "skills.changed", "models.snapshot", "chat.metadata.changed"):
        return bool(scopes & {"operator.read", "operator.write"})
    return False


class ClientConn:
    """One WS connection. Frames go through a queue drained by ``writer`` so ``seq`` order is send order."""

    def __init__(self, conn_id: str, peer: str, *, max_buffered: int = MAX_BUFFERED_BYTES,
                 buffer_size: Callable[[], int] | None = None) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.seq = 0
        self.role = "operator"
        self.scopes: frozenset[str] = frozenset()
        self.client: dict[str, Any] = {}
        self.device_id: str | None = None
        self.authorized = False
        self.connected_at = now_ms()
        self.max_buffered = max_buffered
        self._buffer_size = buffer_size or (lambda: 0)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued_bytes = 0
        self.close_request: tuple[int, str] | None = None
        self.closed = asyncio.Event()

    def pending_bytes(self) -> int:
        return self._queued_bytes + self._buffer_size()

    def enqueue(self, text: str, *, drop_if_slow: bool = False) -> bool:
        """Queue a frame. A slow client drops ``drop_if_slow`` frames; other frames close it (1008)."""
        if self.close_request is not None:
            return False
        if self.pending_bytes() + len(text) > self.max_buffered:
            if drop_if_slow:
                return False
            self.request_close(1008, "slow consumer")
            return False
        self._queued_bytes += len(text)
        self._queue.put_nowait(text)
        return True

    def send_event(self, event: str, payload: Any, *, drop_if_slow: bool = False,
                   state_version: dict[str, int] | None = None) -> bool:
        self.seq += 1  # a dropped event still advances this client's counter
        frame: dict[str, Any] = {"type": "event", "event": event, "payload": payload, "seq": self.seq}
        if state_version is not None:
            frame["stateVersion"] = state_version
        return self.enqueue(dumps(frame), drop_if_slow=drop_if_slow)

    def request_close(self, code: int, reason: str) -> None:
        if self.close_request is None:
            self.close_request = (code, reason)
            self._queue.put_nowait(None)

    async def next_frame(self) -> str | None:
        item = await self._queue.get()
        if item is not None:
            self._queued_bytes -= len(item)
        return item


@dataclass
class _DedupeEntry:
    at: float
    value: Any


class Dedupe:
    """Idempotency cache: TTL 300 s, at most 1000 entries (``DEDUPE_TTL_MS`` / ``DEDUPE_MAX``)."""

    def __init__(self, ttl_s: float = 300.0, max_entries: int = 1000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._items: OrderedDict[str, _DedupeEntry] = OrderedDict()

    def get(self, key: str) -> Any | None:
        e = self._items.get(key)
        if e is None:
            return None
        if time.monotonic() - e.at > self.ttl_s:
            del self._items[key]
            return None
        return e.value

    def put(self, key: str, value: Any) -> None:
        self._items[key] = _DedupeEntry(time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class GatewayState:
    """Everything about this gateway process that clients can observe and that is not config."""

    def __init__(self, *, port: int = 0) -> None:
        self.boot_id = str(uuid.uuid4())
        self.instance_id = str(uuid.uuid4())
        self.started_monotonic = time.monotonic()
        self.started_ms = now_ms()
        self.port = port
        self.clients: dict[str, ClientConn] = {}
        self.presence_version = 1
        self.health_version = 1
        self.health_cache: dict[str, Any] | None = None
        self.presence_entries: dict[str, dict[str, Any]] = {}
        self.dedupe = Dedupe()
        self.active_requests = 0  # RPC requests being handled (status: shutdownBudget.activeWork.rootRequests)
        self.last_heartbeat: Any = None
        self.accepting = True
        self.host = socket.gethostname()
        self._self_presence = self._make_self_presence()

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started_monotonic) * 1000)

    def _make_self_presence(self) -> dict[str, Any]:
        ip = "127.0.0.1"
        return {
            "host": self.host, "ip": ip, "version": VERSION, "platform": f"{platform.system().lower()} {platform.release()}",
            "deviceFamily": platform.system(), "mode": "gateway", "reason": "self", "instanceId": self.instance_id,
            "text": f"Gateway: {self.host} ({ip}) · app {VERSION} · mode gateway · reason self", "ts": self.started_ms,
        }

    def presence(self) -> list[dict[str, Any]]:
        return [self._self_presence, *self.presence_entries.values()]

    def state_version(self) -> dict[str, int]:
        return {"presence": self.presence_version, "health": self.health_version}

    def register(self, conn: ClientConn) -> None:
        self.clients[conn.conn_id] = conn

    def authorize(self, conn: ClientConn) -> None:
        conn.authorized = True
        mode = conn.client.get("mode")
        if mode not in ("cli", "probe", "test"):
            self.presence_entries[conn.conn_id] = {
                "host": conn.client.get("displayName") or conn.client.get("id"), "ip": conn.peer,
                "version": conn.client.get("version"), "platform": conn.client.get("platform"),
                "deviceFamily": conn.client.get("deviceFamily"), "mode": mode, "reason": "connect",
                "instanceId": conn.client.get("instanceId") or conn.conn_id, "ts": now_ms(),
            }
            self.presence_changed()

    def unregister(self, conn: ClientConn) -> None:
        self.clients.pop(conn.conn_id, None)
        if self.presence_entries.pop(conn.conn_id, None) is not None:
            self.presence_changed()

    def presence_changed(self) -> None:
        self.presence_version += 1
        self.broadcast("presence", {"presence": self.presence()}, drop_if_slow=True, state_version=True)

    def health_changed(self, snapshot: dict[str, Any]) -> None:
        self.health_cache = snapshot
        self.health_version += 1
        self.broadcast("health", snapshot, drop_if_slow=True, state_version=True)

    def broadcast(self, event: str, payload: Any, *, drop_if_slow: bool = False, state_version: bool = False,
                  only: Callable[[ClientConn], bool] | None = None) -> int:
        """Send ``event`` to every authorized client allowed to see it; returns how many got it."""
        sv = self.state_version() if state_version else None
        sent = 0
        for conn in list(self.clients.values()):
            if not conn.authorized or not event_allowed(event, conn.scopes, conn.role):
                continue
            if only is not None and not only(conn):
                continue
            if conn.send_event(event, payload, drop_if_slow=drop_if_slow, state_version=sv):
                sent += 1
        return sent

    def process_info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "bootId": self.boot_id, "uptimeMs": self.uptime_ms()}

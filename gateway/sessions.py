"""The session store: session entries and transcripts on disk under the state dir.

Owns ``SessionStore``: ``<state>/agents/<agentId>/sessions/sessions.json`` (entries keyed by the canonical session
key ``agent:<agentId>:<rest>``) and one JSON-lines transcript per session id beside it. Writes are atomic
(temp file + ``os.replace``) so a crash never loses an accepted entry. Key rules follow the legacy: ``main`` and
``agent:main:main`` are the same session; the main key is ``main``. Standard library only.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["SessionStore", "canonical_key"]

logger = logging.getLogger(__name__)

DEFAULT_AGENT = "main"
MAIN_KEY = "main"


def canonical_key(key: str, agent_id: str = DEFAULT_AGENT) -> str:
    """``main`` -> ``agent:main:main``; ``agent:x:y`` stays; anything else -> ``agent:<agent>:<key>``."""
    key = key.strip()
    if key.startswith("agent:") and key.count(":") >= 2:
        return key
    return f"agent:{agent_id}:{key or MAIN_KEY}"


def agent_of(key: str) -> str:
    parts = key.split(":")
    return parts[1] if len(parts) >= 3 and parts[0] == "agent" else DEFAULT_AGENT


def key_rest(key: str) -> str:
    """What follows ``agent:<id>:`` in a canonical key (``main``, ``cron:<job>``, ``openai:<user>``, ...)."""
    parts = key.split(":", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "agent" else ""


def is_cron_key(key: str) -> bool:
    """A cron run's session (``agent:<id>:cron:<job>...``)."""
    return key_rest(key).startswith("cron:")


class SessionStore:
    """Real, on-disk session store. Not thread-safe; the gateway uses it from its event loop only."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)

    def sessions_dir(self, agent_id: str = DEFAULT_AGENT) -> Path:
        return self.state_dir / "agents" / agent_id / "sessions"

    def store_path(self, agent_id: str = DEFAULT_AGENT) -> Path:
        return self.sessions_dir(agent_id) / "sessions.json"

    def _load(self, agent_id: str) -> dict[str, dict[str, Any]]:
        path = self.store_path(agent_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.error("session store %s unreadable (%s); treating as empty", path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, agent_id: str, entries: dict[str, dict[str, Any]]) -> None:
        path = self.store_path(agent_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def list(self, agent_id: str = DEFAULT_AGENT) -> list[dict[str, Any]]:
        """Entries newest first, each with its ``key``."""
        entries = self._load(agent_id)
        rows = [{"key": k, **v} for k, v in entries.items()]
        rows.sort(key=lambda r: r.get("updatedAt") or 0, reverse=True)
        return rows

    def get(self, key: str) -> dict[str, Any] | None:
        ck = canonical_key(key)
        entry = self._load(agent_of(ck)).get(ck)
        return None if entry is None else {"key": ck, **entry}

    def ensure(self, key: str, **fields: Any) -> dict[str, Any]:
        """Return the entry for ``key``, creating it (new ``sessionId``) when absent."""
        ck = canonical_key(key)
        agent = agent_of(ck)
        entries = self._load(agent)
        entry = entries.get(ck)
        if entry is None:
            now = int(time.time() * 1000)
            entry = {"sessionId": str(uuid.uuid4()), "createdAt": now, "updatedAt": now, **fields}
            entries[ck] = entry
            self._save(agent, entries)
        return {"key": ck, **entry}

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        ck = canonical_key(key)
        agent = agent_of(ck)
        self.ensure(ck)
        entries = self._load(agent)
        entries[ck].update(fields)
        entries[ck]["updatedAt"] = int(time.time() * 1000)
        self._save(agent, entries)
        return {"key": ck, **entries[ck]}

    def transcript_path(self, key: str) -> Path:
        entry = self.ensure(key)
        return self.sessions_dir(agent_of(entry["key"])) / f"{entry['sessionId']}.jsonl"

    def append(self, key: str, message: dict[str, Any]) -> None:
        """Append one transcript message and bump the entry's ``updatedAt``."""
        path = self.transcript_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(message, ensure_ascii=False) + "\n")
            fh.flush()
        self.update(key)

    def history(self, key: str, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        entry = self.get(key)
        if entry is None:
            return []
        path = self.sessions_dir(agent_of(entry["key"])) / f"{entry['sessionId']}.jsonl"
        messages: builtins.list[dict[str, Any]] = []
        try:
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        messages.append(json.loads(line))
                    except ValueError:
                        logger.warning("transcript %s line %d is not JSON; skipped", path, n)
        except FileNotFoundError:
            return []
        return messages[-limit:] if limit else messages

    def count(self, agent_id: str = DEFAULT_AGENT) -> int:
        return len(self._load(agent_id))

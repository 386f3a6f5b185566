"""Hook mappings and templates (sans-I/O): ``hooks.mappings[]`` -> wake/agent actions for ``{base}/<name>``.

Owns ``HookMapping.from_config``, ``render_template`` (``{{payload.x}}``, ``{{headers.h}}``, ``{{query.q}}``,
``{{path}}``, ``{{now}}``, bare ``{{x}}`` = payload; ``a.b[0]`` paths; ``__proto__``/``prototype``/``constructor``
blocked), ``apply_mappings`` (first match on ``match.path`` / ``match.source`` wins, ``forEach`` fan-out capped at
200) and ``validate_action`` with the legacy's error texts (``hooks-mapping.ts`` of 2026.9.6). The current time is
passed in by the caller. JS ``transform`` modules cannot run here: a mapping that names one raises
``MappingError`` and the handler answers 500 ``hook mapping failed`` (known gap). Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HookAction", "HookMapping", "MappingError", "MappingResult", "apply_mappings", "render_template"]

_TEMPLATE = re.compile(r"\{\{\s*([^}]+)\s*\}\}")
_PATH_PART = re.compile(r"([^.\[\]]+)|(\[(\d+)\])")
_BLOCKED = frozenset({"__proto__", "prototype", "constructor"})
FANOUT_CAP = 200


class MappingError(Exception):
    """A mapping cannot be applied (answered as 500 ``hook mapping failed``)."""


def _opt(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def normalize_match_path(raw: Any) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip().strip("/") or None


@dataclass(frozen=True, slots=True)
class TemplateContext:
    payload: Mapping[str, Any]
    headers: Mapping[str, str]
    query: Mapping[str, str]
    path: str
    now_iso: str


def get_by_path(value: Any, expr: str) -> Any:
    if not expr:
        return None
    current = value
    for m in _PATH_PART.finditer(expr):
        if current is None:
            return None
        if m.group(1) is not None:
            part = m.group(1)
            if part in _BLOCKED or not isinstance(current, Mapping):
                return None
            current = current.get(part)
        else:
            if not isinstance(current, list):
                return None
            i = int(m.group(3))
            current = current[i] if i < len(current) else None
    return current


def _resolve(expr: str, ctx: TemplateContext) -> Any:
    if expr == "path":
        return ctx.path
    if expr == "now":
        return ctx.now_iso
    if expr.startswith("headers."):
        return get_by_path(ctx.headers, expr[8:])
    if expr.startswith("query."):
        return get_by_path(ctx.query, expr[6:])
    if expr.startswith("payload."):
        return get_by_path(ctx.payload, expr[8:])
    return get_by_path(ctx.payload, expr)


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render_template(template: Any, ctx: TemplateContext) -> str:
    if not isinstance(template, str) or not template:
        return ""
    return _TEMPLATE.sub(lambda m: _stringify(_resolve(m.group(1).strip(), ctx)), template)


def _render_optional(value: Any, ctx: TemplateContext) -> str | None:
    if not value:
        return None
    return render_template(value, ctx).strip() or None


@dataclass(frozen=True, slots=True)
class HookAction:
    kind: str  # "wake" | "agent"
    mapping_id: str
    text: str = ""
    mode: str = "now"
    message: str = ""
    name: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    session_key_source: str | None = None
    session_mode: str = "isolated"
    wake_mode: str = "now"
    deliver: Any = None
    channel: Any = None
    to: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class HookMapping:
    id: str
    match_path: str | None
    match_source: str | None
    action: str
    wake_mode: str
    for_each: str | None
    raw: Mapping[str, Any] = field(compare=False)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], index: int) -> HookMapping:
        match: Mapping[str, Any] = mapping["match"] if isinstance(mapping.get("match"), Mapping) else {}
        for_each = _opt(mapping.get("forEach"))
        if for_each and (re.search(r"[.\[\]]", for_each) or for_each in _BLOCKED):
            raise MappingError(f"Hook mapping forEach must be a top-level payload key: {mapping.get('forEach')}")
        return cls(
            id=_opt(mapping.get("id")) or f"mapping-{index + 1}",
            match_path=normalize_match_path(match.get("path")),
            match_source=_opt(match.get("source")),
            action=str(mapping.get("action") or "agent"),
            wake_mode=str(mapping.get("wakeMode") or "now"),
            for_each=for_each,
            raw=mapping,
        )

    def matches(self, path: str, payload: Mapping[str, Any]) -> bool:
        if self.match_path and self.match_path != normalize_match_path(path):
            return False
        if self.match_source:
            source = payload.get("source")
            if not isinstance(source, str) or source != self.match_source:
                return False
        return True

    def build(self, ctx: TemplateContext) -> HookAction:
        if self.raw.get("transform"):
            raise MappingError(f"hook mapping {self.id}: JS transforms are not supported by pyclaw")
        sk = self.raw.get("sessionKey")
        sk_src = ("templated" if _TEMPLATE.search(str(sk)) else "static") if _opt(sk) else None
        if self.action == "wake":
            return HookAction(kind="wake", mapping_id=self.id, text=render_template(self.raw.get("textTemplate"), ctx),
                              mode=self.wake_mode, agent_id=_opt(self.raw.get("agentId")),
                              session_key=_render_optional(sk, ctx), session_key_source=sk_src)
        return HookAction(
            kind="agent", mapping_id=self.id, message=render_template(self.raw.get("messageTemplate"), ctx),
            name=_render_optional(self.raw.get("name"), ctx), agent_id=_opt(self.raw.get("agentId")),
            wake_mode=self.wake_mode, session_key=_render_optional(sk, ctx), session_key_source=sk_src,
            session_mode=str(self.raw.get("sessionMode") or "isolated"), deliver=self.raw.get("deliver"),
            channel=self.raw.get("channel"), to=_render_optional(self.raw.get("to"), ctx),
            model=_render_optional(self.raw.get("model"), ctx),
        )


def validate_action(action: HookAction) -> str | None:
    """The legacy's error text for an unusable action, else ``None``."""
    if action.session_key_source == "templated" and not (action.session_key or "").strip():
        return "hook mapping sessionKey template rendered empty"
    if action.kind == "wake":
        if not action.text.strip():
            return "hook mapping requires text"
        if action.mode == "next-heartbeat" and action.session_key:
            return "hook mapping sessionKey requires wakeMode=now"
        return None
    if not action.message.strip():
        return "hook mapping requires message"
    if action.session_mode not in ("isolated", "persistent"):
        return "hook mapping sessionMode must be isolated or persistent"
    return None


@dataclass(frozen=True, slots=True)
class MappingResult:
    ok: bool
    actions: tuple[HookAction, ...] = ()
    fanout: bool = False
    dropped: int = 0
    error: str | None = None


def apply_mappings(mappings: list[HookMapping], ctx: TemplateContext) -> MappingResult | None:
    """The first matching mapping's actions, an error result, or ``None`` when nothing matches."""
    for mapping in mappings:
        if not mapping.matches(ctx.path, ctx.payload):
            continue
        if mapping.for_each:
            raw = ctx.payload.get(mapping.for_each)
            items = raw if isinstance(raw, list) else []
            actions = []
            for item in items[:FANOUT_CAP]:
                sub = TemplateContext({**ctx.payload, mapping.for_each: [item]}, ctx.headers, ctx.query, ctx.path,
                                      ctx.now_iso)
                action = mapping.build(sub)
                error = validate_action(action)
                if error:
                    return MappingResult(False, error=error)
                actions.append(action)
            return MappingResult(True, tuple(actions), fanout=True, dropped=max(0, len(items) - FANOUT_CAP))
        action = mapping.build(ctx)
        error = validate_action(action)
        if error:
            return MappingResult(False, error=error)
        return MappingResult(True, (action,))
    return None

"""User rule files: TOML or YAML lists of normalization rules layered on a profile.

Owns :func:`load_rules` and :func:`dump_rules_toml`. Errors are :class:`~wire.errors.ConfigError` naming the file
and the rule (``rules.toml: rules[2].path: empty segment ...``; YAML syntax errors carry the line).

File shape (TOML; YAML is the same structure)::

    [[rules]]
    kind = "mask"                 # drop mask regex as_set sort_list round tolerance monotonic rename when
    path = "payload.server.connId"
    reason = "why this field is volatile (cite the reference section)"

    [[rules]]
    kind = "when"
    method = "health"             # and/or route = "POST /hooks/*", event = "chat"
    reason = "..."
    rules = [{ kind = "drop", path = "payload.durationMs", reason = "..." }]
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from wire.errors import ConfigError
from wire.normalize import Rule, When, kind_name, rule_from_mapping

__all__ = ["dump_rules_toml", "load_rules", "rules_from_data"]


def rules_from_data(data: Any, source: str) -> tuple[Rule, ...]:
    """Rules from decoded file content ``{"rules": [...]}``; ``source`` names the file in errors."""
    if not isinstance(data, dict) or "rules" not in data:
        raise ConfigError(f"{source}: expected a top-level 'rules' list")
    items = data["rules"]
    if not isinstance(items, list):
        raise ConfigError(f"{source}: rules: expected a list, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(rule_from_mapping(item, f"rules[{i}]"))
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
    return tuple(out)


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """Load a ``.toml`` or ``.yaml``/``.yml`` rule file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read rule file: {exc.strerror}") from exc
    if p.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    elif p.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
            raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    else:
        raise ConfigError(f"{p}: rule files must end in .toml, .yaml or .yml")
    return rules_from_data(data, str(p))


def _toml_value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)  # JSON strings/numbers/bools are valid TOML basic values


def _rule_table(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, When):
        d: dict[str, Any] = {"kind": "when"}
        for k in ("method", "route", "event"):
            if getattr(rule, k) is not None:
                d[k] = getattr(rule, k)
        d["reason"] = rule.reason
        d["rules"] = [_rule_table(r) for r in rule.rules]
        return d
    d = {"kind": kind_name(rule)}
    for name in rule.__dataclass_fields__:
        value = getattr(rule, name)
        if value is not None:
            d[name] = value
    return d


def _inline(d: dict[str, Any]) -> str:
    parts = []
    for k, v in d.items():
        if k == "rules":
            parts.append(f"rules = [{', '.join(_inline(x) for x in v)}]")
        else:
            parts.append(f"{k} = {_toml_value(v)}")
    return "{ " + ", ".join(parts) + " }"


def dump_rules_toml(rules: Iterable[Rule], header: str = "") -> str:
    """TOML text for ``rules`` that :func:`load_rules` reads back to equal rules."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for rule in rules:
        lines.append("")
        lines.append("[[rules]]")
        for k, v in _rule_table(rule).items():
            if k == "rules":
                lines.append(f"rules = [{', '.join(_inline(x) for x in v)}]")
            else:
                lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines).lstrip("\n") + "\n"

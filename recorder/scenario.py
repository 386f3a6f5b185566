"""The scenario language: YAML files of scenarios, each a list of WS and HTTP steps, parsed with file:line errors.

Owns parsing and validation (:func:`load_scenarios`, :func:`load_path`) and the values :class:`Scenario` and
:class:`Step`. Executing them is ``recorder.runner``'s job. Imports the stdlib, PyYAML and ``wire``.

A file holds ``scenarios:``, a list. Each scenario::

    - id: ws-rpc-health            # unique across every file loaded together; the trace is <id>.jsonl
      title: health RPC after a token connect
      requires: {auth: password}   # optional: needs a password-mode gateway (default: token mode)
      steps:
        - ws_connect: {conn: c1}                       # open, wait challenge, send connect, wait res
        - ws_rpc: {conn: c1, method: health}           # send a req, wait for its res
        - ws_send: {conn: c1, frame: {type: req, id: x, method: health}}   # or text: "raw", or binary_size: N
        - ws_expect: {conn: c1, until: {res: x}, timeout_ms: 5000}   # res (+nth) | event (+state) | count | quiet_ms | close
        - ws_close: {conn: c1, code: 1000}
        - http: {method: POST, path: /hooks/wake, headers: {...}, json: {...}}   # or text:, bytes_of_size:, query:
        - sleep_ms: 200

A step may carry ``id: <name>`` next to its kind (default ``s1``, ``s2``, ...). Placeholders inside strings:
``{{token}} {{password}} {{hook_token}} {{nonce}} {{challenge_ts}} {{uuid}} {{uuid:name}} {{device}}
{{pad:N}}`` (see ``docs/trace-format.md``, "Scenarios").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wire.errors import ScenarioError

logger = logging.getLogger(__name__)

__all__ = ["PLACEHOLDER_RE", "STEP_KINDS", "Scenario", "Step", "load_path", "load_scenarios", "parse_text"]

PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_]+)(?::([A-Za-z0-9_.-]+))?\s*\}\}")
_NAMES_NO_ARG = {"token", "password", "hook_token", "nonce", "challenge_ts", "device"}
_NAMES_ARG = {"uuid": False, "pad": True}  # name -> argument required
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")
MAX_SLEEP_MS = 10_000
MAX_TIMEOUT_MS = 120_000

#: step kind -> {argument: (accepted python types, required)}
_COMMON_WS: dict[str, tuple[tuple[type, ...], bool]] = {"conn": ((str,), False), "timeout_ms": ((int,), False)}
STEP_KINDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "ws_open": {**_COMMON_WS, "path": ((str,), False)},
    "ws_connect": {
        **_COMMON_WS, "path": ((str,), False), "client": ((dict,), False), "role": ((str,), False),
        "scopes": ((list,), False), "auth": ((dict, type(None)), False), "device": ((bool,), False),
        "min_protocol": ((int,), False), "max_protocol": ((int,), False), "params": ((dict,), False),
        "id": ((str,), False), "close_wait_ms": ((int,), False),
    },
    "ws_send": {**_COMMON_WS, "frame": ((dict, list), False), "text": ((str,), False),
                "binary_size": ((int,), False)},
    "ws_rpc": {**_COMMON_WS, "method": ((str,), True), "params": ((dict, list, str, int, type(None)), False),
               "id": ((str,), False)},
    "ws_expect": {**_COMMON_WS, "until": ((dict, str), True)},
    "ws_close": {"conn": ((str,), False), "code": ((int,), False), "reason": ((str,), False)},
    "http": {
        "method": ((str,), False), "path": ((str,), True), "query": ((dict,), False), "headers": ((dict,), False),
        "json": ((dict, list, str, int, float, bool, type(None)), False), "text": ((str,), False),
        "bytes_of_size": ((int,), False), "timeout_ms": ((int,), False), "conn": ((str,), False),
    },
    "sleep_ms": {},
}
_UNTIL_KEYS = {"res", "nth", "event", "state", "count", "quiet_ms", "close"}


@dataclass(frozen=True, slots=True)
class Step:
    """One step: ``kind`` (a key of :data:`STEP_KINDS`), its ``args``, a step id and where it was written."""

    kind: str
    id: str
    args: Mapping[str, Any]
    line: int = 0

    def arg(self, name: str, default: Any = None) -> Any:
        return self.args.get(name, default)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario: an id, a title, what it requires of the target, and its steps."""

    id: str
    title: str
    steps: tuple[Step, ...]
    requires: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0

    @property
    def auth_mode(self) -> str:
        return str(self.requires.get("auth", "token"))

    @property
    def resign_steps(self) -> list[str]:
        """Ids of the steps whose connect the recorder signs with its own key (replays re-sign these)."""
        out = []
        for s in self.steps:
            if (s.kind == "ws_connect" and s.arg("device")) or (s.kind == "ws_send" and "{{device}}" in repr(s.args)):
                out.append(s.id)
        return out

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.loader = yaml.SafeLoader(text)

    def error(self, node: yaml.Node | None, what: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ScenarioError(f"{self.path}:{line}: {what}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            key = self.value(k)
            if not isinstance(key, str):
                raise self.error(k, f"{what}: keys must be strings, got {key!r}")
            if key in out:
                raise self.error(k, f"{what}: duplicate key {key!r}")
            out[key] = (k, v)
        return out

    def parse(self) -> list[Scenario]:
        try:
            root = self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise ScenarioError(f"{self.path}:{line}: invalid YAML: {exc.problem or exc.context}") from exc
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{self.path}:1: invalid YAML: {exc}") from exc
        finally:
            self.loader.dispose()
        if root is None:
            raise ScenarioError(f"{self.path}:1: empty file (expected a mapping with 'scenarios:')")
        top = self.mapping(root, "the file")
        unknown = set(top) - {"scenarios"}
        if unknown:
            k = sorted(unknown)[0]
            raise self.error(top[k][0], f"unknown top-level key {k!r} (expected 'scenarios')")
        if "scenarios" not in top:
            raise self.error(root, "missing 'scenarios:' list")
        seq = top["scenarios"][1]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            raise self.error(seq, "'scenarios' must be a non-empty list")
        return [self.scenario(n) for n in seq.value]

    def scenario(self, node: yaml.Node) -> Scenario:
        m = self.mapping(node, "a scenario")
        allowed = {"id", "title", "requires", "steps"}
        for key, (k, _v) in m.items():
            if key not in allowed:
                raise self.error(k, f"unknown scenario key {key!r} (allowed: {', '.join(sorted(allowed))})")
        if "id" not in m:
            raise self.error(node, "scenario without 'id'")
        sid = self.value(m["id"][1])
        if not isinstance(sid, str) or not _ID_RE.match(sid):
            raise self.error(m["id"][1], f"scenario id must be lowercase [a-z0-9._-], got {sid!r}")
        title = self.value(m["title"][1]) if "title" in m else ""
        if not isinstance(title, str):
            raise self.error(m["title"][1], "title must be a string")
        requires: dict[str, Any] = {}
        if "requires" in m:
            requires = self.value(m["requires"][1])
            if not isinstance(requires, dict) or set(requires) - {"auth"} or \
                    requires.get("auth", "token") not in ("token", "password"):
                raise self.error(m["requires"][1], "requires must be {auth: token|password}")
        if "steps" not in m:
            raise self.error(node, f"scenario {sid!r} has no 'steps'")
        steps_node = m["steps"][1]
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.error(steps_node, f"scenario {sid!r}: 'steps' must be a non-empty list")
        steps = [self.step(n, i + 1) for i, n in enumerate(steps_node.value)]
        seen: set[str] = set()
        for s in steps:
            if s.id in seen:
                raise ScenarioError(f"{self.path}:{s.line}: duplicate step id {s.id!r} in scenario {sid!r}")
            seen.add(s.id)
        return Scenario(id=sid, title=title, steps=tuple(steps), requires=requires, file=self.path,
                        line=node.start_mark.line + 1)

    def step(self, node: yaml.Node, index: int) -> Step:
        m = self.mapping(node, "a step")
        step_id = f"s{index}"
        if "id" in m:
            step_id = self.value(m.pop("id")[1])
            if not isinstance(step_id, str) or not _ID_RE.match(step_id):
                raise self.error(node, f"step id must be lowercase [a-z0-9._-], got {step_id!r}")
        kinds = [k for k in m if k in STEP_KINDS]
        if len(m) != 1 or len(kinds) != 1:
            names = ", ".join(sorted(m)) or "nothing"
            raise self.error(node, f"a step is one of {', '.join(STEP_KINDS)} (plus an optional id); got {names}")
        kind = kinds[0]
        knode, vnode = m[kind]
        if kind == "sleep_ms":
            ms = self.value(vnode)
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= MAX_SLEEP_MS:
                raise self.error(vnode, f"sleep_ms must be an integer 0..{MAX_SLEEP_MS}, got {ms!r}")
            return Step(kind, step_id, {"ms": ms}, knode.start_mark.line + 1)
        args_nodes = self.mapping(vnode, kind) if not (isinstance(vnode, yaml.ScalarNode) and vnode.value == "") else {}
        spec = STEP_KINDS[kind]
        args: dict[str, Any] = {}
        for key, (k, v) in args_nodes.items():
            if key not in spec:
                raise self.error(k, f"{kind}: unknown argument {key!r} (allowed: {', '.join(sorted(spec))})")
            self.check_placeholders(v)
            value = self.value(v)
            types, _req = spec[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = "/".join(t.__name__ for t in types)
                raise self.error(v, f"{kind}.{key} must be {names}, got {type(value).__name__}")
            args[key] = value
        for key, (_types, required) in spec.items():
            if required and key not in args:
                raise self.error(knode, f"{kind}: missing required argument {key!r}")
        line = knode.start_mark.line + 1
        self.check_step(kind, args, args_nodes, knode)
        return Step(kind, step_id, args, line)

    def check_step(self, kind: str, args: dict[str, Any], nodes: dict[str, tuple[yaml.Node, yaml.Node]],
                   knode: yaml.Node) -> None:
        timeout = args.get("timeout_ms")
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_MS:
            raise self.error(nodes["timeout_ms"][1], f"timeout_ms must be 1..{MAX_TIMEOUT_MS}")
        if kind == "ws_send" and sum(k in args for k in ("frame", "text", "binary_size")) != 1:
            raise self.error(knode, "ws_send needs exactly one of frame, text, binary_size")
        if kind == "http":
            if sum(k in args for k in ("json", "text", "bytes_of_size")) > 1:
                raise self.error(knode, "http takes at most one of json, text, bytes_of_size")
            if not args["path"].startswith("/"):
                raise self.error(nodes["path"][1], "http.path must start with /")
        if kind == "ws_expect":
            until = args["until"]
            vnode = nodes["until"][1]
            if isinstance(until, str):
                if until != "close":
                    raise self.error(vnode, "until must be 'close' or a mapping {res|event|count|quiet_ms}")
            else:
                bad = set(until) - _UNTIL_KEYS
                conds = [k for k in ("res", "event", "count", "quiet_ms", "close") if k in until]
                if bad or len(conds) != 1 or ("state" in until and "event" not in until) or \
                        ("nth" in until and "res" not in until):
                    raise self.error(vnode, "until takes exactly one of res (+ optional nth), event (+ optional state), count, "
                                            f"quiet_ms, close; got {sorted(until)}")
                for k in ("count", "quiet_ms", "nth"):
                    if k in until and (not isinstance(until[k], int) or until[k] < 1):
                        raise self.error(vnode, f"until.{k} must be a positive integer")

    def check_placeholders(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            if isinstance(node.value, str) and "{{" in node.value:
                for m in PLACEHOLDER_RE.finditer(node.value):
                    name, arg = m.group(1), m.group(2)
                    if name in _NAMES_NO_ARG and arg is None:
                        continue
                    if name in _NAMES_ARG and (arg is not None or not _NAMES_ARG[name]):
                        if name == "pad" and not (arg or "").isdigit():
                            raise self.error(node, f"{{{{pad:N}}}} needs a number, got {arg!r}")
                        continue
                    raise self.error(node, f"unknown placeholder {m.group(0)!r}")
                rest = PLACEHOLDER_RE.sub("", node.value)
                if "{{" in rest:
                    raise self.error(node, f"malformed placeholder in {node.value[:60]!r}")
        elif isinstance(node, yaml.SequenceNode):
            for child in node.value:
                self.check_placeholders(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                self.check_placeholders(k)
                self.check_placeholders(v)


def parse_text(text: str, path: str = "<string>") -> list[Scenario]:
    """Parse one scenario file's text. Raises :class:`ScenarioError` with ``path:line``."""
    return _Parser(text, path).parse()


def load_path(path: Path) -> list[Scenario]:
    """Scenarios of one file, or of every ``*.yaml``/``*.yml`` file of a directory (sorted by name)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ScenarioError(f"{path}: no *.yaml scenario files")
    elif path.exists():
        files = [path]
    else:
        raise ScenarioError(f"{path}: no such file or directory")
    out: list[Scenario] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{f}:1: cannot read: {exc}") from exc
        out.extend(parse_text(text, str(f)))
    return out


def load_scenarios(paths: Iterable[Path]) -> list[Scenario]:
    """Every scenario under ``paths``; ids must be unique across all of them."""
    out: list[Scenario] = []
    seen: dict[str, Scenario] = {}
    for p in paths:
        for sc in load_path(Path(p)):
            if sc.id in seen:
                raise ScenarioError(f"{sc.where}: duplicate scenario id {sc.id!r} (first at {seen[sc.id].where})")
            seen[sc.id] = sc
            out.append(sc)
    return out

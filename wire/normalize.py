"""Normalization rules as data, and their pure application to decoded JSON.

Owns the rule kinds, the path syntax and :func:`apply`. Stdlib only, no I/O.

Rule kinds (each carries a ``reason`` citing the reference section it comes from, so a report can say which
rule hid which field):

==============  ===============================================================================================
``Drop``        remove the key (or list element)
``Mask``        replace the value by ``<masked:TYPE>``: presence and JSON type are still compared
``Regex``       ``re.sub`` on string values (error texts -> error class, uuids inside strings, ...)
``AsSet``       a list compared as a set (sorted by canonical text, duplicates removed)
``SortList``    a list of objects sorted by one key (or by canonical text when ``by`` is ``None``)
``Round``       round numbers to ``digits``
``Tolerance``   numbers compared with ``abs``/``rel`` tolerance (taken out of the document; see :class:`Normalized`)
``Monotonic``   counters (``seq``, ``stateVersion.*``) taken out and checked for monotonicity per connection
``Rename``      rename the key to ``to``
``When``        nested rules applied only when the method / route / event matches (``fnmatch`` globs)
==============  ===============================================================================================

Path syntax: dot-separated segments. ``name`` is a key (or a list index when digits), ``*`` any one child,
``**`` any depth including none, and a segment with ``*``/``?`` inside (``*AtMs``) is a glob on keys.
Examples: ``payload.server.connId``, ``payload.snapshot.presence.*.ts``, ``headers.date``, ``**.runId``.

Numeric policy (JSON from Node has no int/float distinction): ``1`` equals ``1.0``; ``true`` never equals
``1``; integers beyond 64 bits are parsed exactly (stdlib ``json``) and compared exactly. See
:func:`numeric_normal`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeAlias

from wire.model import Json

__all__ = [
    "AsSet",
    "Context",
    "Drop",
    "Mask",
    "Monotonic",
    "Normalized",
    "Normalizer",
    "Regex",
    "Rename",
    "Round",
    "Rule",
    "SortList",
    "Tolerance",
    "When",
    "apply",
    "canonical_text",
    "json_type",
    "kind_name",
    "numeric_normal",
    "parse_path",
    "rule_from_mapping",
]


@dataclass(frozen=True, slots=True)
class Drop:
    path: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Mask:
    path: str
    reason: str = ""
    placeholder: str | None = None


@dataclass(frozen=True, slots=True)
class Regex:
    path: str
    pattern: str
    replacement: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AsSet:
    path: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SortList:
    path: str
    by: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Round:
    path: str
    digits: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Tolerance:
    path: str
    abs: float = 0.0
    rel: float = 0.0
    reason: str = ""

    def accepts(self, a: Json, b: Json) -> bool:
        """Whether two values are equal within this tolerance (non-numbers must be exactly equal)."""
        if _is_num(a) and _is_num(b):
            diff = abs(a - b)
            return bool(diff <= self.abs or diff <= self.rel * max(abs(a), abs(b)))
        return bool(a == b and type(a) is type(b))


@dataclass(frozen=True, slots=True)
class Monotonic:
    path: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rename:
    path: str
    to: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class When:
    rules: tuple[Rule, ...]
    method: str | None = None
    route: str | None = None
    event: str | None = None
    reason: str = ""

    def matches(self, ctx: Context) -> bool:
        for pattern, value in ((self.method, ctx.method), (self.route, ctx.route), (self.event, ctx.event)):
            if pattern is not None and (value is None or not fnmatchcase(value, pattern)):
                return False
        return True


Leaf: TypeAlias = Drop | Mask | Regex | AsSet | SortList | Round | Tolerance | Monotonic | Rename
Rule: TypeAlias = Leaf | When


@dataclass(frozen=True, slots=True)
class Context:
    """What a document belongs to, for ``When`` rules: the WS method, HTTP route or event name."""

    method: str | None = None
    route: str | None = None
    event: str | None = None


_NO_CONTEXT = Context()


@dataclass(slots=True)
class Normalized:
    """Result of normalizing one document.

    Attributes:
        value: the normalized document.
        tolerant: concrete path -> (original value, rule) for ``Tolerance`` fields (compared by the differ).
        monotonic: concrete path -> original value for ``Monotonic`` fields.
        hidden: (concrete path, rule) for every field a rule changed, when tracking was asked for.
    """

    value: Json
    tolerant: dict[str, tuple[Json, Tolerance]] = field(default_factory=dict)
    monotonic: dict[str, Json] = field(default_factory=dict)
    hidden: list[tuple[str, Rule]] = field(default_factory=list)


# --- paths ----------------------------------------------------------------------------------------------------

_ANY, _DEEP = "*", "**"
_WILD = frozenset({_ANY, _DEEP})


def parse_path(path: str) -> tuple[str, ...]:
    """Split a rule path; raises ``ValueError`` on an empty path or empty segment."""
    if not path:
        raise ValueError("empty rule path")
    segs = tuple(path.split("."))
    if any(s == "" for s in segs):
        raise ValueError(f"empty segment in rule path {path!r}")
    return segs


def _is_glob(seg: str) -> bool:
    return seg not in (_ANY, _DEEP) and ("*" in seg or "?" in seg)


def _children(node: Json, seg: str) -> Iterable[tuple[str | int, Json]]:
    if isinstance(node, dict):
        if seg == _ANY:
            return list(node.items())
        # A literal key on a dict never gets here: _visit takes its fast path.
        return [(k, v) for k, v in node.items() if fnmatchcase(k, seg)]
    if isinstance(node, list):
        if seg == _ANY:
            return list(enumerate(node))
        if seg.isdigit() and int(seg) < len(node):
            return [(int(seg), node[int(seg)])]
    return []


#: action(container, key, concrete path) -> None
_Action = Callable[[Any, Any, tuple[str | int, ...]], None]


def _visit(node: Json, segs: tuple[str, ...], i: int, prefix: tuple[str | int, ...], action: _Action) -> None:
    seg = segs[i]
    last = i == len(segs) - 1
    if seg == _DEEP:
        if last:
            raise ValueError("'**' cannot be the last path segment")
        _visit(node, segs, i + 1, prefix, action)  # zero levels
        if isinstance(node, dict | list) and _has_containers(node.values() if isinstance(node, dict) else node):
            for key, child in list(node.items()) if isinstance(node, dict) else list(enumerate(node)):
                if isinstance(child, dict | list):
                    _visit(child, segs, i, (*prefix, key), action)
        return
    # Fast path for a literal key on a dict (the common case).
    if isinstance(node, dict) and seg != _ANY and not _is_glob(seg):
        if seg not in node:
            return
        if last:
            action(node, seg, (*prefix, seg))
        else:
            _visit(node[seg], segs, i + 1, (*prefix, seg), action)
        return
    for key, child in _children(node, seg):
        if last:
            action(node, key, (*prefix, key))
        else:
            _visit(child, segs, i + 1, (*prefix, key), action)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


# --- values ---------------------------------------------------------------------------------------------------


def _is_num(v: Json) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: What ``Mask`` leaves: a second Mask over the same field (overlapping rules, a user file on the profile) must not
#: turn ``<masked:number>`` into ``<masked:string>`` and so hide a type change.
_MASKED = frozenset(f"<masked:{t}>" for t in ("null", "boolean", "number", "string", "array", "object"))


def json_type(v: Json) -> str:
    """The JSON type name of a decoded value: null, boolean, number, string, array or object."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def canonical_text(v: Json) -> str:
    """Sorted-key compact JSON text (stdlib; exact for big integers). Used for set and sort keys."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SAFE = 2**53


def numeric_normal(v: Json) -> Json:
    """The numeric policy applied to a copy: integral floats within +-2**53 become ints (``1.0`` -> ``1``).

    Booleans stay booleans (``true`` is never ``1``); big integers stay exact ints.
    """
    if isinstance(v, float) and v.is_integer() and -_SAFE <= v <= _SAFE:
        return int(v)
    if isinstance(v, dict):
        return {k: numeric_normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [numeric_normal(x) for x in v]
    return v


# --- application ----------------------------------------------------------------------------------------------


class Normalizer:
    """Applies a rule list to documents, in place. Compiles paths once and caches ``When`` resolution per context.

    Use :func:`apply` for the pure form on a copy. Documents passed to :meth:`normalize` are mutated: pass a
    fresh parse (the differ does).
    """

    __slots__ = ("_by_ctx", "_compiled", "_lits", "rules")

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._compiled: dict[str, tuple[str, ...]] = {}
        self._by_ctx: dict[Context, tuple[_Step, ...]] = {}
        self._lits: dict[Context, frozenset[str]] = {}
        for rule in _flatten(self.rules):
            path = rule.path
            self._compiled[path] = parse_path(path)
            if isinstance(rule, Regex):
                re.compile(rule.pattern)

    def _plan(self, ctx: Context) -> tuple[_Step, ...]:
        plan = self._by_ctx.get(ctx)
        if plan is None:
            out: list[_Step] = []
            for rule in _active(self.rules, ctx):
                segs = self._compiled[rule.path]
                deep_key = len(segs) == 2 and segs[0] == _DEEP and segs[1] not in (_ANY, _DEEP)
                if deep_key:
                    group = out[-1] if out and isinstance(out[-1], _Group) else None
                    if group is None:
                        group = _Group()
                        out.append(group)
                    group.add(rule, segs)
                else:
                    literal = not any(seg in _WILD or _is_glob(seg) for seg in segs)
                    out.append((rule, segs, _trigger(segs), literal))
            lits: set[str] = set()
            for step in out:
                triggers = [t for _, _, t in step.items] if isinstance(step, _Group) else [step[2]]
                lits.update(t for t in triggers if t is not None and _trigger_test(t)[0] == _LIT)
            self._lits[ctx] = frozenset(lits)
            plan = self._by_ctx[ctx] = tuple(out)
        return plan

    def normalize(
        self, doc: Json, ctx: Context | None = None, *, raw: str | None = None, track: bool = False
    ) -> Normalized:
        """Normalize ``doc`` in place and return it with the tolerance/monotonic side values.

        Args:
            doc: decoded JSON; mutated.
            ctx: what the document belongs to (for ``When``).
            raw: the document's raw text, if known: ``**`` rules whose key never occurs in it are skipped.
            track: record every (path, rule) hit in :attr:`Normalized.hidden`.
        """
        result = Normalized(value=doc)
        ctx = ctx or _NO_CONTEXT
        plan = self._plan(ctx)
        # The plan's literal trigger keys that occur whole between two '"' of the raw text (one C-speed pass).
        pieces: frozenset[str] = frozenset() if raw is None else self._lits[ctx].intersection(raw.split('"'))
        for step in plan:
            if isinstance(step, _Group):
                # Consecutive "**.<key>" rules share ONE walk of the document (they are most of a profile).
                live = step.live(raw, pieces)
                if live is not None:
                    rules, keys, memo, tolerant, hot = live
                    acts = [_action(r, result, track) for r in rules]
                    _deep_keys(doc, keys, acts, memo, track or tolerant, hot)
                continue
            rule, segs, trigger, literal = step
            first = segs[0]
            if literal:
                if not isinstance(doc, dict) or first in doc:  # most literal paths miss at the first key
                    _visit_literal(doc, segs, rule, result, track)
                continue
            if isinstance(doc, dict) and first not in doc and first not in _WILD and not _is_glob(first):
                continue  # a literal first key the document lacks: nothing to match
            if not self._present(trigger, raw, pieces):
                continue
            _visit(doc, segs, 0, (), _action(rule, result, track))
        return result

    @staticmethod
    def _present(trigger: str | None, raw: str | None, pieces: frozenset[str]) -> bool:
        """Whether a ``**`` rule's key can occur in the document; unknown (no raw text) -> yes.

        ``pieces`` holds the plan's literal keys found between two ``"`` of the raw text: a literal key occurs
        there whole. A glob needs one of its
        literal edges (``AtMs"``) in the raw text. Both are necessary conditions for an object key to match, so
        they may only let a rule run that then matches nothing -- never skip a key that is there.
        """
        if trigger is None or raw is None:
            return True
        test, arg = _trigger_test(trigger)
        if test == _LIT:
            return arg in pieces
        return test == _ANYWHERE or arg in raw


_LIT, _SUB, _ANYWHERE = 0, 1, 2
_TRIGGER_TESTS: dict[str, tuple[int, str]] = {}


def _trigger_test(trigger: str) -> tuple[int, str]:
    """How to pre-check a trigger on raw text: ``(_LIT, key)`` (a piece between quotes), ``(_SUB, needle)`` (a
    substring every matching raw key token has: ``AtMs"``, ``"host``) or ``(_ANYWHERE, "")`` (always run)."""
    test = _TRIGGER_TESTS.get(trigger)
    if test is None:
        if '"' in trigger or "\\" in trigger:
            test = (_ANYWHERE, "")
        elif not _is_glob(trigger):
            test = (_LIT, trigger)
        else:
            lead = re.match(r"[^*?\[]+", trigger)
            tail = re.search(r"[^*?\]]+$", trigger)
            if tail is not None and "[" not in tail.group():
                test = (_SUB, f'{tail.group()}"')
            elif lead is not None:
                test = (_SUB, f'"{lead.group()}')
            else:
                test = (_ANYWHERE, "")
        _TRIGGER_TESTS[trigger] = test
    return test


def _visit_literal(doc: Json, segs: tuple[str, ...], rule: Rule, out: Normalized, track: bool) -> None:
    """``_visit`` for a path of literal segments only: a plain descent, no recursion; the rule's action is only
    built when the path exists."""
    node: Any = doc
    path: list[str | int] = []
    last = len(segs) - 1
    for i, seg in enumerate(segs):
        key: str | int
        if isinstance(node, dict):
            if seg not in node:
                return
            key = seg
        elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
            key = int(seg)
        else:
            return
        path.append(key)
        if i == last:
            _action(rule, out, track)(node, key, tuple(path))
            return
        node = node[key]


_Live = tuple[list["Rule"], list[str], dict[str, tuple[int, ...]], bool, set[str]]


class _Group:
    """Consecutive ``**.<key>`` rules of one plan, with what selects the live ones for a document cheaply."""

    __slots__ = ("_cache", "_lit", "_others", "items")

    def __init__(self) -> None:
        self.items: list[tuple[Rule, str, str | None]] = []
        self._lit: dict[str, list[int]] = {}  # literal trigger -> rule indices
        self._others: list[int] = []  # rules whose trigger needs its own test
        self._cache: dict[tuple[int, ...], _Live] = {}

    def add(self, rule: Rule, segs: tuple[str, ...]) -> None:
        trig = _trigger(segs)
        i = len(self.items)
        self.items.append((rule, segs[1], trig))
        if trig is not None and _trigger_test(trig)[0] == _LIT:
            self._lit.setdefault(trig, []).append(i)
        else:
            self._others.append(i)

    def live(self, raw: str | None, pieces: frozenset[str]) -> _Live | None:
        """(rules, keys, key memo, some rule needs concrete paths, hot keys) of the rules that can apply, or
        ``None``."""
        if raw is None:
            idx = tuple(range(len(self.items)))
        else:
            hits = [i for t in pieces.intersection(self._lit) for i in self._lit[t]]
            hits += [i for i in self._others if Normalizer._present(self.items[i][2], raw, pieces)]
            if not hits:
                return None
            idx = tuple(sorted(hits))
        entry = self._cache.get(idx)
        if entry is None:
            rules = [self.items[i][0] for i in idx]
            entry = self._cache[idx] = (
                rules,
                [self.items[i][1] for i in idx],
                {},
                any(isinstance(r, Tolerance | Monotonic) for r in rules),
                set(),
            )
        return entry


_CONTAINER_TYPE: dict[type, bool] = {}


def _has_containers(values: Iterable[Any]) -> bool:
    """Whether any value is a dict or list; the types are collected at C speed (``set(map(type, ...))``)."""
    for t in set(map(type, values)):
        hit = _CONTAINER_TYPE.get(t)
        if hit is None:
            hit = _CONTAINER_TYPE[t] = issubclass(t, dict | list)
        if hit:
            return True
    return False


_Planned = tuple[Rule, tuple[str, ...], str | None, bool]
_Step = _Planned | _Group


def _deep_keys(
    doc: Json,
    keys: list[str],
    acts: list[_Action],
    memo: dict[str, tuple[int, ...]],
    need_path: bool,
    hot: set[str],
) -> None:
    """One walk applying every ``**.<key>`` rule; ``memo`` (object key -> indices of matching rules) and ``hot``
    (the memo's keys that match some rule) are kept by the caller across documents with the same live rules."""

    def acts_for(k: str) -> list[_Action]:
        idx = memo.get(k)
        if idx is None:
            idx = memo[k] = tuple(
                i for i, key in enumerate(keys) if key == k or (_is_glob(key) and fnmatchcase(k, key))
            )
            if idx:
                hot.add(k)
        return [acts[i] for i in idx]

    def walk(node: Json, prefix: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for k in list(node):
                for act in acts_for(k):
                    if k in node:
                        act(node, k, (*prefix, k))
                child = node.get(k)
                if isinstance(child, dict | list):
                    walk(child, (*prefix, k))
        else:
            for i, child in enumerate(node):
                if isinstance(child, dict | list):
                    walk(child, (*prefix, i))

    def walk_fast(node: Json) -> None:
        # No rule needs the concrete path (no tracking, no Tolerance/Monotonic): skip building it.
        if isinstance(node, dict):
            if not node.keys() <= memo.keys():
                for k in node:
                    acts_for(k)
            if hot.isdisjoint(node):
                # No rule matches a key of this object, so nothing edits it: no snapshot needed.
                if _has_containers(node.values()):
                    for child in node.values():
                        if isinstance(child, dict | list):
                            walk_fast(child)
                return
            for k, child in list(node.items()):
                idx = memo[k]  # every key of this object was memoized just above
                if idx:
                    for i in idx:
                        if k in node:
                            acts[i](node, k, ())
                    child = node.get(k)
                if isinstance(child, dict | list):
                    walk_fast(child)
        elif _has_containers(node):
            for child in node:
                if isinstance(child, dict | list):
                    walk_fast(child)

    if not isinstance(doc, dict | list):
        return
    if need_path:
        walk(doc, ())
    else:
        walk_fast(doc)


def _flatten(rules: Iterable[Rule]) -> Iterable[Leaf]:
    for rule in rules:
        if isinstance(rule, When):
            yield from _flatten(rule.rules)
        else:
            yield rule


def _active(rules: Iterable[Rule], ctx: Context) -> Iterable[Leaf]:
    for rule in rules:
        if isinstance(rule, When):
            if rule.matches(ctx):
                yield from _active(rule.rules, ctx)
        else:
            yield rule


def _trigger(segs: tuple[str, ...]) -> str | None:
    """For ``**`` paths: the last key segment (literal or glob), which must occur among the document's object
    keys for the rule to possibly apply; ``None`` when the path has no ``**`` or no key segment."""
    if _DEEP not in segs:
        return None
    for seg in reversed(segs):
        if seg not in (_ANY, _DEEP) and not seg.isdigit():
            return seg
    return None


def _action(rule: Rule, out: Normalized, track: bool) -> _Action:
    """The in-place edit a rule makes at one matched (container, key, concrete path)."""

    def hit(path: tuple[str | int, ...]) -> None:
        if track:
            out.hidden.append((_dotted(path), rule))

    if isinstance(rule, Drop):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            hit(p)
            if isinstance(c, dict):
                del c[k]
            else:
                c[k] = "<dropped>"  # keep list positions stable

    elif isinstance(rule, Mask):
        placeholder = rule.placeholder

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            hit(p)
            v = c[k]
            if isinstance(v, str) and v in _MASKED:  # masked already by an overlapping rule: keep the type it recorded
                return
            c[k] = placeholder if placeholder is not None else f"<masked:{json_type(v)}>"

    elif isinstance(rule, Regex):
        rx = re.compile(rule.pattern)

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            v = c[k]
            if isinstance(v, str):
                new = rx.sub(rule.replacement, v)
                if new != v:
                    hit(p)
                    c[k] = new

    elif isinstance(rule, AsSet):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            v = c[k]
            if isinstance(v, list):
                hit(p)
                if set(map(type, v)) <= {str}:  # the common case (method/event names): no JSON encoding
                    c[k] = sorted(set(v))
                else:
                    seen = {canonical_text(x): x for x in v}
                    c[k] = [seen[t] for t in sorted(seen)]

    elif isinstance(rule, SortList):
        by = rule.by

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            v = c[k]
            if isinstance(v, list):
                hit(p)
                if by is None:
                    c[k] = sorted(v, key=canonical_text)
                else:
                    c[k] = sorted(v, key=lambda x: canonical_text(x.get(by) if isinstance(x, dict) else x))

    elif isinstance(rule, Round):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            v = c[k]
            if _is_num(v):
                hit(p)
                c[k] = round(v, rule.digits)

    elif isinstance(rule, Tolerance):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            hit(p)
            out.tolerant[_dotted(p)] = (c[k], rule)
            c[k] = "<tolerance>"

    elif isinstance(rule, Monotonic):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            hit(p)
            out.monotonic[_dotted(p)] = c[k]
            if isinstance(c, dict):
                del c[k]

    elif isinstance(rule, Rename):

        def act(c: Any, k: Any, p: tuple[str | int, ...]) -> None:
            if isinstance(c, dict):
                hit(p)
                c[rule.to] = c.pop(k)

    else:  # pragma: no cover - When is resolved by _active
        raise TypeError(f"not a rule: {rule!r}")
    return act


def apply(rules: Iterable[Rule], value: Json, ctx: Context | None = None) -> Json:
    """Pure: normalize a deep copy of ``value`` with ``rules`` and return it (side values discarded)."""
    return Normalizer(rules).normalize(copy.deepcopy(value), ctx).value


# --- rules from data (user rule files) ------------------------------------------------------------------------

_KINDS: dict[str, type] = {
    "drop": Drop,
    "mask": Mask,
    "regex": Regex,
    "as_set": AsSet,
    "sort_list": SortList,
    "round": Round,
    "tolerance": Tolerance,
    "monotonic": Monotonic,
    "rename": Rename,
}
_KIND_NAMES: dict[type, str] = {cls: name for name, cls in _KINDS.items()}


def kind_name(rule: Rule) -> str:
    """The rule's kind as rule files spell it (``mask``, ``sort_list``, ``when``...)."""
    return "when" if isinstance(rule, When) else _KIND_NAMES[type(rule)]


def rule_from_mapping(d: dict[str, Any], where: str = "rule") -> Rule:
    """Build a rule from ``{"kind": "mask", "path": ..., "reason": ...}``; ``when`` nests ``rules``.

    Raises ``ValueError`` naming ``where`` and the offending key.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a rule must be a table/mapping, got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "when":
        subs = d.get("rules")
        if not isinstance(subs, list) or not subs:
            raise ValueError(f"{where}.rules: 'when' needs a non-empty list of rules")
        extra = set(d) - {"kind", "rules", "method", "route", "event", "reason"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)} for kind 'when'")
        return When(
            rules=tuple(rule_from_mapping(s, f"{where}.rules[{i}]") for i, s in enumerate(subs)),
            method=d.get("method"),
            route=d.get("route"),
            event=d.get("event"),
            reason=str(d.get("reason", "")),
        )
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"{where}.kind: unknown rule kind {kind!r} (one of {sorted([*_KINDS, 'when'])})")
    args = {k: v for k, v in d.items() if k != "kind"}
    if "reason" not in args or not str(args["reason"]).strip():
        raise ValueError(f"{where}.reason: every rule needs a reason")
    try:
        rule: Rule = cls(**args)
        parse_path(args.get("path", ""))
        if isinstance(rule, Regex):
            re.compile(rule.pattern)
    except TypeError as exc:
        raise ValueError(f"{where}: bad keys for kind {kind!r}: {exc}") from exc
    except re.error as exc:
        raise ValueError(f"{where}.pattern: invalid regular expression: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{where}.path: {exc}") from exc
    return rule

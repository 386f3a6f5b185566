"""The explain stage: why two normalized documents differ, as :class:`Diff` records plus counts.

Owns :func:`explain` and :class:`Findings`. Objects are descended here; DeepDiff explains each differing child
of bounded size (:data:`~diffing.records.DEEPDIFF_MAX_BYTES`), a positional walker the huge lists and texts.
Every finding counts toward field parity (``Findings.unequal``); at most
:data:`~diffing.records.MAX_DIFFS_PER_PAIR` become records, the rest are counted by signature. Pure; may import
orjson, deepdiff and ``diffing.records``. DeepDiff objects never leave this module.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from deepdiff import DeepDiff

from diffing.records import (
    DEEPDIFF_MAX_BYTES,
    MAX_DIFFS_PER_PAIR,
    Diff,
    DiffKind,
    join_path,
    show,
    signature_path,
)
from wire.model import Json

__all__ = ["Findings", "explain"]

_ABSENT: Any = object()  # a side the finding has no value on (missing / extra)


def _value_leaves(v: Json) -> int:
    """Leaf count of a decoded value as ``diffing.diff._canonical_leaves`` counts its text (an empty
    container is one leaf); iterative, so a deeply nested value cannot exhaust the stack."""
    n, stack = 0, [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict | list):
            items = x.values() if isinstance(x, dict) else x
            if items:
                stack.extend(items)
                continue
        n += 1
    return n


class Findings:
    """The findings of one document pair: at most ``cap`` :class:`Diff` records (``None``: no cap), and
    ``unequal`` -- the legacy leaves they cover, counted for every finding, recorded or not.

    A missing or changed value covers all its legacy leaves (a missing object of ten fields is ten unequal
    fields, not one); an extra value or an order finding counts one. Field parity is computed from ``unequal``,
    so the record cap never raises it."""

    __slots__ = ("cap", "diffs", "unequal", "unrecorded")

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.diffs: list[Diff] = []
        self.unequal = 0
        self.unrecorded: Counter[tuple[str, DiffKind]] = Counter()

    def skip(self, path: str, kind: DiffKind) -> None:
        """Count a finding past the cap by its signature."""
        self.unrecorded[(signature_path(path), kind)] += 1

    def add(self, path: str, kind: DiffKind, legacy: Any, candidate: Any) -> None:
        if isinstance(legacy, dict | list) and kind is not DiffKind.EXTRA and kind is not DiffKind.ORDER:
            self.unequal += _value_leaves(legacy)
        else:  # a scalar, an extra value or an order finding
            self.unequal += 1
        if self.cap is not None and len(self.diffs) >= self.cap:
            self.skip(path, kind)
        else:
            self.diffs.append(
                Diff(
                    path,
                    kind,
                    None if legacy is _ABSENT else show(legacy),
                    None if candidate is _ABSENT else show(candidate),
                )
            )


def _order_prepass(a: Json, b: Json, path: str, out: Findings) -> Json:
    """Report lists that are permutations once as ``order``; return ``b`` with those lists put in ``a``'s order.

    Equal (``==``) subtrees are taken from ``b`` as they are: no list inside them can be a reordering."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {
            k: (_order_prepass(a[k], v, join_path(path, k), out) if k in a and a[k] != v else v) for k, v in b.items()
        }
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b) and a != b:
            ka = sorted(orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in a) if len(a) < 10_000 else None
            if ka is not None and ka == sorted(orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in b):
                out.add(path or "$", DiffKind.ORDER, a, b)
                return a
        return [
            _order_prepass(x, y, join_path(path, i), out) if x != y else y
            for i, (x, y) in enumerate(zip(a, b, strict=False))
        ] + b[len(a) :]
    return b


def _walk(a: Json, b: Json, path: str, out: Findings) -> None:
    """Own structural diff, for a value past DEEPDIFF_MAX_BYTES that is not an object (objects are descended by
    :func:`_dict_descent`): lists by position, everything else as one finding."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() - b.keys():
            out.add(join_path(path, k), DiffKind.MISSING, a[k], _ABSENT)
        for k in b.keys() - a.keys():
            out.add(join_path(path, k), DiffKind.EXTRA, _ABSENT, b[k])
        for k in a.keys() & b.keys():
            if not _same_fast(a[k], b[k]):
                _walk(a[k], b[k], join_path(path, k), out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if not _same_fast(x, y):
                _walk(x, y, join_path(path, i), out)
        for i in range(len(b), len(a)):
            out.add(join_path(path, i), DiffKind.MISSING, a[i], _ABSENT)
        for i in range(len(a), len(b)):
            out.add(join_path(path, i), DiffKind.EXTRA, _ABSENT, b[i])
        return
    out.add(path or "$", DiffKind.TYPE if type(a) is not type(b) else DiffKind.VALUE, a, b)


_DD_KIND = {
    "values_changed": DiffKind.VALUE,
    "type_changes": DiffKind.TYPE,
    "dictionary_item_removed": DiffKind.MISSING,
    "iterable_item_removed": DiffKind.MISSING,
    "dictionary_item_added": DiffKind.EXTRA,
    "iterable_item_added": DiffKind.EXTRA,
}


def _same(a: Json, b: Json) -> bool:
    """Exactly equal: ``==`` with the same type at every node (``1 == True`` and ``[1] == [True]`` are not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _same_fast(a: Json, b: Json) -> bool:
    """``_same`` with the common case at C speed: unequal -> no; equal -> the sorted-key orjson texts (which
    tell ``true`` from ``1`` and ``1.0e18`` from ``10**18``) decide, ``_same`` when orjson cannot encode."""
    if a != b:
        return False
    try:
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _same(a, b)


def _deepdiff(a: Json, b: Json, prefix: list[Any], out: Findings) -> None:
    """DeepDiff's findings for one (sub)document pair, paths prefixed with where it sits."""
    tree = DeepDiff(a, b, view="tree", threshold_to_diff_deeper=0, verbose_level=2)
    for report, levels in tree.items():
        kind = _DD_KIND.get(report, DiffKind.VALUE)
        for level in levels:
            path = ".".join(str(p) for p in (*prefix, *level.path(output_format="list"))) or "$"
            out.add(
                path,
                kind,
                _ABSENT if kind is DiffKind.EXTRA else level.t1,
                _ABSENT if kind is DiffKind.MISSING else level.t2,
            )


def _dict_descent(a: Json, b: Json, prefix: list[Any], out: Findings) -> None:
    """DeepDiff's own answer at a fraction of its cost: where both sides are objects, removed and added keys are
    reported here exactly as DeepDiff reports them (``dictionary_item_removed/added``), exactly equal children
    are skipped, equal-length lists holding objects or lists are walked by index (as DeepDiff pairs them), and
    DeepDiff runs only on the differing children that are neither."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and _has_containers_in(a, b):
        # DeepDiff pairs such lists by index (its difflib path is only for lists of plain values on both sides)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if not _same_fast(x, y):
                _dict_descent(x, y, [*prefix, i], out)
        return
    if not (isinstance(a, dict) and isinstance(b, dict)):
        if _small(a) and _small(b):
            _deepdiff(a, b, prefix, out)
        else:  # a huge list or text: the bounded walker (positional for lists, one finding for text)
            _walk(a, b, ".".join(str(p) for p in prefix), out)
        return
    for k, v in a.items():
        if k not in b:
            out.add(".".join(str(p) for p in (*prefix, k)), DiffKind.MISSING, v, _ABSENT)
        elif not _same_fast(v, b[k]):
            _dict_descent(v, b[k], [*prefix, k], out)
    for k, v in b.items():
        if k not in a:
            out.add(".".join(str(p) for p in (*prefix, k)), DiffKind.EXTRA, _ABSENT, v)


def _has_containers_in(a: list[Any], b: list[Any]) -> bool:
    return any(isinstance(x, dict | list) for x in a) or any(isinstance(y, dict | list) for y in b)


def explain(a: Json, b: Json, size: int) -> Findings:
    """The findings between two normalized documents, ``unequal`` counted over all of them. Up to
    DEEPDIFF_MAX_BYTES every finding is recorded, then sorted by path and cut at the cap; past it the records
    stop at the cap as they are found (memory stays bounded on a huge document), then are sorted."""
    out = Findings(None if size <= DEEPDIFF_MAX_BYTES else MAX_DIFFS_PER_PAIR)
    b = _order_prepass(a, b, "", out)
    _dict_descent(a, b, [], out)
    if not out.unequal:
        # The canonical texts differ, yet DeepDiff saw nothing: its difflib pass on lists of plain values takes
        # True for 1 ([1] vs [true]). The strict walker finds what the numeric policy calls different.
        _walk(a, b, "", out)
    out.diffs.sort(key=lambda d: (d.path, d.kind))
    for d in out.diffs[MAX_DIFFS_PER_PAIR:]:
        out.skip(d.path, d.kind)
    del out.diffs[MAX_DIFFS_PER_PAIR:]
    return out


def _small(v: Json) -> bool:
    """Whether DeepDiff's cost on ``v`` is bounded: a scalar, or text / JSON of at most DEEPDIFF_MAX_BYTES."""
    if isinstance(v, str):
        return len(v) <= DEEPDIFF_MAX_BYTES
    if isinstance(v, dict | list):
        try:
            return len(orjson.dumps(v)) <= DEEPDIFF_MAX_BYTES
        except TypeError:  # integers beyond 64 bits
            return False
    return True

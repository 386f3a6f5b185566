"""The differ's fast paths give exactly the verdicts and records of the straightforward ones, on the golden traces.

* normalization with the raw-text pre-checks (``raw=...``: rules whose key cannot occur are skipped, walks skip
  untouched objects) equals normalization with every rule run (``raw=None``);
* ``_explain`` (own object descent, DeepDiff only on differing non-object children) equals DeepDiff run on the
  whole document pair, record for record, and counts the same unequal legacy leaves;
* the big-integer pre-check matches the ``\\d{19,}`` regular expression on ASCII text and keeps big ints exact.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from deepdiff import DeepDiff

from diffing import diff as D
from diffing import explain as X
from recorder.format import read_trace
from wire.correlate import correlate
from wire.model import Close, Event, Exchange, Json, Other, Res
from wire.normalize import numeric_normal
from wire.profiles.openclaw import OPENCLAW

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _exchanges() -> list[Exchange]:
    out: list[Exchange] = []
    for path in sorted(GOLDEN.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            trace = read_trace(fh, path=str(path))
        out += [e for e in correlate(trace.observations, OPENCLAW) if e.responses]
    return out


EXCHANGES = _exchanges()


def _documents() -> list[tuple[Any, Json, str | None]]:
    docs = []
    for ex in EXCHANGES:
        for r in ex.responses:
            if isinstance(r, Other | Close):
                continue
            docs.append(D._document(r, ex, OPENCLAW))
    return docs


DOCS = _documents()


def _paths(v: Json, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*prefix, i))
    return out


def _mutants(doc: Json, rng: random.Random, n: int) -> list[Json]:
    """``n`` copies of ``doc``, each with one or two edits: value, type, bool-for-int, removed, added, reordered."""
    paths = [p for p in _paths(doc) if p]
    out = []
    for _ in range(n if paths else 0):
        m = copy.deepcopy(doc)
        for p in rng.sample(paths, min(len(paths), rng.choice((1, 2)))):
            parent: Any = m
            try:
                for k in p[:-1]:
                    parent = parent[k]
                old = parent[p[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            op = rng.randrange(7)
            if op == 0:
                parent[p[-1]] = f"changed-{old!r}"[:40]
            elif op == 1:
                parent[p[-1]] = [old] if not isinstance(old, list) else {"was": old}
            elif op == 2 and isinstance(parent, dict):
                del parent[p[-1]]
            elif op == 3 and isinstance(parent, dict):
                parent[f"{p[-1]}Extra"] = {"nested": [1, True, None]}
            elif op == 4 and isinstance(old, list) and len(old) > 1:
                parent[p[-1]] = old[::-1]
            elif op == 5 and isinstance(old, list):
                parent[p[-1]] = old[:-1] + [1.5]
            elif op == 6 and isinstance(old, bool | int) and old in (0, 1):
                parent[p[-1]] = (not old) if isinstance(old, bool) else bool(old)
        out.append(m)
    return out


def test_golden_documents_are_there() -> None:
    assert len(EXCHANGES) > 100 and len(DOCS) > 200


def test_raw_prechecks_change_no_normalization() -> None:
    norm = OPENCLAW.normalizer
    checked = 0
    for ctx, doc, raw in DOCS:
        if raw is None:
            continue
        fast = norm.normalize(copy.deepcopy(doc), ctx, raw=raw, track=True)
        full = norm.normalize(copy.deepcopy(doc), ctx, raw=None, track=True)
        canon = D._canonical(fast.value, full.value)
        assert fast.value == full.value and canon[0] == canon[1]
        assert fast.tolerant == full.tolerant and fast.monotonic == full.monotonic
        assert fast.hidden == full.hidden
        checked += 1
    assert checked > 200


def _leaves(v: Any) -> int:
    if isinstance(v, dict | list):
        return sum(_leaves(x) for x in (v.values() if isinstance(v, dict) else v)) or 1
    return 1


def _explain_reference(a: Json, b: Json, size: int) -> tuple[list[D.Diff], int]:
    """The explanation as it was first written: DeepDiff over the whole document pair; and the legacy leaves its
    findings cover (a removed or changed value: all its leaves; an added one or an order finding: one)."""
    out = X.Findings(None)
    assert size <= D.DEEPDIFF_MAX_BYTES, "the reference is DeepDiff on the whole document: small ones only"
    b = X._order_prepass(a, b, "", out)
    records = list(out.diffs)
    unequal = len(records)
    tree = DeepDiff(a, b, view="tree", threshold_to_diff_deeper=0, verbose_level=2)
    for report, levels in tree.items():
        kind = X._DD_KIND.get(report, D.DiffKind.VALUE)
        for level in levels:
            path = ".".join(str(p) for p in level.path(output_format="list")) or "$"
            legacy = None if kind is D.DiffKind.EXTRA else D.show(level.t1)
            candidate = None if kind is D.DiffKind.MISSING else D.show(level.t2)
            records.append(D.Diff(path, kind, legacy, candidate))
            unequal += 1 if kind is D.DiffKind.EXTRA else _leaves(level.t1)
    records.sort(key=lambda d: (d.path, d.kind))
    return records[: D.MAX_DIFFS_PER_PAIR], unequal


def _got(a: Json, b: Json, size: int) -> tuple[list[D.Diff], int]:
    found = X.explain(a, b, size)
    return found.diffs, found.unequal


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_explain_matches_whole_document_deepdiff(seed: int) -> None:
    rng = random.Random(seed)
    norm = OPENCLAW.normalizer
    compared = differing = 0
    for ctx, doc, raw in DOCS:
        a = numeric_normal(norm.normalize(copy.deepcopy(doc), ctx, raw=raw).value)
        for m in _mutants(doc, rng, 3):
            b = numeric_normal(norm.normalize(m, ctx).value)
            la, lb = D._canonical(a, b)
            size = max(len(la), len(lb))
            if size > D.DEEPDIFF_MAX_BYTES:
                continue
            got = _got(copy.deepcopy(a), copy.deepcopy(b), size)
            want = _explain_reference(copy.deepcopy(a), copy.deepcopy(b), size)
            assert got == want, (ctx, doc)
            compared += 1
            differing += bool(want[0])
    assert compared > 300 and differing > 200


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"x": {"y": 0}}, {"x": {"y": False}}),
        ({"x": 1}, {"x": 1.5}),
        ([1, 2], [2, 1, 3]),
        ("s", {"s": 1}),
        ({"a": {"b": [{"c": 1}]}}, {"a": {"b": [{"c": 2, "d": None}]}, "e": []}),
        ({"n": 2**70}, {"n": 2**70 + 1}),
        ({"n": 2**70, "m": [1]}, {"n": 2**70, "m": [2]}),
        ({"f": [0.0], "g": 1}, {"f": [-0.0], "g": 2}),
        ({"o": [{"a": 1, "b": 2}]}, {"o": [{"b": 2, "a": 1}], "p": 1}),
        # equal-length lists holding containers are walked by index, as DeepDiff pairs them
        ({"l": [{"a": 1}, 2, "x"]}, {"l": [{"a": 2}, 3, "x"]}),
        ({"l": [1, 2]}, {"l": [1, {"x": 1}]}),
        ({"l": [[1, 2], [3]]}, {"l": [[1, 3], [3]]}),
        ({"l": [{"a": 1}, {"b": 2}]}, {"l": [[1], {"b": 3, "c": 4}]}),
        ([{"a": [1, {"b": True}]}], [{"a": [1, {"b": 1}]}]),
        ({"l": [{"a": 1}, {"a": 2}]}, {"l": [{"a": 2}, {"a": 1}, {"a": 3}]}),
    ],
)
def test_explain_edge_cases_match_deepdiff(a: Json, b: Json) -> None:
    assert _got(a, b, 100) == _explain_reference(a, b, 100)


@pytest.mark.parametrize(
    ("a", "b", "path"),
    [
        ({"x": [1]}, {"x": [True]}, "x.0"),
        ({"big": [2**60], "g": 1}, {"big": [float(2**60)], "g": 1}, "big.0"),
        ({"l": [0, [1]]}, {"l": [0, [True]]}, "l.1.0"),
    ],
)
def test_what_deepdiff_takes_for_equal_in_a_list_the_strict_walker_finds(a: Json, b: Json, path: str) -> None:
    # DeepDiff's difflib pass on lists of plain values says 1 == True (and 2**60 == 2.0**60): no finding, although
    # the canonical texts differ; the numeric policy calls them different, so the explanation must not be empty
    assert _explain_reference(a, b, 100) == ([], 0)
    diffs, unequal = _got(a, b, 100)
    assert [(d.path, d.kind) for d in diffs] == [(path, D.DiffKind.TYPE)] and unequal == 1


def test_big_int_precheck_matches_the_regular_expression() -> None:
    rx = re.compile(r"\d{19,}")
    texts = [raw for _, _, raw in DOCS if raw] + ["1" * 18, "1" * 19, "x 12345678901234567890 y", "é" + "9" * 19]
    for t in texts:
        assert D._big_int_run(t) == bool(rx.search(t)), t[:80]
    assert D._loads('{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


def test_canonical_leaf_count_matches_the_token_count() -> None:
    rng = random.Random(7)
    norm = OPENCLAW.normalizer
    texts = [b"{}", b"[]", b"1", b'"a,b"', b'{"a,":[1,{},"x\\",y",[]]}', b'{"k":"\\u00e9,","n":[1e-7,-2,null]}']
    for ctx, doc, raw in DOCS:
        value = norm.normalize(copy.deepcopy(doc), ctx, raw=raw).value
        texts.append(D._canonical(value, value)[0])
        texts += [D._canonical(m, m)[0] for m in _mutants(doc, rng, 1)]
    for t in texts:
        assert D._canonical_leaves(t) == D._leaves(t), t[:200]


def test_float_precheck_finds_every_float() -> None:
    for v in [1.0, [1, 2.5], {"a": "x", "b": 1e20}, {"x": -0.0}, {"n": [{"m": 3.25}]}]:
        assert D._floats(D._canonical(v, v)[0]), v
    for v in [1, {"a": "1.5e3", "b": [1, 2, True, False, None]}, {"e.": "2.0"}]:
        assert not D._floats(D._canonical(v, v)[0]), v
    assert D._floats(b'{"a\\"":1}')  # an escape: assume floats
    rng = random.Random(11)
    for _, doc, _ in DOCS:
        for v in [doc, *_mutants(doc, rng, 1)]:
            canon = D._canonical(v, v)[0]
            if not D._floats(canon):
                assert D._canonical(numeric_normal(v), v) == (canon, canon)


def test_raw_stage_leaf_count_matches_the_token_count() -> None:
    """The raw-equal stage counts a frame's leaves from commas outside strings; the token regex is the reference."""
    frames = [r for ex in EXCHANGES for r in ex.responses if isinstance(r, Res | Event)]
    assert len(frames) > 200
    for r in frames:
        assert D._raw_leaves(r) == D._leaves(r.raw), r.raw[:120]
    raw = '{"type":"res","id":"1","ok":true,"payload":{"s":"a\\",b","n":[1,2]}}'
    escaped = Res(raw=raw, value=json.loads(raw), id="1", ok=True)
    assert D._raw_leaves(escaped) == 6  # an escape: the token regex decides
    spaced = '{"type" : "res", "id":"1","ok":true,"payload":{ "a": { }, "b": [ ], "c": "x, y"}}'
    frame = Res(raw=spaced, value=json.loads(spaced), id="1", ok=True)
    assert D._raw_leaves(frame) == D._canonical_leaves(D._canonical(frame.value, frame.value)[0]) == 6


def test_settle_pair_gives_compare_pairs_result_whenever_it_settles() -> None:
    """``settle_pair`` (the cheap stages only, run where the pair is) returns exactly ``compare_pair``'s result, and
    returns None only for pairs that ``compare_pair`` had to explain. Pairs: every golden exchange with itself, and
    each with the next exchange of the same kind and group (another scenario's answer: volatile fields, and real
    differences, as a candidate would give)."""
    from wire.model import Pair

    by_group: dict[tuple[Any, str], list[Exchange]] = {}
    for ex in EXCHANGES:
        by_group.setdefault((ex.kind, ex.group), []).append(ex)
    stages: dict[str, int] = {}
    unsettled = 0
    for group in by_group.values():
        for a, b in [(e, e) for e in group] + list(zip(group, group[1:], strict=False)):
            pair = Pair(conn=a.conn, key=a.key, kind=a.kind, group=a.group, legacy=a, candidate=b)
            full = D.compare_pair(pair, OPENCLAW)
            settled = D.settle_pair(pair, OPENCLAW)
            if settled is None:
                assert full.stage == "explain" and not full.equal, (a.group, a.key)
                unsettled += 1
            else:
                assert settled == full and settled.monotonic == full.monotonic, (a.group, a.key)
                stages[settled.stage] = stages.get(settled.stage, 0) + 1
    assert stages.get("raw", 0) > 200 and stages.get("canonical", 0) > 50 and unsettled > 100, (stages, unsettled)

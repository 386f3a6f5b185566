"""Differ and store throughput on realistic legacy payloads (the golden traces), each figure with a same-run
baseline; writes its section of docs/benchmarks.md.

Figures:
* equal pairs/s: every exchange of the golden traces against a copy whose volatile fields changed (uuids other
  than the request id, every ``ts``), so each pair goes through parse + profile + canonical compare;
  baseline: ``json.loads`` both sides + ``==`` (no normalization at all, so it would call them different).
* raw-identical pairs/s: the same exchanges unchanged (stage 1 only).
* differing pairs/s with full records: the copy also gets one extra field per response, so DeepDiff explains
  it into ``Diff`` records; baseline: DeepDiff on the parsed documents alone.
* store rows/s: pairs + exchange rows + diff rows through ``Store`` (one writer, batched executemany, SQLite
  WAL), started from a collected heap once the differ stages' data is released; baseline: one ``INSERT`` +
  ``COMMIT`` per row with the stdlib ``sqlite3``.

Run: ``.venv/bin/python bench/diff_bench.py [--seconds S]``. Single process; the differ is pure Python on one
core. Differ rates are per CPU-second of this process (the machine is shared), the store rate is wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson
from deepdiff import DeepDiff

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _report import machine_info, write_section  # noqa: E402

from diffing.diff import compare_pair  # noqa: E402
from diffing.store import Store  # noqa: E402
from recorder.format import read_trace  # noqa: E402
from wire.correlate import correlate  # noqa: E402
from wire.model import Close, Event, Exchange, HttpResponse, Leg, Other, Pair, Res, Response  # noqa: E402
from wire.profiles.openclaw import OPENCLAW  # noqa: E402

_UUID = re.compile(r'(?<!"id":")[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
_TS = re.compile(r'"ts":(\d+)')


def _volatile(text: str) -> str:
    text = _UUID.sub("00000000-1111-4222-8333-444444444444", text)
    return _TS.sub(lambda m: f'"ts":{int(m.group(1)) + 7}', text)


def _extra(text: str) -> str:
    i = text.rfind("}")
    return text if i < 0 else text[:i] + ',"zzBenchExtra":1' + text[i:]


def _mutate(r: Response, fn: object) -> Response:
    f = fn  # type: ignore[assignment]
    if isinstance(r, Res | Event | Other):
        return replace(r, raw=f(r.raw))  # type: ignore[operator]
    if isinstance(r, HttpResponse):
        return replace(r, body=f(r.body.decode("utf-8", "replace")).encode())  # type: ignore[operator]
    assert isinstance(r, Close)
    return r


def load_exchanges() -> list[Exchange]:
    out: list[Exchange] = []
    for path in sorted((ROOT / "tests" / "golden").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            trace = read_trace(fh, path=str(path))
        out += [e for e in correlate(trace.observations, OPENCLAW) if e.responses]
    return out


def pairs_for(exchanges: list[Exchange], fn: object | None) -> list[Pair]:
    pairs = []
    for e in exchanges:
        c = e if fn is None else replace(e, leg=Leg.CANDIDATE, responses=tuple(_mutate(r, fn) for r in e.responses))
        pairs.append(Pair(conn=e.conn, key=e.key, kind=e.kind, group=e.group, legacy=e, candidate=c))
    return pairs


def rate(fn: object, items: list[object], seconds: float) -> tuple[float, int]:
    call = fn  # type: ignore[assignment]
    n = 0
    start = time.process_time()
    while True:
        for it in items:
            call(it)  # type: ignore[operator]
        n += len(items)
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return n / elapsed, n


def _texts(p: Pair) -> tuple[list[str], list[str]]:
    def texts(e: Exchange | None) -> list[str]:
        return [r.raw if isinstance(r, Res | Event | Other) else r.body.decode("utf-8", "replace")
                for r in (e.responses if e else ()) if isinstance(r, Res | Event | Other | HttpResponse)]

    return texts(p.legacy), texts(p.candidate)


def _docs(p: Pair) -> tuple[list[object], list[object]]:
    def parse(t: str) -> object:
        try:
            return json.loads(t)
        except ValueError:
            return t

    legacy, candidate = _texts(p)
    return [parse(t) for t in legacy], [parse(t) for t in candidate]


def _parses(t: str) -> bool:
    try:
        orjson.loads(t)
        return True
    except ValueError:
        return False


def _orjson_both(texts: tuple[list[str], list[str]]) -> object:
    """The parse the differ does before any rule (orjson, both legs): the ceiling for a differ that parses."""
    return [orjson.loads(t) for t in texts[0]], [orjson.loads(t) for t in texts[1]]


def _docs_equal(p: Pair) -> bool:
    """The baseline's whole job: parse both sides, compare with ``==``."""
    a, b = _docs(p)
    return a == b


async def store_rate(results: list[object], n_target: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{tmp}/bench.db")  # the store's default batch size
        run = await store.start_run(name="bench")
        rows = 0
        start = time.perf_counter()
        cpu = time.process_time()
        i = 0
        while rows < n_target:
            pair, result = results[i % len(results)]  # type: ignore[misc]
            store.add_pair(run, result, legacy=pair.legacy, candidate=pair.candidate)
            rows += 1 + (pair.legacy is not None) + (pair.candidate is not None)
            rows += len(result.diffs) + len(result.unrecorded)
            i += 1
            if i % 5000 == 0:
                await asyncio.sleep(0)
        await store.flush()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        await store.close()
    return rows / elapsed, rows / cpu, rows


def sqlite_baseline(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/base.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c REAL)")
        start = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (i, "health", 0.01))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    exchanges = load_exchanges()
    if not exchanges:
        print("no golden traces under tests/golden: nothing to measure", file=sys.stderr)
        return 1
    same = pairs_for(exchanges, None)
    volatile = pairs_for(exchanges, _volatile)
    differing = pairs_for(exchanges, lambda t: _extra(_volatile(t)))
    eq_results = [compare_pair(p, OPENCLAW) for p in volatile]
    equal = [p for p, r in zip(volatile, eq_results, strict=True) if r.equal]
    diff_results = [(p, compare_pair(p, OPENCLAW)) for p in differing]
    differ = [p for p, r in diff_results if not r.equal]
    avg_bytes = sum(len(r.raw) if isinstance(r, Res | Event | Other) else len(getattr(r, "body", b""))
                    for e in exchanges for r in e.responses) / len(exchanges)

    s = args.seconds
    raw_rate, _ = rate(lambda p: compare_pair(p, OPENCLAW), same, s)  # type: ignore[arg-type]
    eq_rate, eq_n = rate(lambda p: compare_pair(p, OPENCLAW), equal, s)  # type: ignore[arg-type]
    eq_docs = [_docs(p) for p in equal]
    base_eq, _ = rate(lambda d: d[0] == d[1], [(json.loads(json.dumps(a)), b) for a, b in eq_docs], s / 3)
    base_eq_parse, _ = rate(lambda p: _docs_equal(p), equal, s / 3)  # type: ignore[arg-type]
    eq_texts = [tuple([t for t in side if _parses(t)] for side in _texts(p)) for p in equal]
    base_orjson, _ = rate(_orjson_both, eq_texts, s / 3)  # type: ignore[arg-type]
    big = [p for p in equal if sum(len(t) for t in _texts(p)[0]) > 10_000]
    small = [p for p in equal if sum(len(t) for t in _texts(p)[0]) <= 10_000]
    small_rate, _ = rate(lambda p: compare_pair(p, OPENCLAW), small, s / 3)  # type: ignore[arg-type]
    big_rate, _ = rate(lambda p: compare_pair(p, OPENCLAW), big, s / 3)  # type: ignore[arg-type]
    base_raw, _ = rate(lambda p: _docs_equal(p), same, s / 3)  # type: ignore[arg-type]
    df_rate, df_n = rate(lambda p: compare_pair(p, OPENCLAW), differ, s)  # type: ignore[arg-type]
    df_docs = [_docs(p) for p in differ]
    base_df, _ = rate(lambda d: DeepDiff(d[0], d[1]), df_docs, s / 3)  # type: ignore[index]
    # The store stage starts from a collected heap, without the differ stages' parsed copies: otherwise the
    # cyclic GC, run by the store's own allocations, walks and frees the differ's leftovers on the store's clock.
    n_small, n_big = len(small), len(big)
    del eq_docs, eq_texts, df_docs, big, small
    gc.collect()
    rows_rate, rows_cpu_rate, rows_n = asyncio.run(store_rate([x for x in diff_results] + [(p, r) for p, r in zip(volatile, eq_results, strict=True)], 200_000))
    base_rows = sqlite_baseline(3000)

    def fmt(v: float) -> str:
        return f"{v:,.0f}"

    table = "\n".join([
        f"{len(exchanges)} exchanges from {len(list((ROOT / 'tests' / 'golden').glob('*.jsonl')))} golden traces, "
        f"{avg_bytes:,.0f} B of response text on average; {len(equal)} normalize equal after volatile changes, "
        f"{len(differ)} differ after one extra field.",
        "",
        "Differ figures are per CPU-second of this process (`time.process_time`), so other load on the shared "
        "machine does not count against them; the store figure is wall clock.",
        "",
        "| figure | value | target | baseline (same run) |",
        "|---|---|---|---|",
        f"| equal pairs/s (parse + profile + canonical) | {fmt(eq_rate)} | >= 50,000 | json.loads x2 + `==`: "
        f"{fmt(base_eq_parse)} pairs/s (and `==` alone on parsed docs: {fmt(base_eq)}); orjson.loads x2 alone, the "
        f"parse the differ does before any rule: {fmt(base_orjson)} pairs/s |",
        f"| equal pairs/s, the {n_small} pairs of 10 KB or less / the {n_big} larger ones (hello-ok, ~17 KB) "
        f"| {fmt(small_rate)} / {fmt(big_rate)} | - | (a breakdown of the row above, same pairs) |",
        f"| raw-identical pairs/s (stage 1) | {fmt(raw_rate)} | - | json.loads x2 + `==` on the same pairs: "
        f"{fmt(base_raw)} pairs/s |",
        f"| differing pairs/s with full Diff records | {fmt(df_rate)} | >= 1,000 | DeepDiff alone on parsed docs: "
        f"{fmt(base_df)} pairs/s |",
        f"| store rows/s (SQLite WAL, batched, pairs+exchanges+diffs), wall clock | {fmt(rows_rate)} | >= 100,000 | "
        f"one INSERT + COMMIT per row: {fmt(base_rows)} rows/s (wall) |",
        f"| store rows per CPU-second | {fmt(rows_cpu_rate)} | - | - |",
        "",
        f"Samples: {eq_n:,} equal pairs, {df_n:,} differing pairs, {rows_n:,} rows.",
    ])
    print(table)
    if not args.no_write:
        write_section("Differ and parity store (bench/diff_bench.py)", table, machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())

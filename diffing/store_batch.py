"""One batch of compared pairs as rows: the parity store's write path, kept apart from its queries.

Owns :func:`write_batch` (pairs, exchange summaries, diffs and mismatch-signature counts in one transaction) and the
exemplar limit; :func:`signature_path` is ``diffing.records``', re-exported. Rows are plain tuples in table column
order, sent with the driver's ``executemany`` (``exec_driver_sql``): SQLAlchemy's per-row parameter processing would
otherwise cost more than SQLite itself. Runs in the store's writer thread; no asyncio here.

May import SQLAlchemy, ``diffing.schema``, ``diffing.diff``, ``wire``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from diffing import schema
from diffing.diff import MAX_DIFFS_PER_PAIR, DiffKind, PairResult, signature_path
from wire.model import Close, Event, Exchange, ExchangeKind, HttpResponse, Other, Res

__all__ = ["MAX_EXEMPLARS", "Item", "cut", "signature_path", "summary", "write_batch"]

#: Exemplars kept per mismatch signature.
MAX_EXEMPLARS = 5

@dataclass(slots=True)
class Item:
    """One accepted pair waiting for the writer."""

    run_id: int
    pair_no: int
    result: PairResult
    legacy: Exchange | None
    candidate: Exchange | None
    at: float


def cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"…<truncated {len(text) - limit} chars>"


_TEXT_FRAMES = (Res, Event, Other)  # a tuple: isinstance with it is cheaper than with a union, once per row
#: Enum member -> its stored text, a dict lookup instead of the enum ``value`` descriptor on every row.
_VALUE: dict[Any, str] = {m: m.value for m in (*ExchangeKind, *DiffKind)}


def summary(ex: Exchange | None) -> str:
    """The first response, cut to 300 characters with a visible marker (leg data is already redacted)."""
    if ex is None or not ex.responses:
        return ""
    r = ex.responses[0]
    if isinstance(r, _TEXT_FRAMES):
        return cut(r.raw)
    if isinstance(r, HttpResponse):
        return cut(f"{r.status} {r.body[:400].decode('utf-8', 'replace')}")
    return cut(f"close {r.code} {r.reason}") if isinstance(r, Close) else ""


def _unrecorded_text(count: int) -> str:
    return f"…<{count} findings past the pair's record cap ({MAX_DIFFS_PER_PAIR}): counted, values not kept>"


def insert_sql(conn: Connection, table: Any) -> str:
    cols = [c.name for c in table.columns]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in cols)
    return f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join([mark] * len(cols))})"


def write_batch(engine: Engine, batch: Sequence[Item]) -> None:
    """Write one batch of compared pairs in one transaction: pairs, exchange summaries, diffs, signature counts."""
    # Rows are plain tuples in table column order, sent with the driver's executemany (exec_driver_sql):
    # SQLAlchemy's per-row parameter processing would otherwise cost more than SQLite itself.
    pair_rows: list[tuple[Any, ...]] = []
    ex_rows: list[tuple[Any, ...]] = []
    diff_rows: list[tuple[Any, ...]] = []
    sigs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for it in batch:
        r = it.result
        route = r.group[:200]
        pair_rows.append(
            (
                it.run_id,
                it.pair_no,
                r.conn[:200],
                r.key[:300],
                _VALUE[r.kind],
                route,
                r.scenario or None,
                r.equal,
                r.stage,
                r.unmatched,
                r.fields_total,
                r.fields_equal,
                r.legacy_latency,
                r.candidate_latency,
                r.legacy_error,
                r.candidate_error,
                it.at,
            )
        )
        if it.legacy is not None:
            ex_rows.append(
                (
                    it.run_id,
                    it.pair_no,
                    "legacy",
                    it.legacy.t_start,
                    it.legacy.latency,
                    len(it.legacy.responses),
                    r.legacy_error,
                    summary(it.legacy),
                )
            )
        if it.candidate is not None:
            ex_rows.append(
                (
                    it.run_id,
                    it.pair_no,
                    "candidate",
                    it.candidate.t_start,
                    it.candidate.latency,
                    len(it.candidate.responses),
                    r.candidate_error,
                    summary(it.candidate),
                )
            )
        for n, d in enumerate(r.diffs):
            sp = signature_path(d.path)[:500]
            kind = _VALUE[d.kind]
            diff_rows.append((it.run_id, it.pair_no, n, route, d.path[:500], sp, kind, d.legacy, d.candidate, 1))
            s = sigs.setdefault((route, sp, kind), {"count": 0, "first": it.at, "last": it.at, "ex": []})
            s["count"] += 1
            s["last"] = max(s["last"], it.at)
            if len(s["ex"]) < MAX_EXEMPLARS:
                s["ex"].append(
                    {
                        "run": it.run_id,
                        "pair": it.pair_no,
                        "conn": r.conn,
                        "key": r.key,
                        "scenario": r.scenario,
                        "path": d.path,
                        "legacy": d.legacy,
                        "candidate": d.candidate,
                    }
                )
        # findings past the pair's record cap: one row per signature holding their count, no exemplar
        for m, (path, dk, count) in enumerate(r.unrecorded, start=len(r.diffs)):
            sp, kind = path[:500], _VALUE[dk]
            diff_rows.append((it.run_id, it.pair_no, m, route, sp, sp, kind, _unrecorded_text(count), None, count))
            s = sigs.setdefault((route, sp, kind), {"count": 0, "first": it.at, "last": it.at, "ex": []})
            s["count"] += count
            s["last"] = max(s["last"], it.at)
    with engine.begin() as conn:
        for table, rows in ((schema.pairs, pair_rows), (schema.exchanges, ex_rows), (schema.diffs, diff_rows)):
            if rows:
                conn.exec_driver_sql(insert_sql(conn, table), rows)
        _merge_signatures(conn, sigs)

def _merge_signatures(conn: Connection, sigs: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """Add a batch's signature counts: one SELECT for the batch, then executemany inserts and updates."""
    if not sigs:
        return
    t = schema.signatures
    routes = sorted({route for route, _, _ in sigs})
    existing = {
        (r.route, r.path, r.kind): r
        for r in conn.execute(
            select(t.c.id, t.c.route, t.c.path, t.c.kind, t.c.exemplars, t.c.last_seen).where(t.c.route.in_(routes))
        )
        if (r.route, r.path, r.kind) in sigs
    }
    inserts, updates = [], []
    for key, s in sigs.items():
        row = existing.get(key)
        if row is None:
            route, path, kind = key
            inserts.append(
                {
                    "route": route,
                    "path": path,
                    "kind": kind,
                    "count": s["count"],
                    "first_seen": s["first"],
                    "last_seen": s["last"],
                    "exemplars": json.dumps(s["ex"][:MAX_EXEMPLARS]),
                    "review": "unreviewed",
                    "note": "",
                }
            )
        else:
            old = json.loads(row.exemplars)
            ex = old if len(old) >= MAX_EXEMPLARS else (old + s["ex"])[:MAX_EXEMPLARS]
            updates.append(
                {"b_id": row.id, "b_n": s["count"], "b_last": max(row.last_seen, s["last"]), "b_ex": json.dumps(ex)}
            )
    if inserts:
        conn.execute(insert(t), inserts)
    if updates:
        conn.execute(
            update(t)
            .where(t.c.id == bindparam("b_id"))
            .values(count=t.c.count + bindparam("b_n"), last_seen=bindparam("b_last"), exemplars=bindparam("b_ex")),
            updates,
        )

"""The parity store: the only SQL I/O. One writer task drains a queue in batches (executemany).

Owns :class:`Store`, :func:`database_url` and :func:`migrate`; how one batch becomes rows is
``diffing.store_batch`` (re-exported here: :func:`signature_path`). May import SQLAlchemy, Alembic, asyncio,
``wire`` and ``diffing``.

* URL: ``sqlite:///path.db`` (default; a bare path is taken as SQLite) or ``postgresql://...`` (driven by
  psycopg 3: ``postgresql+psycopg://``).
* Open applies the Alembic migrations (``diffing/migrations``) programmatically.
* SQLite runs in WAL with ``synchronous=NORMAL``, set in a ``connect`` listener (architecture §11: ~155k rows/s
  batched vs ~11k with one commit per row).
* :meth:`Store.add_pair` only enqueues (never blocks the caller's loop); the single writer task takes up to
  ``batch_size`` items per transaction. A busy/locked database is retried with exponential backoff up to
  ``retry_for`` seconds; the batch stays in memory meanwhile, so nothing accepted is lost. Past that deadline
  the batch is put back (in order) and :meth:`Store.flush` raises :class:`StoreError`; the next flush, or the
  next full batch, tries again. A batch the database refuses outright (a constraint) is reported the same way
  and not retried.
* Blocking SQL runs in a worker thread (``asyncio.to_thread``) on a synchronous engine.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import OperationalError

from diffing import schema
from diffing.diff import PairResult
from diffing.store_batch import Item, signature_path, write_batch
from wire.errors import ConfigError, ParityError
from wire.model import Exchange

logger = logging.getLogger(__name__)

__all__ = [
    "NoiseRuleRow",
    "RouteStats",
    "RunInfo",
    "SignatureRow",
    "Store",
    "StoreError",
    "database_url",
    "migrate",
    "signature_path",
]

_MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(ParityError, RuntimeError):
    """The store could not write (after retries) or was used after close."""


def database_url(url: str) -> str:
    """Normalize ``--db``: bare paths become SQLite URLs; ``postgresql://`` uses psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise ConfigError(f"--db: unsupported database URL scheme in {url!r} (sqlite:/// or postgresql://)")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    url = database_url(url)
    if url.startswith("sqlite"):
        # Short driver busy timeout: our own backoff does the waiting and logs it.
        engine = create_engine(url, connect_args={"timeout": 0.2, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(conn: Connection) -> None:
    """Apply every Alembic migration to ``conn`` (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    name: str
    source: str
    status: str
    started_at: float
    finished_at: float | None
    legacy_url: str
    candidate_url: str
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignatureRow:
    id: int
    route: str
    path: str
    kind: str
    count: int
    first_seen: float
    last_seen: float
    exemplars: list[dict[str, Any]]
    review: str


@dataclass(frozen=True, slots=True)
class NoiseRuleRow:
    id: int
    route: str
    path: str
    kind: str
    action: str
    status: str
    differing: int
    compared: int
    runs: int
    reason: str


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Per method/route figures of one run, as the gate and the report need them.

    ``matches`` counts pairs equal after the profile AND the accepted noise rules; ``raw_matches`` after the
    profile only. ``latencies`` holds (legacy, candidate) seconds of pairs where both legs answered.
    ``signatures`` maps (generalized path, kind) -> count within this run.
    """

    route: str
    pairs: int
    matches: int
    raw_matches: int
    legacy_errors: int
    candidate_errors: int
    unmatched: int
    fields_total: int
    fields_equal: int
    latencies: tuple[tuple[float, float], ...]
    legacy_latencies: tuple[float, ...]
    candidate_latencies: tuple[float, ...]
    signatures: dict[tuple[str, str], int] = field(default_factory=dict)


def _busy(exc: BaseException) -> bool:
    """A locked/busy database: worth waiting for (SQLite ``database is locked``, PostgreSQL lock timeouts)."""
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in text or "busy" in text


class Store:
    """Async facade over one database. Create with ``await Store.open(url)``; always ``await close()``.

    Args:
        engine: a SQLAlchemy engine (use :meth:`open`).
        batch_size: pairs per write transaction at most (2,500: about 10 % more rows/s than 1,000 in paired
            runs of bench/diff_bench.py's store stage; a quiet run writes smaller batches as pairs come).
        retry_for: seconds a busy/locked database is retried before :meth:`flush` reports it.
        clock: wall-clock seconds for run and signature timestamps (injected for tests).
    """

    def __init__(
        self, engine: Engine, *, batch_size: int = 2500, retry_for: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.retry_for = retry_for
        self.clock = clock
        # Accepted pairs wait in a plain list (appending is the whole cost of add_pair); the writer takes them in
        # slices of batch_size. _wake: there is work; _pass_done: the writer finished a pass (buffer empty, or a
        # failed batch put back at the front).
        self._buf: list[Item] = []
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._pass_done = asyncio.Event()
        self._stopping = False
        self._kept_back = False  # the last pass put a locked batch back
        self._writer: asyncio.Task[None] | None = None
        self._next_pair: dict[int, int] = {}
        self._error: BaseException | None = None
        self._closed = False
        self.written = 0
        self.retries = 0

    @classmethod
    async def open(cls, url: str, **kw: Any) -> Store:
        """Connect, apply migrations and start the writer task."""
        engine = make_engine(url)

        def setup() -> None:
            with engine.begin() as conn:
                migrate(conn)

        await asyncio.to_thread(setup)
        store = cls(engine, **kw)
        store._writer = asyncio.get_running_loop().create_task(store._drain(), name="parity-store-writer")
        return store

    # --- runs ------------------------------------------------------------------------------------------------

    async def start_run(
        self,
        *,
        name: str = "",
        source: str = "replay",
        profile: str = "openclaw",
        legacy_url: str = "",
        candidate_url: str = "",
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Insert a run and return its id."""
        row = {
            "name": name,
            "source": source,
            "profile": profile,
            "legacy_url": legacy_url,
            "candidate_url": candidate_url,
            "started_at": self.clock(),
            "status": "running",
            "meta": json.dumps(meta or {}, sort_keys=True),
        }

        def do() -> int:
            with self.engine.begin() as conn:
                pk = conn.execute(insert(schema.runs).values(**row)).inserted_primary_key
                assert pk is not None
                return int(pk[0])

        run_id = int(await self._retrying(do))
        self._next_pair[run_id] = 0
        return run_id

    async def finish_run(self, run_id: int, *, status: str = "done", meta: dict[str, Any] | None = None) -> None:
        """Flush pending pairs, then mark the run finished."""
        await self.flush()
        values: dict[str, Any] = {"finished_at": self.clock(), "status": status}
        if meta is not None:
            values["meta"] = json.dumps(meta, sort_keys=True)

        def do() -> None:
            with self.engine.begin() as conn:
                conn.execute(update(schema.runs).where(schema.runs.c.id == run_id).values(**values))

        await self._retrying(do)

    # --- pairs -----------------------------------------------------------------------------------------------

    def add_pair(
        self, run_id: int, result: PairResult, *, legacy: Exchange | None = None, candidate: Exchange | None = None
    ) -> int:
        """Enqueue one compared pair (and its exchanges' summaries); returns its ``pair_no``. Never blocks."""
        if self._closed:
            raise StoreError("store is closed")
        if run_id not in self._next_pair:
            self._next_pair[run_id] = self._max_pair_no(run_id)
        self._next_pair[run_id] += 1
        no = self._next_pair[run_id]
        self._buf.append(Item(run_id, no, result, legacy, candidate, self.clock()))
        n = len(self._buf)
        if n == 1 or n % self.batch_size == 0:  # new work, or a full batch more (also retries after a failure)
            self._wake.set()
        return no

    def _max_pair_no(self, run_id: int) -> int:
        with self.engine.connect() as conn:
            v = conn.execute(select(func.max(schema.pairs.c.pair_no)).where(schema.pairs.c.run_id == run_id)).scalar()
        return int(v or 0)

    @property
    def pending(self) -> int:
        """Pairs accepted but not yet committed."""
        return len(self._buf) + self._in_flight

    async def flush(self) -> None:
        """Wait until everything enqueued so far is written; raises :class:`StoreError` if writing failed since
        the last flush. Pairs of a batch still locked past ``retry_for`` stay queued, in order, for the next flush
        (or the next full batch); a batch the database refused outright is reported here and not retried."""
        while self.pending:
            if self._writer is None or self._writer.done():
                raise StoreError(f"the parity store writer has stopped; {self.pending} pairs not written")
            self._pass_done.clear()
            self._wake.set()
            done = asyncio.ensure_future(self._pass_done.wait())
            await asyncio.wait((done, self._writer), return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            if self._kept_back:  # still locked: stop here, report below, keep the pairs
                break
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"writing to the parity store failed: {err}") from err

    async def close(self) -> None:
        """Flush, stop the writer and dispose of the engine. Pairs a failed flush could not write are logged."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            if self.pending:
                logger.error("parity store closed with %d pairs not written", self.pending)
            if self._writer is not None and not self._writer.done():
                self._stopping = True
                self._wake.set()
                await self._writer
            self.engine.dispose()

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            self._kept_back = False
            while self._buf:
                batch = self._buf[: self.batch_size]
                del self._buf[: self.batch_size]
                self._in_flight = len(batch)
                try:
                    await self._retrying(functools.partial(write_batch, self.engine, batch))
                    self.written += len(batch)
                    if self._error is not None and _busy(self._error):
                        self._error = None  # the kept batch made it after all: nothing to report
                except asyncio.CancelledError:
                    logger.error("parity store writer cancelled with %d pairs in flight", len(batch))
                    raise
                except Exception as exc:  # keep the writer alive; flush() reports it
                    self._error = exc
                    if _busy(exc):  # still locked past retry_for: back at the front, in order, for the next try
                        logger.error("parity store busy for %.0fs: %d pairs kept queued", self.retry_for, len(batch))
                        self._buf[:0] = batch
                        self._kept_back = True
                        break
                    # a batch the database refuses (constraint, data error) would fail again: reported, not retried
                    logger.error("parity store: batch of %d pairs refused: %s", len(batch), exc)
                finally:
                    self._in_flight = 0
            self._pass_done.set()

    async def _retrying(self, fn: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        while True:
            try:
                return await asyncio.to_thread(fn)
            except OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
                self.retries += 1
                logger.warning("parity store busy (%s); retrying in %.2fs", exc.orig or exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # --- queries (used by report, noise and the gate) -------------------------------------------------------

    async def runs(self) -> list[RunInfo]:
        def do() -> list[RunInfo]:
            with self.engine.connect() as conn:
                rows = conn.execute(select(schema.runs).order_by(schema.runs.c.id)).all()
            return [
                RunInfo(
                    r.id,
                    r.name,
                    r.source,
                    r.status,
                    r.started_at,
                    r.finished_at,
                    r.legacy_url,
                    r.candidate_url,
                    json.loads(r.meta or "{}"),
                )
                for r in rows
            ]

        return await asyncio.to_thread(do)

    async def latest_run(self, *, source: str | None = None) -> int | None:
        runs = [r for r in await self.runs() if source is None or r.source == source]
        return runs[-1].id if runs else None

    async def pair_rows(self, run_id: int) -> list[dict[str, Any]]:
        def do() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        select(schema.pairs).where(schema.pairs.c.run_id == run_id).order_by(schema.pairs.c.pair_no)
                    )
                    .mappings()
                    .all()
                )
            return [dict(r) for r in rows]

        return await asyncio.to_thread(do)

    async def diff_rows(self, run_id: int) -> list[dict[str, Any]]:
        def do() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        select(schema.diffs)
                        .where(schema.diffs.c.run_id == run_id)
                        .order_by(schema.diffs.c.pair_no, schema.diffs.c.n)
                    )
                    .mappings()
                    .all()
                )
            return [dict(r) for r in rows]

        return await asyncio.to_thread(do)

    async def route_stats(self, run_id: int) -> list[RouteStats]:
        """Per method/route figures of one run, with the accepted noise rules applied (see :class:`RouteStats`)."""
        from diffing.noise import matches_rule  # local: noise imports the store's row types

        pairs = await self.pair_rows(run_id)
        diffs = await self.diff_rows(run_id)
        accepted = await self.noise_rules(status="accepted")
        real: dict[int, int] = {}  # pair_no -> count of non-noise diffs
        sigs: dict[str, dict[tuple[str, str], int]] = {}
        for d in diffs:
            if any(matches_rule(rule, d["route"], d["signature_path"], d["kind"]) for rule in accepted):
                continue
            real[d["pair_no"]] = real.get(d["pair_no"], 0) + d["count"]
            per = sigs.setdefault(d["route"], {})
            key = (d["signature_path"], d["kind"])
            per[key] = per.get(key, 0) + d["count"]  # a row past a pair's record cap stands for `count` findings
        by_route: dict[str, list[dict[str, Any]]] = {}
        for p in pairs:
            by_route.setdefault(p["route"], []).append(p)
        out = []
        for route, rows in sorted(by_route.items()):
            lat = tuple(
                (p["legacy_latency"], p["candidate_latency"])
                for p in rows
                if p["legacy_latency"] is not None and p["candidate_latency"] is not None
            )
            out.append(
                RouteStats(
                    route=route,
                    pairs=len(rows),
                    matches=sum(1 for p in rows if p["equal"] or real.get(p["pair_no"], 0) == 0),
                    raw_matches=sum(1 for p in rows if p["equal"]),
                    legacy_errors=sum(1 for p in rows if p["legacy_error"]),
                    candidate_errors=sum(1 for p in rows if p["candidate_error"]),
                    unmatched=sum(1 for p in rows if p["unmatched"]),
                    fields_total=sum(p["fields_total"] for p in rows),
                    fields_equal=sum(p["fields_equal"] for p in rows),
                    latencies=lat,
                    legacy_latencies=tuple(p["legacy_latency"] for p in rows if p["legacy_latency"] is not None),
                    candidate_latencies=tuple(
                        p["candidate_latency"] for p in rows if p["candidate_latency"] is not None
                    ),
                    signatures=sigs.get(route, {}),
                )
            )
        return out

    async def signatures(self, *, review: str | None = None) -> list[SignatureRow]:
        def do() -> list[SignatureRow]:
            t = schema.signatures
            q = select(t).order_by(t.c.count.desc(), t.c.id)
            if review is not None:
                q = q.where(t.c.review == review)
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            return [
                SignatureRow(
                    r.id, r.route, r.path, r.kind, r[4], r.first_seen, r.last_seen, json.loads(r.exemplars), r.review
                )
                for r in rows
            ]

        return await asyncio.to_thread(do)

    async def set_signature_review(self, sig_id: int, review: str, note: str = "") -> None:
        if review not in ("unreviewed", "expected", "bug"):
            raise ConfigError(f"review: expected unreviewed, expected or bug, got {review!r}")

        def do() -> int:
            with self.engine.begin() as conn:
                t = schema.signatures
                return int(conn.execute(update(t).where(t.c.id == sig_id).values(review=review, note=note)).rowcount)

        if not await self._retrying(do):
            raise ConfigError(f"signature id {sig_id} does not exist")

    async def noise_rules(self, *, status: str | None = None) -> list[NoiseRuleRow]:
        def do() -> list[NoiseRuleRow]:
            t = schema.noise_rules
            q = select(t).order_by(t.c.id)
            if status is not None:
                q = q.where(t.c.status == status)
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            return [
                NoiseRuleRow(
                    r.id, r.route, r.path, r.kind, r.action, r.status, r.differing, r.compared, r.runs, r.reason
                )
                for r in rows
            ]

        return await asyncio.to_thread(do)

    async def propose_noise(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert or refresh proposed noise rules (``route, path, kind, action, differing, compared, runs,
        reason``); accepted/rejected decisions are kept, only the evidence is updated. Returns the ids."""
        now = self.clock()

        def do() -> list[int]:
            t = schema.noise_rules
            ids = []
            with self.engine.begin() as conn:
                for r in rows:
                    old = conn.execute(
                        select(t.c.id).where(t.c.route == r["route"], t.c.path == r["path"], t.c.kind == r["kind"])
                    ).first()
                    evidence = {k: r[k] for k in ("differing", "compared", "runs", "reason", "action")}
                    if old is None:
                        res = conn.execute(
                            insert(t).values(
                                route=r["route"],
                                path=r["path"],
                                kind=r["kind"],
                                status="proposed",
                                created_at=now,
                                updated_at=now,
                                **evidence,
                            )
                        )
                        pk = res.inserted_primary_key
                        assert pk is not None
                        ids.append(int(pk[0]))
                    else:
                        conn.execute(update(t).where(t.c.id == old.id).values(updated_at=now, **evidence))
                        ids.append(int(old.id))
            return ids

        return list(await self._retrying(do))

    async def set_noise_status(self, rule_id: int, status: str) -> None:
        if status not in ("proposed", "accepted", "rejected"):
            raise ConfigError(f"status: expected proposed, accepted or rejected, got {status!r}")

        def do() -> int:
            t = schema.noise_rules
            with self.engine.begin() as conn:
                return int(
                    conn.execute(
                        update(t).where(t.c.id == rule_id).values(status=status, updated_at=self.clock())
                    ).rowcount
                )

        if not await self._retrying(do):
            raise ConfigError(f"noise rule id {rule_id} does not exist")

"""diffing.store on real databases: SQLite (WAL, batching, busy retry with nothing lost) and a real PostgreSQL
server started by the fixture below."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _timing import S, async_wait_until
from sqlalchemy import inspect, text

from diffing import store as store_module
from diffing.diff import Diff, DiffKind, PairResult
from diffing.store import Store, StoreError, database_url, signature_path
from wire.errors import ConfigError
from wire.model import ExchangeKind

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def result(i: int, *, equal: bool = True, route: str = "health", diffs: tuple[Diff, ...] = (),
           scenario: str = "s1", lat: tuple[float | None, float | None] = (0.01, 0.02)) -> PairResult:
    return PairResult(conn="c1", key=str(i), kind=ExchangeKind.WS, group=route, scenario=scenario, equal=equal,
                      stage="raw" if equal else "explain", diffs=diffs, fields_total=10,
                      fields_equal=10 - len(diffs), legacy_latency=lat[0], candidate_latency=lat[1])


DIFF = Diff("payload.items.3.ts", DiffKind.VALUE, "1", "2")


async def exercise(store: Store) -> None:
    run = await store.start_run(name="t", legacy_url="http://l", candidate_url="http://c", meta={"k": 1})
    for i in range(300):
        d = (DIFF,) if i % 3 == 0 else ()
        store.add_pair(run, result(i, equal=not d, diffs=d))
    store.add_pair(run, result(999, route="POST /hooks/wake", lat=(None, 0.1)))
    await store.finish_run(run)
    (info,) = [r for r in await store.runs() if r.id == run]
    assert info.status == "done" and info.meta == {"k": 1} and info.finished_at is not None
    stats = {s.route: s for s in await store.route_stats(run)}
    health = stats["health"]
    assert (health.pairs, health.matches, health.raw_matches) == (300, 200, 200)
    assert health.signatures == {("payload.items.*.ts", "value"): 100}
    assert len(health.latencies) == 300 and health.fields_total == 3000
    assert stats["POST /hooks/wake"].latencies == ()
    (sig,) = await store.signatures()
    assert (sig.route, sig.path, sig.kind, sig.count, sig.review) == ("health", "payload.items.*.ts", "value", 100,
                                                                     "unreviewed")
    assert len(sig.exemplars) == 5 and sig.exemplars[0]["legacy"] == "1"
    # Accepting a noise rule for that signature lifts parity to 100 %.
    (rid,) = await store.propose_noise([{"route": "health", "path": "payload.items.*.ts", "kind": "value",
                                          "action": "mask", "differing": 100, "compared": 300, "runs": 2,
                                          "reason": "A/A"}])
    assert await store.propose_noise([{"route": "health", "path": "payload.items.*.ts", "kind": "value",
                                       "action": "mask", "differing": 101, "compared": 300, "runs": 2,
                                       "reason": "A/A"}]) == [rid]
    await store.set_noise_status(rid, "accepted")
    assert {s.route: s for s in await store.route_stats(run)}["health"].matches == 300
    (rule,) = await store.noise_rules(status="accepted")
    assert rule.differing == 101
    await store.set_signature_review(sig.id, "expected", "known")
    assert [s.review for s in await store.signatures(review="expected")] == ["expected"]
    with pytest.raises(ConfigError):
        await store.set_signature_review(999, "expected")
    with pytest.raises(ConfigError):
        await store.set_signature_review(sig.id, "maybe")
    with pytest.raises(ConfigError):
        await store.set_noise_status(999, "accepted")
    with pytest.raises(ConfigError):
        await store.set_noise_status(rid, "sure")
    # A second run adds to the same signature, counts stay per run in route_stats.
    run2 = await store.start_run(name="t2")
    store.add_pair(run2, result(1, equal=False, diffs=(DIFF,)))
    await store.flush()
    assert (await store.signatures())[0].count == 101
    assert await store.latest_run() == run2
    assert await store.latest_run(source="shadow") is None


async def test_findings_past_the_record_cap_count_in_signatures_and_route_stats(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        run = await store.start_run(name="cap")
        recorded = tuple(Diff(f"payload.methods.{i}", DiffKind.MISSING, f'"m{i}"', None) for i in range(200))
        r = PairResult(conn="c1", key="1", kind=ExchangeKind.WS, group="connect", scenario="s1", equal=False,
                       stage="explain", diffs=recorded, fields_total=500, fields_equal=50,
                       unrecorded=(("payload.methods.*", DiffKind.MISSING, 250), ("payload.zz", DiffKind.EXTRA, 1)))
        store.add_pair(run, r)
        await store.finish_run(run)
        (stats,) = await store.route_stats(run)
        assert stats.signatures == {("payload.methods.*", "missing"): 450, ("payload.zz", "extra"): 1}
        assert (stats.fields_total, stats.fields_equal) == (500, 50)
        sigs = {(s.path, s.kind): s for s in await store.signatures()}
        assert sigs[("payload.methods.*", "missing")].count == 450
        assert len(sigs[("payload.methods.*", "missing")].exemplars) == 5
        assert sigs[("payload.zz", "extra")].count == 1 and sigs[("payload.zz", "extra")].exemplars == []
        rows = await store.diff_rows(run)
        assert len(rows) == 202 and [d["count"] for d in rows[200:]] == [250, 1]
        assert "250 findings past the pair's record cap" in rows[200]["legacy_value"]
    finally:
        await store.close()


async def test_a_store_of_revision_0001_is_upgraded_and_its_diffs_count_one(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO diffs (run_id, pair_no, n, route, path, signature_path, kind) "
                          "VALUES (1, 1, 0, 'health', 'payload.a', 'payload.a', 'value')"))
    engine.dispose()
    store = await Store.open(url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"
            assert conn.execute(text("select count from diffs")).scalar() == 1
    finally:
        await store.close()


async def test_sqlite_store_end_to_end(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'p.db'}", batch_size=64)
    try:
        await exercise(store)
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"
            assert set(inspect(conn).get_table_names()) >= {"runs", "pairs", "exchanges", "diffs", "signatures",
                                                             "noise_rules"}
    finally:
        await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError):
        store.add_pair(1, result(1))
    # Reopening applies no migration twice and continues pair numbering.
    again = await Store.open(str(tmp_path / "p.db"))
    try:
        run = (await again.runs())[0].id
        assert again.add_pair(run, result(5000)) == 302
    finally:
        await again.close()


def test_database_url() -> None:
    assert database_url("x.db") == "sqlite:///x.db"
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:////abs.db") == "sqlite:////abs.db"
    with pytest.raises(ConfigError, match="--db"):
        database_url("mysql://x")


def test_signature_path() -> None:
    assert signature_path("payload.items.3.ts") == "payload.items.*.ts"
    assert signature_path("0.a.12") == "*.a.*"
    assert signature_path("#1.payload.x1.v2") == "#1.payload.x1.v2"


async def test_locked_database_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await Store.open(f"sqlite:///{path}", batch_size=100)
    try:
        run = await store.start_run(name="locked")
        await store.flush()
        holder = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # holds the write lock
        holder.execute("INSERT INTO runs (name, source, profile, legacy_url, candidate_url, started_at, status, meta)"
                       " VALUES ('other', 'api', 'openclaw', '', '', 0, 'running', '{}')")
        released = threading.Event()

        def release() -> None:
            time.sleep(1.5)
            holder.execute("COMMIT")
            holder.close()
            released.set()

        thread = threading.Thread(target=release)
        thread.start()
        for i in range(1000):
            store.add_pair(run, result(i, equal=False, diffs=(DIFF,)))
        await store.flush()
        thread.join()
        assert released.is_set()
        assert store.retries > 0, "the writer never met the lock"
        stats = await store.route_stats(run)
        assert stats[0].pairs == 1000
        assert (await store.signatures())[0].count == 1000
    finally:
        await store.close()


async def test_lock_held_past_the_retry_deadline_keeps_the_pairs_for_the_next_flush(tmp_path: Path) -> None:
    """A lock that outlasts ``retry_for``: flush reports it, the pairs stay queued in order, and once the lock is
    gone the next flush writes every one of them."""
    path = tmp_path / "stuck.db"
    store = await Store.open(f"sqlite:///{path}", batch_size=50, retry_for=0.3)
    try:
        run = await store.start_run(name="stuck")
        holder = sqlite3.connect(path, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        for i in range(120):
            store.add_pair(run, result(i))
        with pytest.raises(StoreError, match="locked"):
            await store.flush()
        assert store.pending == 120, "the refused pairs must still be queued"
        holder.execute("ROLLBACK")
        holder.close()
        await store.flush()
        assert store.pending == 0
        assert (await store.route_stats(run))[0].pairs == 120
        rows = await store.pair_rows(run)
        assert [(r["pair_no"], r["key"]) for r in rows] == [(i + 1, str(i)) for i in range(120)]
    finally:
        await store.close()


async def test_a_refused_batch_nobody_flushed_costs_no_later_pair(tmp_path: Path) -> None:
    """A batch refused in the background, then more pairs, then close: close reports the refusal and still
    writes every later pair."""
    store = await Store.open(f"sqlite:///{tmp_path / 'r.db'}", retry_for=0.2)
    run = await store.start_run()
    store.add_pair(run, result(1))
    await store.flush()
    store._next_pair[run] = 0
    store.add_pair(run, result(2))  # pair_no 1 again: refused by the database
    await async_wait_until(lambda: store.pending == 0, 10 * S, what="the refused batch tried")
    for i in range(3, 8):
        store.add_pair(run, result(i))
    with pytest.raises(StoreError, match="UNIQUE"):
        await store.close()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("SELECT count(*) FROM pairs").fetchone()[0] == 6


async def test_a_lock_that_clears_before_the_next_flush_is_not_reported(tmp_path: Path) -> None:
    """Locked past retry_for in the background, then released: the next full batch writes everything and the
    old busy error is not raised afterwards (nothing was lost)."""
    path = tmp_path / "b.db"
    store = await Store.open(f"sqlite:///{path}", batch_size=10, retry_for=0.3)
    try:
        run = await store.start_run()
        holder = sqlite3.connect(path, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        for i in range(5):
            store.add_pair(run, result(i))
        await async_wait_until(lambda: store._kept_back, 10 * S, what="the batch kept back")
        holder.execute("ROLLBACK")
        holder.close()
        for i in range(5, 10):
            store.add_pair(run, result(i))  # the tenth wakes the writer: a full batch
        await async_wait_until(lambda: store.pending == 0, 10 * S, what="everything written")
        await store.flush()  # nothing to report
        await store.finish_run(run)
        assert (await store.route_stats(run))[0].pairs == 10
    finally:
        await store.close()


async def test_flush_says_so_when_the_writer_is_gone_instead_of_hanging(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    run = await store.start_run()
    assert store._writer is not None
    store._writer.cancel()
    await asyncio.sleep(0)
    store.add_pair(run, result(1))
    with pytest.raises(StoreError, match="writer has stopped; 1 pairs not written"):
        await asyncio.wait_for(store.flush(), 10 * S)
    with pytest.raises(StoreError, match="writer has stopped"):
        await store.close()  # says it again, and still releases the engine


async def test_write_errors_surface_on_flush_and_the_writer_survives(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'e.db'}", retry_for=0.2)
    try:
        run = await store.start_run()
        store.add_pair(run, result(1))
        await store.flush()
        store._next_pair[run] = 0  # force a primary-key collision: a non-retryable error
        store.add_pair(run, result(2))
        with pytest.raises(StoreError, match="writing to the parity store failed"):
            await store.flush()
        store.add_pair(run, result(3))  # pair_no 2: fine again
        await store.flush()
        assert (await store.route_stats(run))[0].pairs == 2
    finally:
        await store.close()


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL not installed ({PG_BIN}/initdb missing; `make test` installs it where it can)")
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="parity-pg-"))
    data = base / "data"
    port = _free_port()
    prefix: list[str] = []
    if root:
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing: cannot start PostgreSQL as the postgres user")
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str, timeout: float = 60) -> None:
        subprocess.run([*prefix, *cmd], check=True, timeout=timeout, capture_output=True)

    run(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "parity", "--no-sync")
    run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"),
        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off", "start", timeout=90)
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "parity", "parity")
        yield f"postgresql://parity@127.0.0.1:{port}/parity"
    finally:
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    store = await Store.open(postgres_url)
    with store.engine.begin() as conn:
        for table in ("diffs", "exchanges", "pairs", "signatures", "noise_rules", "runs"):
            conn.execute(text(f"DELETE FROM {table}"))
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgresql_store_end_to_end(pg_store: Store) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    await exercise(pg_store)


@pytest.mark.postgres
async def test_postgresql_concurrent_batches(pg_store: Store) -> None:
    runs = [await pg_store.start_run(name=f"r{i}") for i in range(3)]
    for i in range(3000):
        pg_store.add_pair(runs[i % 3], result(i, equal=i % 2 == 0, diffs=() if i % 2 == 0 else (DIFF,)))
    await asyncio.wait_for(pg_store.flush(), 120)
    for run in runs:
        (stats,) = await pg_store.route_stats(run)
        assert stats.pairs == 1000 and stats.matches == 500
    assert (await pg_store.signatures())[0].count == 1500
    assert json.loads(json.dumps([s.path for s in await pg_store.signatures()])) == ["payload.items.*.ts"]


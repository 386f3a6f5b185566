"""The parity store's tables (SQLAlchemy 2 Core). Owns the schema; ``diffing.migrations`` creates it.

Tables: ``runs`` (one replay, shadow session or noise-learning pass), ``pairs`` (one compared client request,
keyed by ``(run_id, pair_no)`` so one writer can batch without reading ids back), ``exchanges`` (each leg's
side of a pair: latency, error flag, a redacted and truncated summary), ``diffs`` (findings of a pair),
``signatures`` (route, generalized path, kind -> count, first/last seen, <= 5 exemplars, review state) and
``noise_rules`` (proposed/accepted/rejected A/A noise with evidence counts).

Times are unix seconds (float). Imports only SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["diffs", "exchanges", "metadata", "noise_rules", "pairs", "runs", "signatures"]

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, default=""),
    Column("source", String(20), nullable=False, default="replay"),  # replay | shadow | noise | api
    Column("profile", String(50), nullable=False, default="openclaw"),
    Column("legacy_url", String(500), nullable=False, default=""),
    Column("candidate_url", String(500), nullable=False, default=""),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(20), nullable=False, default="running"),  # running | done | failed
    Column("meta", Text, nullable=False, default="{}"),
)

pairs = Table(
    "pairs",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("pair_no", BigInteger, primary_key=True),
    Column("conn", String(200), nullable=False),
    Column("key", String(300), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("route", String(200), nullable=False),
    Column("scenario", String(300)),
    Column("equal", Boolean, nullable=False),
    Column("stage", String(12), nullable=False),
    Column("unmatched", String(10)),
    Column("fields_total", Integer, nullable=False, default=0),
    Column("fields_equal", Integer, nullable=False, default=0),
    Column("legacy_latency", Float),
    Column("candidate_latency", Float),
    Column("legacy_error", Boolean, nullable=False, default=False),
    Column("candidate_error", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Index("ix_pairs_run_route", "run_id", "route"),
)

exchanges = Table(
    "exchanges",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("pair_no", BigInteger, primary_key=True),
    Column("leg", String(10), primary_key=True),
    Column("t_start", Float, nullable=False),
    Column("latency", Float),
    Column("responses", Integer, nullable=False, default=0),
    Column("error", Boolean, nullable=False, default=False),
    Column("summary", Text, nullable=False, default=""),
)

diffs = Table(
    "diffs",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("pair_no", BigInteger, primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("route", String(200), nullable=False),
    Column("path", String(500), nullable=False),
    Column("signature_path", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("legacy_value", Text),
    Column("candidate_value", Text),
    # findings the row stands for: 1, or how many past the pair's record cap share this signature (revision 0002)
    Column("count", Integer, nullable=False, default=1, server_default="1"),
    Index("ix_diffs_run_sig", "run_id", "route", "signature_path", "kind"),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("route", String(200), nullable=False),
    Column("path", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("exemplars", Text, nullable=False, default="[]"),
    Column("review", String(20), nullable=False, default="unreviewed"),  # unreviewed | expected | bug
    Column("note", Text, nullable=False, default=""),
    UniqueConstraint("route", "path", "kind", name="uq_signatures_route_path_kind"),
)

noise_rules = Table(
    "noise_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("route", String(200), nullable=False),
    Column("path", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("action", String(10), nullable=False, default="mask"),  # mask | drop
    Column("status", String(10), nullable=False, default="proposed"),  # proposed | accepted | rejected
    Column("differing", Integer, nullable=False, default=0),
    Column("compared", Integer, nullable=False, default=0),
    Column("runs", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("route", "path", "kind", name="uq_noise_rules_route_path_kind"),
)

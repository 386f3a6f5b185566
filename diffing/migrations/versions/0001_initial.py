"""Initial parity store schema: runs, pairs, exchanges, diffs, signatures, noise_rules.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("profile", sa.String(50), nullable=False),
        sa.Column("legacy_url", sa.String(500), nullable=False),
        sa.Column("candidate_url", sa.String(500), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
    )
    op.create_table(
        "pairs",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("pair_no", sa.BigInteger, primary_key=True),
        sa.Column("conn", sa.String(200), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("scenario", sa.String(300)),
        sa.Column("equal", sa.Boolean, nullable=False),
        sa.Column("stage", sa.String(12), nullable=False),
        sa.Column("unmatched", sa.String(10)),
        sa.Column("fields_total", sa.Integer, nullable=False),
        sa.Column("fields_equal", sa.Integer, nullable=False),
        sa.Column("legacy_latency", sa.Float),
        sa.Column("candidate_latency", sa.Float),
        sa.Column("legacy_error", sa.Boolean, nullable=False),
        sa.Column("candidate_error", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_pairs_run_route", "pairs", ["run_id", "route"])
    op.create_table(
        "exchanges",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("pair_no", sa.BigInteger, primary_key=True),
        sa.Column("leg", sa.String(10), primary_key=True),
        sa.Column("t_start", sa.Float, nullable=False),
        sa.Column("latency", sa.Float),
        sa.Column("responses", sa.Integer, nullable=False),
        sa.Column("error", sa.Boolean, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_table(
        "diffs",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("pair_no", sa.BigInteger, primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("signature_path", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("legacy_value", sa.Text),
        sa.Column("candidate_value", sa.Text),
    )
    op.create_index("ix_diffs_run_sig", "diffs", ["run_id", "route", "signature_path", "kind"])
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("exemplars", sa.Text, nullable=False),
        sa.Column("review", sa.String(20), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.UniqueConstraint("route", "path", "kind", name="uq_signatures_route_path_kind"),
    )
    op.create_table(
        "noise_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("differing", sa.Integer, nullable=False),
        sa.Column("compared", sa.Integer, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("route", "path", "kind", name="uq_noise_rules_route_path_kind"),
    )


def downgrade() -> None:
    for name in ("noise_rules", "signatures", "diffs", "exchanges", "pairs", "runs"):
        op.drop_table(name)

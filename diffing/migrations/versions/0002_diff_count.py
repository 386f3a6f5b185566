"""Diff rows carry a count: one row per signature stands for the findings past a pair's record cap.

A pair keeps at most ``diffing.diff.MAX_DIFFS_PER_PAIR`` diff records; the findings past it are stored as one row
per (signature path, kind) whose ``count`` says how many findings it stands for, so per-run signature counts stay
exact. Every row written before this revision is one finding (``count`` 1).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("diffs") as batch:
        batch.add_column(sa.Column("count", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("diffs") as batch:
        batch.drop_column("count")

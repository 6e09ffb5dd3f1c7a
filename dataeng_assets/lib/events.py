"""Clickstream drops → typed events + quarantine, as SQL in a scratch DuckDB database.

The scratch database is a file in a temp folder with a memory limit, so a 10M-line day spills to
disk instead of growing the process; results leave as Arrow record-batch readers that the lake
IO manager streams into Parquet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from dataeng_assets.lib import sql

# DuckDB's own cap inside a step; the step's Python side streams batches and stays small.
SCRATCH_MEMORY_LIMIT = os.environ.get("DATAENG_DUCKDB_MEMORY_LIMIT", "1GB")


@contextmanager
def scratch_duckdb(threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A throwaway on-disk DuckDB database: spills instead of swelling, deleted afterwards."""
    folder = tempfile.mkdtemp(prefix="dataeng-scratch-")
    con = duckdb.connect(os.path.join(folder, "scratch.duckdb"))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = $1", [SCRATCH_MEMORY_LIMIT])
        con.execute("SET temp_directory = $1", [os.path.join(folder, "tmp")])
        # Row order is not part of any table's meaning here; not preserving it saves memory.
        con.execute("SET preserve_insertion_order = false")
        if threads:
            con.execute("SET threads = $1", [threads])
        yield con
    finally:
        con.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class ParseCounts:
    lines: int
    good: int
    quarantined: dict[str, int]


def parse_drops(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> ParseCounts:
    """Create tables `parsed` and `duplicates` from the JSONL files (paths with date=… folders)."""
    for statement in sql.statements("parse_events"):
        con.execute(statement, [list(files)] if "$1" in statement else [])
    lines = con.execute("SELECT count(*) FROM parsed").fetchone()[0]
    by_reason = dict(
        con.execute(
            "SELECT reason, count(*) FROM parsed WHERE reason IS NOT NULL GROUP BY reason "
            "UNION ALL SELECT 'duplicate_event_id', count(*) FROM duplicates WHERE rank > 1 "
            "ORDER BY 1"
        ).fetchall()
    )
    by_reason = {k: int(v) for k, v in by_reason.items() if v}
    return ParseCounts(lines=int(lines), good=int(lines) - sum(by_reason.values()), quarantined=by_reason)

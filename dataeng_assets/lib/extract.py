"""Incremental extraction from the OLTP source (SQLite or PostgreSQL) by watermark.

Each table is read where `watermark_column >= last watermark` (>=, not >: rows committed later
with the boundary timestamp are not missed; the merge makes re-reading them harmless), in
Arrow batches of BATCH_ROWS. The warehouse's `raw.<table>` is merged by primary key and the new
watermark is stored in `raw._watermarks` in the same transaction, so a failed load never
advances it. Rows that disappeared from the source are counted and flagged `_deleted`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataeng_assets.lib.env import Database, mask_url
from dataeng_assets.lib.warehouse import Session, ident, qualified

BATCH_ROWS = 50_000  # ~10 MB of Arrow per batch for these tables: bounded memory, few round trips
RAW_SCHEMA = "raw"
WATERMARKS = "_watermarks"


@dataclass(frozen=True)
class SourceTable:
    name: str
    key: str
    watermark: str | None  # None: no incremental field, every extraction reads the whole table
    schema: pa.Schema


def _t(name: str, key: str, watermark: str, *cols: tuple[str, pa.DataType]) -> SourceTable:
    return SourceTable(name, key, watermark, pa.schema(list(cols)))


TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(12, 2)

SOURCE_TABLES = {
    t.name: t
    for t in [
        _t("customers", "customer_id", "updated_at", ("customer_id", pa.int64()), ("name", pa.string()),
           ("email", pa.string()), ("segment", pa.string()), ("country", pa.string()),
           ("registration_date", pa.date32()), ("created_at", TS), ("updated_at", TS)),
        _t("products", "product_id", "updated_at", ("product_id", pa.int64()), ("name", pa.string()),
           ("category", pa.string()), ("unit_price", MONEY), ("created_at", TS), ("updated_at", TS)),
        _t("orders", "order_id", "updated_at", ("order_id", pa.int64()), ("customer_id", pa.int64()),
           ("order_date", pa.date32()), ("status", pa.string()), ("created_at", TS), ("updated_at", TS)),
        _t("order_items", "order_item_id", "updated_at", ("order_item_id", pa.int64()), ("order_id", pa.int64()),
           ("product_id", pa.int64()), ("quantity", pa.int32()), ("unit_price", MONEY),
           ("discount_amount", MONEY), ("created_at", TS), ("updated_at", TS)),
        # Payments are immutable: new rows only, by creation time.
        _t("payments", "payment_id", "created_at", ("payment_id", pa.int64()), ("order_id", pa.int64()),
           ("payment_method", pa.string()), ("amount", MONEY), ("created_at", TS)),
    ]
}


class SourceError(RuntimeError):
    pass


def _coerce(column: list, dtype: pa.DataType) -> pa.Array:
    """Source values to the table's Arrow type: SQLite gives ISO text for dates and times and
    floats for money; PostgreSQL gives datetimes and Decimals. Naive times are UTC."""
    arr = pa.array(column)
    if pa.types.is_integer(arr.type) and pa.types.is_decimal(dtype):
        arr = arr.cast(pa.float64())  # SQLite's NUMERIC affinity stores 10.00 as the integer 10
    if pa.types.is_floating(arr.type) and pa.types.is_decimal(dtype):
        arr = pc.round(arr, 2)  # the float's value rounded, not its shortest repr
    if pa.types.is_timestamp(dtype) and (pa.types.is_string(arr.type) or pa.types.is_timestamp(arr.type) and arr.type.tz is None):
        arr = arr.cast(pa.timestamp("us"))
    return arr.cast(dtype)


class Source:
    """A read-only view of the OLTP source."""

    def __init__(self, db: Database):
        if db.kind not in ("sqlite", "postgres"):
            raise SourceError(f"{db.describe()}: the source is SQLite or PostgreSQL")
        self.db = db

    def _connect(self):
        if self.db.kind == "sqlite":
            try:
                return sqlite3.connect(f"file:{self.db.path}?mode=ro", uri=True, timeout=30)
            except sqlite3.OperationalError as e:
                raise SourceError(f"{self.db.describe()}: cannot open the source: {e}") from None
        import psycopg

        try:
            return psycopg.connect(self.db.url, connect_timeout=10)
        except psycopg.OperationalError as e:
            reason = (str(e).splitlines() or [type(e).__name__])[0].replace(self.db.url, mask_url(self.db.url))
            raise SourceError(f"{self.db.describe()}: cannot connect: {reason}") from None

    def _placeholder(self) -> str:
        return "?" if self.db.kind == "sqlite" else "%s"

    def read(self, table: SourceTable, since: datetime | None) -> Iterator[pa.RecordBatch]:
        """Rows changed since `since` (all rows when None), oldest first, in Arrow batches."""
        cols = ", ".join(ident(f.name) for f in table.schema)
        sql = f"SELECT {cols} FROM {ident(table.name)}"
        params: list[Any] = []
        if since is not None and table.watermark:
            sql += f" WHERE {ident(table.watermark)} >= {self._placeholder()}"
            if self.db.kind == "sqlite":  # stored as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]"
                since = since.astimezone(timezone.utc).replace(tzinfo=None) if since.tzinfo else since
                params.append(since.isoformat(sep=" "))
            else:
                params.append(since)
        order = [table.watermark, table.key] if table.watermark else [table.key]
        sql += " ORDER BY " + ", ".join(ident(c) for c in order)
        conn = self._connect()
        try:
            if self.db.kind == "postgres":
                cur = conn.cursor(name="dataeng_extract")  # server-side: streams, bounded memory
            else:
                cur = conn.cursor()
            cur.execute(sql, params)
            while rows := cur.fetchmany(BATCH_ROWS):
                columns = list(zip(*rows, strict=True))
                yield pa.record_batch([_coerce(list(c), f.type) for c, f in zip(columns, table.schema, strict=True)],
                                      schema=table.schema)
        finally:
            conn.close()

    def keys(self, table: SourceTable) -> pa.Array:
        conn = self._connect()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT {ident(table.key)} FROM {ident(table.name)}")
            return pa.array([r[0] for r in cur.fetchall()], pa.int64())
        finally:
            conn.close()


def _arrow_type(declared: str) -> pa.DataType:
    """A source column's declared SQL type as Arrow (SQLite affinities and PostgreSQL names)."""
    import re

    t = declared.strip().lower()
    m = re.match(r"(numeric|decimal)\s*\((\d+)\s*,\s*(\d+)\)", t)
    if m:
        return pa.decimal128(int(m.group(2)), int(m.group(3)))
    for needles, dtype in (
        (("timestamp", "datetime"), TS), (("date",), pa.date32()), (("bool",), pa.bool_()),
        (("int", "serial"), pa.int64()), (("real", "double", "float", "numeric", "decimal"), pa.float64()),
    ):
        if any(n in t for n in needles):
            return dtype
    return pa.string()


def discover(source: Source, name: str, key: str | None = None, watermark: str | None = None) -> SourceTable:
    """A source table's columns, types and primary key, read from the source's catalog."""
    conn = source._connect()
    try:
        cur = conn.cursor()
        if source.db.kind == "sqlite":
            cur.execute(f"PRAGMA table_info({ident(name)})")
            cols = [(r[1], r[2] or "TEXT", r[5]) for r in cur.fetchall()]
            pk = [c for c, _, p in sorted(cols, key=lambda c: c[2]) if p]
        else:
            cur.execute("SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                        "WHERE table_name = %s AND table_schema = current_schema() ORDER BY ordinal_position", [name])
            cols = [(c, f"numeric({p},{sc})" if t == "numeric" and p else t, 0) for c, t, p, sc in cur.fetchall()]
            cur.execute("SELECT k.column_name FROM information_schema.table_constraints c JOIN "
                        "information_schema.key_column_usage k ON c.constraint_name = k.constraint_name "
                        "AND c.table_schema = k.table_schema WHERE c.constraint_type = 'PRIMARY KEY' "
                        "AND c.table_name = %s AND c.table_schema = current_schema()", [name])
            pk = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    if not cols:
        raise SourceError(f"{source.db.describe()}: no table {name!r} in the source")
    names = [c for c, _, _ in cols]
    key = key or (pk[0] if len(pk) == 1 else None)
    if key is None or key not in names:
        raise SourceError(f"source table {name}: give `key:` (a single-column primary key; found {pk or 'none'})")
    if watermark is not None and watermark not in names:
        raise SourceError(f"source table {name}: no column {watermark!r} to extract incrementally on")
    known = SOURCE_TABLES.get(name)
    if known is not None and [f.name for f in known.schema] == names:
        schema = known.schema  # the demo world's exact types
    else:
        schema = pa.schema([(c, _arrow_type(t)) for c, t, _ in cols])
    return SourceTable(name, key, watermark, schema)


@dataclass
class ExtractResult:
    table: str
    rows: int
    deleted_in_source: int
    watermark_before: datetime | None
    watermark_after: datetime | None
    full_refresh: bool
    rows_total: int = 0


def ensure_watermarks(s: Session, schema: str = RAW_SCHEMA) -> None:
    s.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}")
    text = "VARCHAR" if s.dialect == "duckdb" else "TEXT"
    s.execute(
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, WATERMARKS)} (table_name {text} PRIMARY KEY, "
        f"watermark_column {text}, watermark TIMESTAMPTZ, rows_total BIGINT, updated_at TIMESTAMPTZ)"
    )


def get_watermark(s: Session, table: str, schema: str = RAW_SCHEMA) -> datetime | None:
    ensure_watermarks(s, schema)
    row = s.fetchone(f"SELECT watermark FROM {qualified(schema, WATERMARKS)} WHERE table_name = $1", [table])
    return row[0] if row else None


def extract_table(s: Session, source: Source, table: SourceTable, full_refresh: bool = False,
                  detect_deletes: bool = True, lake=None, batch_id: str | None = None,
                  schema_name: str = RAW_SCHEMA, target_name: str | None = None) -> ExtractResult:
    """Extract one table into raw.<table> by watermark; everything commits together or not at all.

    One streaming pass: each source batch is staged in the warehouse and, with a `lake`, written to
    the change log `lake/source/<table>/batch=<batch_id>/` as it goes, so memory holds one batch.
    The lake file is published before the warehouse commits: if the commit then fails, the next
    run re-extracts the same rows and the log holds them twice (at-least-once, deduplicate on
    key and watermark when reading it).
    """
    target_name = target_name or table.name
    full_refresh = full_refresh or table.watermark is None  # no incremental field: read it all
    before = None if full_refresh else get_watermark(s, target_name, schema_name)
    schema = table.schema.append(pa.field("_deleted", pa.bool_()))
    target = qualified(schema_name, target_name)
    cols = ", ".join(ident(f.name) for f in schema)
    key = ident(table.key)
    staged = "__dataeng_incoming"
    seen = {"rows": 0, "newest": None}

    def batches():
        for batch in source.read(table, before):
            out = pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array([False] * batch.num_rows, pa.bool_())], schema=schema
            )
            s.stage_append(staged, out)
            seen["rows"] += out.num_rows
            newest = pc.max(out.column(table.watermark)).as_py() if table.watermark else None
            if newest is not None and (seen["newest"] is None or newest > seen["newest"]):
                seen["newest"] = newest
            yield out

    with s.transaction():
        ensure_watermarks(s, schema_name)
        s.ensure_table(schema_name, target_name, schema, primary_key=[table.key])
        s.stage_arrow(staged, schema.empty_table())
        stream = pa.RecordBatchReader.from_batches(schema, batches())
        if lake is not None:
            lake.write(["lake", "source", table.name], stream, partitions=[batch_id or "manual"], column="batch")
        else:
            for _ in stream:
                pass
        if full_refresh:
            s.execute(f"DELETE FROM {target}")
        # Merge by primary key: the latest version of each source row.
        s.execute(f"DELETE FROM {target} WHERE {key} IN (SELECT {key} FROM {staged})")
        s.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged}")
        s.execute(f"DROP TABLE {staged}")
        deleted = 0
        if detect_deletes:
            s.stage_arrow("__dataeng_source_keys", pa.table({table.key: source.keys(table)}))
            deleted = s.rowcount(
                f"UPDATE {target} SET _deleted = true WHERE NOT _deleted AND {key} NOT IN "
                f"(SELECT {key} FROM __dataeng_source_keys)"
            )
            s.execute("DROP TABLE __dataeng_source_keys")
        after = before
        if seen["newest"] is not None and (before is None or seen["newest"] > before):
            after = seen["newest"]
        total = s.fetchone(f"SELECT count(*) FROM {target}")[0]
        s.execute(f"DELETE FROM {qualified(schema_name, WATERMARKS)} WHERE table_name = $1", [target_name])
        s.execute(
            f"INSERT INTO {qualified(schema_name, WATERMARKS)} VALUES ($1, $2, $3, $4, now())",
            [target_name, table.watermark, after, int(total)],
        )
    return ExtractResult(table.name, seen["rows"], deleted, before, after, full_refresh, int(total))

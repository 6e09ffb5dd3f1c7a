"""One warehouse interface over DuckDB (embedded default) and PostgreSQL.

Used by the warehouse IO manager and by SQL assets that transform in place. Values always go in
as bind parameters (`$1`, `$2`, ... on both engines: DuckDB natively, PostgreSQL through
psycopg's RawCursor); identifiers are validated and quoted by `ident`. Data moves in bulk as
Arrow: DuckDB scans Arrow directly, PostgreSQL gets COPY.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from dataeng_assets.lib.env import ConfigError, Database, mask_url

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# A DuckDB file admits one writer process; another process waits this long for the lock
# (a concurrency pool of 1 keeps Dagster's own steps from colliding; this covers the rest).
DUCKDB_LOCK_WAIT_S = 120.0


class WarehouseError(RuntimeError):
    pass


class SchemaChangeError(WarehouseError):
    """An incoming column's type cannot be stored in the existing column without loss."""


def ident(name: str) -> str:
    """Validate and quote one SQL identifier."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier: {name!r}")
    return f'"{name}"'


def qualified(schema: str, table: str) -> str:
    return f"{ident(schema)}.{ident(table)}"


# ---------------------------------------------------------------- types
# Families and ranks decide what may be stored where: same family and a rank not above the
# existing column's rank fits; a wider integer or float widens the column; anything else is a
# type change we refuse rather than silently coerce.
_FAMILIES = {
    "tinyint": ("int", 0), "smallint": ("int", 1), "int2": ("int", 1),
    "integer": ("int", 2), "int": ("int", 2), "int4": ("int", 2),
    "bigint": ("int", 3), "int8": ("int", 3), "hugeint": ("int", 4),
    "real": ("float", 1), "float": ("float", 1), "float4": ("float", 1),
    "double": ("float", 2), "double precision": ("float", 2), "float8": ("float", 2),
    "decimal": ("decimal", 0), "numeric": ("decimal", 0),
    "varchar": ("text", 0), "text": ("text", 0), "character varying": ("text", 0),
    "boolean": ("bool", 0), "bool": ("bool", 0),
    "date": ("date", 0),
    "timestamp": ("timestamp", 0), "timestamp without time zone": ("timestamp", 0),
    "timestamp with time zone": ("timestamptz", 0), "timestamptz": ("timestamptz", 0),
}


def _family(sql_type: str) -> tuple[str, int]:
    base = sql_type.lower().split("(")[0].strip()
    return _FAMILIES.get(base, (base, 0))


def arrow_to_sql(dtype: pa.DataType, dialect: str) -> str:
    pg = dialect == "postgres"
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return "SMALLINT"
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return "INTEGER"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_float16(dtype) or pa.types.is_float32(dtype):
        return "REAL"
    if pa.types.is_floating(dtype):
        return "DOUBLE PRECISION" if pg else "DOUBLE"
    if pa.types.is_decimal(dtype):
        return f"NUMERIC({dtype.precision},{dtype.scale})"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "TEXT" if pg else "VARCHAR"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    raise WarehouseError(f"no warehouse type for Arrow type {dtype}")


def _pg_to_arrow(sql_type: str) -> pa.DataType:
    fam, rank = _family(sql_type)
    return {
        ("int", 1): pa.int16(), ("int", 2): pa.int32(), ("int", 3): pa.int64(),
        ("float", 1): pa.float32(), ("float", 2): pa.float64(),
        ("bool", 0): pa.bool_(), ("date", 0): pa.date32(),
        ("timestamp", 0): pa.timestamp("us"), ("timestamptz", 0): pa.timestamp("us", tz="UTC"),
        ("decimal", 0): pa.float64(),
    }.get((fam, rank), pa.string())


@dataclass
class LoadResult:
    deleted: int
    inserted: int
    added_columns: list[str]


# ---------------------------------------------------------------- sessions
class Session:
    """One open connection. `transaction()` makes a block atomic."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def to_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _stage(self, name: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Put `data` into a temporary table `name`; returns its row count."""
        raise NotImplementedError

    def rowcount(self, sql: str, params: Sequence[Any] | None = None) -> int:
        raise NotImplementedError

    # -- shared logic
    def columns(self, schema: str, table: str) -> dict[str, str]:
        rows = self.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            [schema, table],
        )
        return {name: dtype for name, dtype in rows}

    def ensure_table(
        self,
        schema: str,
        table: str,
        arrow_schema: pa.Schema,
        primary_key: Sequence[str] | None = None,
    ) -> list[str]:
        """Create the table, or add missing columns / widen compatible ones. Returns added columns."""
        target = qualified(schema, table)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}")
        existing = self.columns(schema, table)
        if not existing:
            cols = [f"{ident(f.name)} {arrow_to_sql(f.type, self.dialect)}" for f in arrow_schema]
            if primary_key:
                cols.append(f"PRIMARY KEY ({', '.join(ident(c) for c in primary_key)})")
            self.execute(f"CREATE TABLE {target} ({', '.join(cols)})")
            return []
        added = []
        lowered = {k.lower(): (k, v) for k, v in existing.items()}
        for f in arrow_schema:
            want = arrow_to_sql(f.type, self.dialect)
            if f.name.lower() not in lowered:
                self.execute(f"ALTER TABLE {target} ADD COLUMN {ident(f.name)} {want}")
                added.append(f.name)
                continue
            name, have = lowered[f.name.lower()]
            (hf, hr), (wf, wr) = _family(have), _family(want)
            if hf == wf and wr <= hr:
                continue
            if hf == wf and hf in ("int", "float"):
                self.execute(f"ALTER TABLE {target} ALTER COLUMN {ident(name)} TYPE {want}")
                continue
            if hf in ("float", "decimal") and wf == "int":
                continue
            raise SchemaChangeError(
                f"{schema}.{table}.{name}: column is {have}, incoming data is {want} "
                f"(Arrow {f.type}); refusing an incompatible type change. Migrate the column "
                "or rename the field."
            )
        return added

    def replace_rows(
        self,
        schema: str,
        table: str,
        data: pa.Table | pa.RecordBatchReader,
        where: str | None = None,
        params: Sequence[Any] | None = None,
    ) -> LoadResult:
        """Atomically replace the rows matching `where` (all rows if None) with `data`.

        Incoming rows must themselves satisfy `where`: rows outside the slice being replaced would
        survive the next replace and duplicate, so they are refused.
        """
        staged = "__dataeng_incoming"
        with self.transaction():
            added = self.ensure_table(schema, table, data.schema)
            n = self._stage(staged, data)
            deleted = self._replace_from_staged(staged, n, data.schema, schema, table, where, params)
        return LoadResult(deleted=deleted, inserted=n, added_columns=added)

    def _replace_from_staged(self, staged, n, arrow_schema, schema, table, where, params) -> int:
        """Inside a transaction: refuse staged rows outside `where`, delete the slice, insert the
        staged rows by column name, drop the staging table. Returns the rows deleted."""
        target = qualified(schema, table)
        if where:
            outside = self.fetchone(
                f"SELECT count(*) FROM {staged} WHERE NOT ({where}) OR ({where}) IS NULL", params
            )[0]
            if outside:
                raise WarehouseError(
                    f"{outside} of {n} incoming rows for {schema}.{table} fall outside the "
                    f"partition being written ({where} with {list(params or [])})"
                )
            deleted = self.rowcount(f"DELETE FROM {target} WHERE {where}", params)
        else:
            deleted = self.rowcount(f"DELETE FROM {target}")
        cols = ", ".join(ident(f.name) for f in arrow_schema)
        self.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged}")
        self.execute(f"DROP TABLE {staged}")
        return deleted

    def replace_rows_from_query(
        self,
        schema: str,
        table: str,
        select_sql: str,
        params: Sequence[Any] | None,
        where: str,
        where_params: Sequence[Any],
    ) -> LoadResult:
        """Like `replace_rows`, for data computed by SQL inside the warehouse (never leaves it)."""
        staged = "__dataeng_computed"
        with self.transaction():
            self.execute(f"CREATE TEMP TABLE {staged} AS {select_sql}", params)
            arrow_schema = self.to_arrow(f"SELECT * FROM {staged} LIMIT 0").schema
            added = self.ensure_table(schema, table, arrow_schema)
            n = int(self.fetchone(f"SELECT count(*) FROM {staged}")[0])
            deleted = self._replace_from_staged(staged, n, arrow_schema, schema, table, where, where_params)
        return LoadResult(deleted=deleted, inserted=n, added_columns=added)

    def stage_arrow(self, name: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """A temporary table `name` holding `data` (bulk: Arrow scan or COPY)."""
        return self._stage(name, data)

    def stage_append(self, name: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Append `data` to the temporary table `name` made by `stage_arrow`."""
        raise NotImplementedError


class DuckDBSession(Session):
    dialect = "duckdb"

    def __init__(self, con):
        self.con = con
        self._depth = 0

    def execute(self, sql, params=None):
        cur = self.con.execute(sql, params or [])
        try:
            return cur.fetchall()
        except Exception:  # statements without a result set
            return []

    def rowcount(self, sql, params=None):
        rows = self.con.execute(sql, params or []).fetchall()  # exhaust: see stage_append
        return int(rows[0][0]) if rows else 0

    def to_arrow(self, sql, params=None):
        return self.con.sql(sql, params=params or None).to_arrow_table()

    def reader(self, sql, params=None, batch_rows: int = 122_880) -> pa.RecordBatchReader:
        return self.con.sql(sql, params=params or None).to_arrow_reader(batch_rows)

    @contextmanager
    def transaction(self):
        """Re-entrant: an inner block joins the outer transaction (DuckDB has no savepoints)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    def _stage(self, name, data):
        self.con.register("__dataeng_arrow", data)
        try:
            self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM __dataeng_arrow")
        finally:
            self.con.unregister("__dataeng_arrow")
        return self.rowcount(f"SELECT count(*) FROM {name}")


    def stage_append(self, name, data):
        self.con.register("__dataeng_arrow", data)
        try:
            # read the result: DuckDB refuses new work on a connection with an unread one
            self.con.execute(f"INSERT INTO {name} SELECT * FROM __dataeng_arrow").fetchall()
        finally:
            self.con.unregister("__dataeng_arrow")
        return data.num_rows if isinstance(data, pa.Table) else 0


class PostgresSession(Session):
    dialect = "postgres"

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, params=None):
        cur = self.conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []

    def rowcount(self, sql, params=None):
        return self.conn.execute(sql, params or None).rowcount

    def to_arrow(self, sql, params=None):
        return self.reader(sql, params).read_all()

    def reader(self, sql, params=None, batch_rows: int = 50_000) -> pa.RecordBatchReader:
        import psycopg

        # A named (server-side) cursor streams in chunks; psycopg's plain cursor would buffer all.
        described = self.conn.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0", params or None)
        schema = pa.schema(
            [(d.name, _pg_to_arrow(self._type_name(d.type_code))) for d in described.description]
        )

        def batches():
            with self.conn.transaction():
                with psycopg.ServerCursor(self.conn, "dataeng_reader") as cur:
                    cur.execute(_to_psycopg_params(sql), params or None)
                    while rows := cur.fetchmany(batch_rows):
                        cols = list(zip(*rows, strict=True))
                        yield pa.record_batch(
                            [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
                        )

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _type_name(self, oid: int) -> str:
        row = self.conn.execute("SELECT format_type($1, NULL)", [oid]).fetchone()
        return row[0] if row else "text"

    @contextmanager
    def transaction(self):
        with self.conn.transaction():
            yield

    def _stage(self, name, data):
        cols = [f"{ident(f.name)} {arrow_to_sql(f.type, 'postgres')}" for f in data.schema]
        self.conn.execute(f"CREATE TEMP TABLE {name} ({', '.join(cols)}) ON COMMIT DROP")
        return copy_arrow(self.conn, name, data)

    def stage_append(self, name, data):
        return copy_arrow(self.conn, name, data)


def _to_psycopg_params(sql: str) -> str:
    """`$n` placeholders to psycopg's `%s` for the few server-side cursor reads.

    ServerCursor has no raw variant; placeholders appear in order in our own SQL, and literal
    percent signs are escaped first.
    """
    return re.sub(r"\$\d+", "%s", sql.replace("%", "%%"))


def copy_arrow(conn, table_sql: str, data: pa.Table | pa.RecordBatch | pa.RecordBatchReader) -> int:
    """COPY Arrow data into a PostgreSQL table (already quoted name), streaming by batch."""
    cols = ", ".join(ident(f.name) for f in data.schema)
    if isinstance(data, pa.Table):
        batches = data.to_batches()
    elif isinstance(data, pa.RecordBatch):
        batches = [data]
    else:
        batches = data
    n = 0
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table_sql} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                copy.write(buf.getvalue())
                n += batch.num_rows
    return n


# ---------------------------------------------------------------- the warehouse
class Warehouse:
    """Opens sessions on the configured warehouse. Cheap to construct; connects on demand."""

    def __init__(self, database: Database):
        if database.kind not in ("duckdb", "postgres"):
            raise ConfigError(f"{database.describe()}: the warehouse is DuckDB or PostgreSQL")
        self.database = database

    @property
    def dialect(self) -> str:
        return self.database.kind

    def describe(self) -> str:
        return self.database.describe()

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        if self.dialect == "duckdb":
            con = self._duckdb_connect(read_only)
            try:
                con.execute("SET TimeZone = 'UTC'")  # date casts of timestamps are UTC days
                yield DuckDBSession(con)
            finally:
                con.close()
        else:
            conn = self._postgres_connect()
            try:
                conn.execute("SET TIME ZONE 'UTC'")
                yield PostgresSession(conn)
            finally:
                conn.close()

    def check(self) -> None:
        """Fail fast, naming the variable and value, when the warehouse cannot be reached."""
        with self.session() as s:
            s.execute("SELECT 1")

    def _duckdb_connect(self, read_only: bool):
        import duckdb

        path = Path(self.database.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{self.describe()}: cannot create folder {path.parent}: {e}") from e
        deadline = time.monotonic() + DUCKDB_LOCK_WAIT_S
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only and path.exists())
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise WarehouseError(f"{self.describe()}: cannot open DuckDB file: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _postgres_connect(self):
        import psycopg

        try:
            return psycopg.connect(
                self.database.url.replace("postgresql+psycopg://", "postgresql://"),
                autocommit=True,
                cursor_factory=psycopg.RawCursor,
                connect_timeout=10,
            )
        except psycopg.OperationalError as e:
            # psycopg's message can echo the conninfo; say only the masked URL and the cause.
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            reason = reason.replace(self.database.url, mask_url(self.database.url))
            raise WarehouseError(f"{self.describe()}: cannot connect: {reason}") from None
